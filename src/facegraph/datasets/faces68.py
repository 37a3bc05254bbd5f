"""68-point photo benchmarks (300-W, COFW-68, ...) in two layouts.

- An iBUG-style folder: photos with an iBUG ``.pts`` of the same stem anywhere below it (the
  subset of a face is its first folder below the root, e.g. ``afw`` or ``helen``).
- SPIGA's annotation format: ``test.json`` (a list of ``{"imgpath", "bbox": [x, y, w, h],
  "landmarks": 68 x [x, y], "visible", ...}``) with ``db_info.json`` beside it (``norm``: normaliser
  name -> AUC threshold in percent; ``test_subsets``: subset name -> indices). The annotations carry no
  photos: ``images`` names the folder that ``imgpath`` is relative to. A record's ``headpose`` (yaw,
  pitch, roll in degrees, then a translation) is SPIGA's fit of its 3D mean face to the landmarks. Its
  yaw is positive when the nose moves toward the image's right, facegraph's toward the left
  (``docs/conventions.md``), so the yaw is negated on reading: fitting the same mean face here
  reproduces the annotated angles under that one change.

Points are 0-based photo pixels, (N, 68, 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegraph.errors import InputError
from facegraph.formats import PHOTO_SUFFIXES
from facegraph.io.landmarks import read_pts

DEFAULT_NORMS = {"corners": 8.0, "pupils": 8.0}
SPIGA_POSE_SIGNS = np.array([-1.0, 1.0, 1.0])  # SPIGA's (yaw, pitch, roll) -> facegraph's


@dataclass
class Faces68:
    """Faces with 68 ground-truth points, their photos, optional annotation boxes, and subsets."""

    name: str
    photos: list[Path]
    landmarks: np.ndarray  # (N, 68, 2)
    visible: np.ndarray  # (N, 68) bool
    boxes: np.ndarray | None = None  # (N, 4) annotation boxes [x0, y0, x1, y1]
    subsets: dict[str, np.ndarray] = field(default_factory=dict)  # name -> indices
    norms: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_NORMS))
    headpose: np.ndarray | None = None  # (N, 3) annotated yaw, pitch, roll (degrees, facegraph's signs)

    def __len__(self) -> int:
        return len(self.photos)


def load_faces68(data: str | Path, images: str | Path | None = None) -> Faces68:
    """Read an iBUG-style folder, or SPIGA annotations (a ``test.json`` or the folder holding it)."""
    data = Path(data)
    if not data.exists():
        raise InputError("data folder not found", data)
    if data.is_file() and data.suffix == ".json":
        return _load_spiga(data, images)
    if (data / "test.json").is_file():
        return _load_spiga(data / "test.json", images)
    if data.is_dir():
        return _load_ibug_folder(data)
    raise InputError("expected a folder of photos with .pts files, or SPIGA's test.json", data)


def _load_ibug_folder(root: Path) -> Faces68:
    photos, points = [], []
    for pts in sorted(root.rglob("*.pts")):
        photo = next((pts.with_suffix(s) for s in PHOTO_SUFFIXES if pts.with_suffix(s).is_file()), None)
        if photo is None:
            raise InputError(f"no photo beside it (looked for {', '.join(PHOTO_SUFFIXES)})", pts)
        landmarks = read_pts(pts)
        if landmarks.n_points != 68:
            raise InputError(f"expected 68 points, found {landmarks.n_points}", pts)
        photos.append(photo)
        points.append(landmarks.points)
    if not photos:
        raise InputError("no .pts files found below this folder", root)
    groups = np.array(
        [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "" for p in photos]
    )
    subsets = {name: np.flatnonzero(groups == name) for name in sorted(set(groups)) if name}
    landmarks = np.stack(points)
    return Faces68(root.name, photos, landmarks, np.ones(landmarks.shape[:2], dtype=bool), subsets=subsets)


def _load_spiga(path: Path, images: str | Path | None) -> Faces68:
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON file ({exc})", path) from None
    if not isinstance(records, list) or not records:
        raise InputError("expected a non-empty list of face records", path)
    info_path = path.parent / "db_info.json"
    info = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not a readable JSON file ({exc})", info_path) from None
    root = Path(images) if images is not None else path.parent
    try:
        landmarks = np.array([r["landmarks"] for r in records], dtype=np.float64)
        visible = np.array([r.get("visible", [1] * 68) for r in records], dtype=np.float64) > 0
        xywh = np.array([r["bbox"] for r in records], dtype=np.float64)
        photos = [root / r["imgpath"] for r in records]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"face records need imgpath, bbox and 68 landmarks ({exc})", path) from None
    if landmarks.shape[1:] != (68, 2):
        raise InputError(f"expected 68 landmarks of 2 numbers per face, got {landmarks.shape[1:]}", path)
    missing = next((p for p in photos if not p.is_file()), None)
    if missing is not None:
        hint = "" if images is not None else "; SPIGA annotations carry no photos: pass --images DIR"
        raise InputError(f"photo not found{hint}", missing)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    subsets = {name: np.asarray(idx, dtype=int) for name, idx in (info.get("test_subsets") or {}).items()}
    norms = {name: float(thr) for name, thr in info.get("norm", DEFAULT_NORMS).items()}
    headpose = _spiga_headpose(records, path)
    return Faces68(path.parent.name, photos, landmarks, visible, boxes, subsets, norms, headpose)


def _spiga_headpose(records: list[dict], path: Path) -> np.ndarray | None:
    """(N, 3) annotated head poses in facegraph's signs, or None unless every record has one."""
    if not all("headpose" in r for r in records):
        return None
    try:
        angles = np.array([r["headpose"][:3] for r in records], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"headpose must start with yaw, pitch and roll in degrees ({exc})", path) from None
    if angles.shape != (len(records), 3) or not np.isfinite(angles).all():
        raise InputError("headpose must start with three finite angles (yaw, pitch, roll) per face", path)
    return angles * SPIGA_POSE_SIGNS
