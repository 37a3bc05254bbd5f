"""What ``facegraph image`` writes for a photo: its record (JSON) and, in an output folder, the annotated
photo and, for dense meshes, each face's OBJ and the shaded meshes drawn over the photo."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from facegraph.image.analyzer import face_to_dict
from facegraph.io.images import write_image
from facegraph.io.meshes import write_mesh
from facegraph.io.reports import write_report
from facegraph.types import Face, Mesh
from facegraph.viz.annotate import annotate_faces
from facegraph.viz.render import render_meshes


def photo_record(photo: Path, rgb: np.ndarray, faces: list[Face]) -> dict:
    """The photo's path, size and faces, as the JSON reports give them."""
    return {
        "photo": str(photo),
        "size": [rgb.shape[1], rgb.shape[0]],
        "faces": [face_to_dict(f) for f in faces],
    }


def face_summary(photo: Path, index: int, face: Face) -> str:
    """One line for a face: its box and head pose."""
    pose = face.pose
    return (
        f"{photo}: face {index + 1}: box {', '.join(f'{v:.0f}' for v in face.box)}  "
        f"yaw {pose.yaw:+.1f}  pitch {pose.pitch:+.1f}  roll {pose.roll:+.1f}"
    )


def photo_output_paths(out: Path, photo: Path, mesh: bool = False) -> list[Path]:
    """The files ``write_photo_outputs`` writes for ``photo`` that can be named before its faces are
    found (with ``mesh``, the overlay too), and the face meshes an earlier run left there (which a new
    run may replace)."""
    earlier = sorted(out.glob(f"{glob.escape(photo.stem)}-face*.obj")) if out.is_dir() else []
    overlay = [mesh_overlay_path(out, photo)] if mesh else []
    return [out / f"{photo.stem}-annotated.png", out / f"{photo.stem}.json", *overlay, *earlier]


def mesh_overlay_path(out: Path, photo: Path) -> Path:
    return out / f"{photo.stem}-mesh.png"


def photo_colours(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3) uint8: the photo's colour at each point's pixel (x, y in photo pixels, nearest pixel,
    points off the photo take its nearest edge pixel)."""
    h, w = rgb.shape[:2]
    columns = np.clip(np.rint(points[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.rint(points[:, 1]).astype(np.int64), 0, h - 1)
    return rgb[rows, columns]


def write_photo_outputs(out: Path, photo: Path, rgb: np.ndarray, faces: list[Face], record: dict) -> None:
    """``<stem>-annotated.png``, ``<stem>.json`` and, for faces with a dense mesh, ``<stem>-faceN.obj``
    with each vertex coloured from the photo and ``<stem>-mesh.png``, the meshes shaded over the photo."""
    annotated, report = photo_output_paths(out, photo)[:2]
    write_image(annotated, annotate_faces(rgb, faces))
    write_report(report, record)
    for i, face in enumerate(faces):
        if face.mesh_vertices is not None:
            colours = photo_colours(rgb, face.mesh_vertices)
            write_mesh(
                out / f"{photo.stem}-face{i + 1}.obj",
                Mesh(face.mesh_vertices, face.mesh_faces, colors=colours),
            )
    meshes = [(f.mesh_vertices, f.mesh_faces) for f in faces if f.mesh_vertices is not None]
    if meshes:
        write_image(mesh_overlay_path(out, photo), render_meshes(rgb, meshes))
