"""3D face scan collections with 68 iBUG landmarks, read into one record type for fitting and evaluation.

- FaceScape TU models: ``<root>/<subject>/<n>_<expression>.obj``, or as released
  ``<root>/<subject>/models_reg/<n>_<expression>.obj``; subject folders are integers. Every TU model shares
  one topology, so the landmarks are 68 vertex indices (``landmark_indices.npz``, key ``v10``; key ``v16``
  is for the version 1.6 bilinear model, not the TU models).
- Headspace (3dMD heads): a folder per subject holding OBJ meshes, with landmark files the user supplies.
- A generic folder of meshes with landmark files beside them.

Landmark files (project ``.json``, ``.ljson``, MeshLab ``.pp``, ``.csv``; lower-case suffix) share the
mesh's stem and must hold 68 3D points in the mesh's frame; points marked invisible become NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegraph.errors import InputError
from facegraph.formats import MESH_SUFFIXES, SCAN_LANDMARK_SUFFIXES
from facegraph.io.landmarks import read_landmarks
from facegraph.io.meshes import read_mesh
from facegraph.types import Mesh

N_LANDMARKS = 68
FACESCAPE_INDICES = "landmark_indices.npz"
FACESCAPE_KEY = "v10"
_FACESCAPE_NAME = re.compile(r"(\d+)_([a-z_]+)\.obj", re.IGNORECASE)


@dataclass
class ScanRecord:
    """One scan: its mesh file, its subject (the unit of splits) and its landmarks when known.

    landmarks: (68, 3) float64 in the mesh's frame (NaN for points marked invisible), or None.
    vertex_indices: (68,) int64 mesh vertex indices, when the landmarks are given that way instead.
    """

    mesh_path: Path
    subject: str
    landmarks: np.ndarray | None = None
    vertex_indices: np.ndarray | None = None


def load_scan(record: ScanRecord, normals: bool = True) -> tuple[Mesh, np.ndarray | None]:
    """The record's mesh and (68, 3) landmarks; the landmarks are None when the record has none.
    ``normals=False`` skips the mesh's vertex normals (see :func:`facegraph.io.read_mesh`)."""
    mesh = read_mesh(record.mesh_path, normals=normals)
    if record.vertex_indices is None:
        return mesh, None if record.landmarks is None else record.landmarks.copy()
    indices = record.vertex_indices
    bad = np.flatnonzero((indices < 0) | (indices >= len(mesh.vertices)))
    if bad.size:
        k = int(bad[0])
        raise InputError(
            f"landmark {k} is vertex {int(indices[k])}, but the mesh has {len(mesh.vertices)} vertices "
            "(do the landmark indices belong to another topology?)",
            record.mesh_path,
        )
    return mesh, mesh.vertices[indices].copy()


# --- landmark files and indices ----------------------------------------------------------------------


def _read_scan_landmarks(path: Path) -> np.ndarray:
    """(68, 3) points from a landmark file, with invisible points set to NaN."""
    landmarks = read_landmarks(path, scheme="ibug68")
    if landmarks.dim != 3:
        raise InputError("holds 2D landmarks; a scan needs 3D points in the mesh's frame", path)
    points = landmarks.points.copy()
    points[~landmarks.visible] = np.nan
    return points


