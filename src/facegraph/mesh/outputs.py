"""What ``facegraph mesh`` writes for a scan: its report (JSON) and, in an output folder, the landmarks
as JSON, MeshLab points and a PLY point cloud, and a picture."""

from __future__ import annotations

from pathlib import Path

from facegraph.io.landmarks import write_json, write_pp
from facegraph.io.meshes import write_points_ply
from facegraph.io.outputs import written_by_facegraph
from facegraph.mesh.landmarker import MeshLandmarks
from facegraph.types import Mesh
from facegraph.viz.mesh_views import plot_mesh_landmarks


def scan_report(path: Path, result: MeshLandmarks) -> dict:
    """The scan's landmarks, as the JSON reports give them."""
    return {
        "mesh": str(path),
        "scheme": "ibug68",
        "points": result.points.tolist(),
        "vertex_indices": result.vertex_indices.tolist(),
        "refine": result.refine,
        "notes": result.notes,
    }


def scan_summary(path: Path, result: MeshLandmarks) -> str:
    """One line for a landmarked scan, with the landmarker's notes below it."""
    notes = "".join(f"\n  note: {note}" for note in result.notes)
    return f"{path}: 68 landmarks (refine: {result.refine}, {result.seconds['total']:.2f} s){notes}"


LANDMARK_CLOUD_SUFFIX = "_landmarks.ply"
OUTPUT_SUFFIXES = (".json", ".pp", LANDMARK_CLOUD_SUFFIX, ".png")


def is_landmark_cloud(path: Path) -> bool:
    """Whether ``path`` is the landmark point cloud ``write_scan_outputs`` wrote for a scan (not a scan)."""
    return path.name.endswith(LANDMARK_CLOUD_SUFFIX) and written_by_facegraph(path)


def scan_output_paths(out: Path, path: Path) -> list[Path]:
    """The files ``write_scan_outputs`` writes for the scan ``path``, in ``OUTPUT_SUFFIXES`` order."""
    return [out / f"{path.stem}{suffix}" for suffix in OUTPUT_SUFFIXES]


def write_scan_outputs(out: Path, path: Path, mesh: Mesh, result: MeshLandmarks) -> None:
    """``<stem>.json``, ``<stem>_landmarks.ply``, ``<stem>.pp`` and ``<stem>.png`` in ``out``."""
    landmarks = result.to_landmarks()
    json_path, pp_path, ply_path, png_path = scan_output_paths(out, path)
    write_json(json_path, landmarks)
    write_points_ply(ply_path, result.points)
    write_pp(pp_path, landmarks)
    plot_mesh_landmarks(mesh.vertices, result.points, png_path, title=path.name)
