"""A user's folder of annotated photos (fine-tuning data): each face's crop and its 68 points.

Three annotation layouts are read, and may be mixed in one folder (searched recursively):

- a photo with an iBUG ``.pts`` of the same stem beside it;
- a photo with the project's landmark ``.json`` of the same stem beside it (``facegraph.io.landmarks``);
- SPIGA's annotation lists: any other ``.json`` holding a list of face records, each with ``imgpath``
  (relative to the JSON's folder) and 68 ``landmarks`` as [x, y] pixels (several faces may share a photo).

Every face is cut as the training crops are (``facegraph.datasets.face_crops``). A file that cannot be
used (an unreadable photo, a malformed annotation, one that is not 68 points, a photo without one) is an
``InputError`` naming it; with ``skip_bad`` it is listed among the skipped files and left out instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from facegraph.datasets.face_crops import FaceCrops, face_crop
from facegraph.errors import InputError
from facegraph.formats import PHOTO_SUFFIXES
from facegraph.io.images import read_image
from facegraph.io.landmarks import read_landmarks

SOURCE = "user"  # FaceCrops.source of these faces: trained and validated on, never held out for testing
PER_PHOTO_SUFFIXES = (".pts", ".json")
T = TypeVar("T")


@dataclass(frozen=True)
class SkippedFile:
    path: Path
    problem: str


def load_annotated_photos(
    folder: str | Path, skip_bad: bool = False, progress: bool = True
) -> tuple[FaceCrops, list[SkippedFile]]:
    """The faces of ``folder`` as crops with their points, and the files left out (only with
    ``skip_bad``; otherwise the first bad file raises)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a folder" if folder.exists() else "folder not found", folder)
    skipped: list[SkippedFile] = []

    def attempt(path: Path, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except InputError as error:
            if not skip_bad:
                raise
            skipped.append(SkippedFile(error.path or path, error.problem))
            return None

    faces = _annotations(folder, attempt)
    crops, points, groups = [], [], []
    by_photo: dict[Path, list[np.ndarray]] = {}
    for photo, face in faces:
        by_photo.setdefault(photo, []).append(face)
    for photo, photo_faces in tqdm(by_photo.items(), desc=folder.name, unit="photo", disable=not progress):
        rgb = attempt(photo, lambda photo=photo: read_image(photo))
        for face in photo_faces if rgb is not None else []:
            crop, crop_points = face_crop(rgb, face)
            crops.append(crop)
            points.append(crop_points)
            groups.append(str(photo.relative_to(folder)))
    if not crops:
        raise InputError("no usable annotated faces in this folder (.pts, .json or SPIGA's lists)", folder)
    data = FaceCrops(np.stack(crops), np.stack(points), np.array(groups), np.full(len(crops), SOURCE))
    return data, skipped


def _annotations(folder: Path, attempt: Callable) -> list[tuple[Path, np.ndarray]]:
    """(photo, (68, 2) 0-based pixel points) of every annotated face, in a stable order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES]
    stems = {p.with_suffix("") for p in photos}
    faces: list[tuple[Path, np.ndarray]] = []
    listed: set[Path] = set()
    for listing in (p for p in files if p.suffix.lower() == ".json" and p.with_suffix("") not in stems):
        records = attempt(listing, lambda listing=listing: _spiga_list(listing)) or []
        for index, record in enumerate(records):
            face = attempt(
                listing,
                lambda index=index, record=record, listing=listing: _spiga_face(listing, index, record),
            )
            if face is not None:
                faces.append(face)
                listed.add(face[0])
    for photo in photos:
        if photo in listed:
            continue
        points = attempt(photo, lambda photo=photo: _per_photo_points(photo))
        if points is not None:
            faces.append((photo, points))
    return faces


def _per_photo_points(photo: Path) -> np.ndarray:
    annotation = next(
        (photo.with_suffix(s) for s in PER_PHOTO_SUFFIXES if photo.with_suffix(s).is_file()), None
    )
    if annotation is None:
        raise InputError("no annotation beside it (a .pts or .json of the same name)", photo)
    landmarks = read_landmarks(annotation)
    if landmarks.n_points != 68 or landmarks.points.shape[1] != 2:
        raise InputError(f"expected 68 2D points, found {landmarks.n_points}", annotation)
    points = landmarks.points.astype(np.float64)
    if not np.isfinite(points).all(axis=1).any():
        raise InputError("no point has coordinates", annotation)
    return points


def _spiga_list(listing: Path) -> list:
    """The records of one SPIGA annotation list."""
    try:
        records = json.loads(listing.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a readable JSON file ({exc})", listing) from None
    if not isinstance(records, list) or not records:
        raise InputError("not an annotation: expected a non-empty list of SPIGA face records", listing)
    return records


def _spiga_face(listing: Path, index: int, record: object) -> tuple[Path, np.ndarray]:
    """(photo, points) of the list's record ``index``; a record that is not one names the list and index."""
    try:
        photo = listing.parent / record["imgpath"]
        points = np.array(record["landmarks"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"record {index} needs imgpath and 68 [x, y] landmarks ({exc})", listing) from None
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise InputError(f"record {index} needs 68 finite [x, y] landmarks", listing)
    if not photo.is_file():
        raise InputError(f"record {index}: photo not found ({record['imgpath']})", listing)
    return photo, points