def _landmark_file(folder: Path, stem: str, mesh_path: Path) -> Path | None:
    """The one landmark file named ``<stem>.<ext>`` in ``folder``, or None."""
    found = [folder / (stem + s) for s in SCAN_LANDMARK_SUFFIXES if (folder / (stem + s)).is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(f"several landmark files for this mesh ({names}); keep one", mesh_path)
    return found[0] if found else None


def _record(mesh_path: Path, subject: str, landmark_folder: Path) -> ScanRecord:
    file = _landmark_file(landmark_folder, mesh_path.stem, mesh_path)
    return ScanRecord(mesh_path, subject, None if file is None else _read_scan_landmarks(file))


def _check_indices(indices: np.ndarray, source: str | Path | None) -> np.ndarray:
    if not np.issubdtype(indices.dtype, np.integer):
        raise InputError(f"landmark vertex indices must be integers, got {indices.dtype}", source)
    if indices.shape != (N_LANDMARKS,):
        raise InputError(f"expected {N_LANDMARKS} landmark vertex indices, got shape {indices.shape}", source)
    if (indices < 0).any():
        raise InputError("landmark vertex indices must not be negative", source)
    return indices.astype(np.int64)


def read_vertex_indices(source: str | Path | np.ndarray) -> np.ndarray:
    """68 landmark vertex indices from an array, an ``.npz`` (key ``v10``, or its only key) or a text file.

    A ``.txt`` / ``.csv`` holds 68 integers separated by commas, spaces or newlines: the form a user's
    corrected FaceScape indices most likely take.
    """
    if isinstance(source, np.ndarray):
        return _check_indices(source, None)
    path = Path(source)
    if not path.is_file():
        raise InputError("landmark index file not found", path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            archive = np.load(path, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("it holds a single array, not an archive")
            with archive:
                keys = list(archive.files)
                key = FACESCAPE_KEY if FACESCAPE_KEY in keys else (keys[0] if len(keys) == 1 else None)
                indices = None if key is None else archive[key]
        except (ValueError, OSError) as exc:
            raise InputError(f"not a readable .npz archive ({exc})", path) from None
        if indices is None:
            raise InputError(f"no key {FACESCAPE_KEY!r} and not exactly one array (keys: {keys})", path)
    elif suffix in (".txt", ".csv"):
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path) from None
        words = [w for w in re.split(r"[,\s]+", text) if w]
        if not all(re.fullmatch(r"\d+", w) for w in words):
            raise InputError("expected whole non-negative numbers separated by commas or spaces", path)
        indices = np.array([int(w) for w in words], dtype=np.int64)
    else:
        raise InputError(f"unknown index file format {path.suffix!r} (supported: .npz, .txt, .csv)", path)
    return _check_indices(indices, path)


# --- layouts -----------------------------------------------------------------------------------------


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise InputError("scan folder not found", root)
    return root


def facescape_records(root: str | Path, indices: str | Path | np.ndarray | None = None) -> list[ScanRecord]:
    """FaceScape TU models with the shared landmark vertex indices.

    ``indices`` defaults to ``<root>/landmark_indices.npz``; pass a corrected file or array instead (users
    report that ``v10``'s jaw points 0-16 sit near the ears). Records come by subject number, then by
    expression number.
    """
    root = _check_root(root)
    if indices is None:
        indices = root / FACESCAPE_INDICES
        if not indices.is_file():
            raise InputError("FaceScape landmark indices not found (pass the file as indices)", indices)
    vertex_indices = read_vertex_indices(indices)
    found = []
    for folder in root.iterdir():
        if not (folder.is_dir() and folder.name.isdigit()):
            continue
        for models in (folder, folder / "models_reg"):
            for path in models.glob("*") if models.is_dir() else ():
                match = _FACESCAPE_NAME.fullmatch(path.name)
                if match and path.is_file():
                    found.append((int(folder.name), int(match.group(1)), path, folder.name))
    if not found:
        raise InputError(
            "no FaceScape TU models (expected <subject>/<n>_<expression>.obj, or under models_reg/)", root
        )
    return [ScanRecord(path, subject, None, vertex_indices.copy()) for *_, path, subject in sorted(found)]


def headspace_records(root: str | Path, landmarks_dir: str | Path | None = None) -> list[ScanRecord]:
    """Headspace heads: ``<root>/<subject>/*.obj`` with landmark files the user supplies.

    A mesh's landmarks are ``<stem>.<ext>`` beside it, or under ``landmarks_dir/<subject>/`` when that is
    given; meshes without one get landmarks None (they can be landmarked, not evaluated).
    """
    root = _check_root(root)
    if landmarks_dir is not None:
        landmarks_dir = Path(landmarks_dir)
        if not landmarks_dir.is_dir():
            raise InputError("landmark folder not found", landmarks_dir)
    records = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        labels = folder if landmarks_dir is None else landmarks_dir / folder.name
        for mesh_path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".obj" and p.is_file()):
            records.append(_record(mesh_path, folder.name, labels))
    if not records:
        raise InputError("no Headspace meshes (expected <subject>/*.obj)", root)
    return records


def folder_records(root: str | Path, recursive: bool = True) -> list[ScanRecord]:
    """Meshes (.obj .ply .stl .off) in a folder, with landmark files of the same stem beside them.

    The subject of a mesh in a subfolder is that folder's path relative to ``root`` (e.g. ``"s01"``); of a
    mesh directly in ``root``, its file name up to the first ``_`` (``s01_smile.ply`` -> ``"s01"``).
    """
    root = _check_root(root)
    candidates = root.rglob("*") if recursive else root.iterdir()
    meshes = sorted(p for p in candidates if p.suffix.lower() in MESH_SUFFIXES and p.is_file())
    if not meshes:
        raise InputError(f"no meshes ({', '.join(MESH_SUFFIXES)}) in this folder", root)
    records = []
    for mesh_path in meshes:
        relative = mesh_path.parent.relative_to(root)
        subject = relative.as_posix() if relative.parts else mesh_path.stem.split("_", 1)[0]
        records.append(_record(mesh_path, subject, mesh_path.parent))
    return records


# --- splits ------------------------------------------------------------------------------------------


def _side_sizes(n: int, shares: np.ndarray) -> np.ndarray:
    """How many of ``n`` subjects each side gets: largest remainders, then no wanted side left empty.

    An empty side with a positive share takes a subject from the largest side: training first (from any
    side), then test and validation (only from a side that keeps at least one).
    """
    exact = shares * n
    sizes = np.floor(exact).astype(int)
    for side in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[side] += 1
    for side in (0, 2, 1):
        donor = int(np.argmax(sizes))
        if shares[side] > 0 and sizes[side] == 0 and (sizes[donor] > 1 or (side == 0 and sizes[donor])):
            sizes[donor] -= 1
            sizes[side] += 1
    return sizes


def split_by_subject(
    records: list[ScanRecord], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[list[ScanRecord], list[ScanRecord], list[ScanRecord]]:
    """Train, validation and test records, with every subject's scans on one side only.

    Subjects (not meshes) are shuffled with ``seed`` and shared out by ``fractions`` (normalised to sum
    to 1). The split depends only on the set of subjects and the seed, not on the records' order. With a
    positive fraction, training is never empty, and validation and test are not once there are 3 subjects.
    """
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.shape != (3,) or not np.isfinite(shares).all() or (shares < 0).any() or shares.sum() <= 0:
        raise InputError(f"split fractions must be 3 non-negative numbers, not all zero, got {fractions}")
    subjects = sorted({r.subject for r in records})
    order = np.random.default_rng(seed).permutation(len(subjects))
    sizes = _side_sizes(len(subjects), shares / shares.sum())
    side_of = {
        subjects[i]: int(np.searchsorted(np.cumsum(sizes), k, side="right")) for k, i in enumerate(order)
    }
    sides: tuple[list[ScanRecord], list[ScanRecord], list[ScanRecord]] = ([], [], [])
    for record in records:
        sides[side_of[record.subject]].append(record)
    return sides


def annotated_records(root: str | Path) -> list[ScanRecord]:
    """The scans of a folder that have ground truth (a landmark file of the same stem)."""
    records = [r for r in folder_records(root) if r.landmarks is not None or r.vertex_indices is not None]
    if not records:
        raise InputError(
            "no mesh has a ground-truth landmark file of the same stem (.json, .ljson, .pp)", root
        )
    return records
