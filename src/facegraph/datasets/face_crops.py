"""Training faces for crop-to-3DMM networks: 120x120 crops with the human-labelled points they carry.

Points are in the crop's pixels (x right, y down), in the frame ``crop_to_image`` maps from (3DDFA's
benchmark convention), as (N, 68, 2) iBUG-68 arrays with NaN where a face has no label for a point:

- ``aflw-train``: AFLW's 21 points (ear lobes, eye centres, nose wings and mouth centre have no iBUG
  counterpart and are left out; unlabelled points are marked by x = -1). Crops come cut already;
  ``roi_box.npy`` maps them back to the originals.
- a 300-W style folder (photos with 68-point ``.pts``): cut here with 3DDFA's landmark box.

``groups`` names the photo each face comes from, so that a validation split never shares a photo with
the training side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from facegraph.datasets.faces68 import load_faces68
from facegraph.errors import InputError
from facegraph.geometry.crops import box_from_landmarks, crop
from facegraph.io.images import read_image
from facegraph.schemes.registry import AFLW21_IBUG68_PAIRS

CROP_SIZE = 120
# The crop frame of 3DDFA's models: y points up, y_down = Y_FLIP - y_up (Matlab's 1-based rows).
Y_FLIP = CROP_SIZE + 1.0
AFLW_FILES = ("crops-120.list", "pts21.npy", "roi_box.npy")
AFLW_UNLABELLED = -1.0
# The photo frame's pixel convention differs by one between the 300-W .pts reader (0-based pixel
# centres) and 3DDFA's crop frame (1-based, Matlab): 300-W points move by this much into that frame.
PTS_TO_CROP_FRAME = 1.0


@dataclass
class FaceCrops:
    """Crops (N, 120, 120, 3) uint8 RGB, their (N, 68, 2) points in crop pixels (NaN: unlabelled)."""

    crops: np.ndarray
    points: np.ndarray
    groups: np.ndarray  # (N,) photo names
    source: np.ndarray  # (N,) dataset names

    def __len__(self) -> int:
        return len(self.crops)

    def subset(self, indices: np.ndarray) -> FaceCrops:
        return FaceCrops(
            self.crops[indices], self.points[indices], self.groups[indices], self.source[indices]
        )


def concatenate(parts: list[FaceCrops]) -> FaceCrops:
    return FaceCrops(
        np.concatenate([p.crops for p in parts]),
        np.concatenate([p.points for p in parts]),
        np.concatenate([p.groups for p in parts]),
        np.concatenate([p.source for p in parts]),
    )


def _photo_to_crop(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, P, 2) photo pixels -> crop pixels of the (N, 4) boxes (the inverse of crop_to_image in x, y)."""
    scale = (boxes[:, 2:] - boxes[:, :2]) / CROP_SIZE
    return (points - boxes[:, None, :2]) / scale[:, None, :]


def load_aflw_train(folder: str | Path, progress: bool = True) -> FaceCrops:
    """Read the AFLW training crops (``crops-120/``, ``crops-120.list``, ``pts21.npy``, ``roi_box.npy``)."""
    folder = Path(folder)
    for name in AFLW_FILES:
        if not (folder / name).is_file():
            raise InputError(f"missing {name}: not an aflw-train folder", folder)
    names = (folder / "crops-120.list").read_text().split()
    pts21 = np.load(folder / "pts21.npy", allow_pickle=False).astype(np.float64)
    boxes = np.load(folder / "roi_box.npy", allow_pickle=False).astype(np.float64)
    if pts21.shape != (len(names), 2, 21) or boxes.shape != (len(names), 4):
        raise InputError(f"pts21/roi_box do not match the {len(names)} listed crops", folder)
    points21 = pts21.transpose(0, 2, 1)
    points21[points21[..., 0] == AFLW_UNLABELLED] = np.nan
    points = np.full((len(names), 68, 2), np.nan)
    for aflw, ibug in AFLW21_IBUG68_PAIRS:
        points[:, ibug] = points21[:, aflw]
    crops = np.stack(
        [
            _read_crop(folder / "crops-120" / name)
            for name in tqdm(names, desc="aflw-train", disable=not progress)
        ]
    )
    return FaceCrops(crops, _photo_to_crop(points, boxes), np.array(names), np.full(len(names), "aflw"))


def _read_crop(path: Path) -> np.ndarray:
    rgb = read_image(path)
    if rgb.shape[:2] != (CROP_SIZE, CROP_SIZE):
        rgb = np.asarray(Image.fromarray(rgb).resize((CROP_SIZE, CROP_SIZE), Image.BILINEAR))
    return rgb


def face_crop(rgb: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 3DDFA-style crop of the face whose (68, 2) 0-based photo points are given (NaN: unlabelled,
    left out of the box), and the points in its pixels."""
    shifted = points + PTS_TO_CROP_FRAME
    box = box_from_landmarks(shifted[np.isfinite(shifted).all(axis=1)])
    return crop(rgb, box, CROP_SIZE), _photo_to_crop(shifted[None], box[None])[0]


def load_faces68_crops(folder: str | Path, progress: bool = True) -> FaceCrops:
    """Cut 3DDFA-style crops from a folder of photos with 68-point ``.pts`` (e.g. 300-W's training sets)."""
    faces = load_faces68(folder)
    pairs = [
        face_crop(read_image(photo), points)
        for photo, points in tqdm(
            zip(faces.photos, faces.landmarks, strict=True),
            total=len(faces),
            desc=faces.name,
            disable=not progress,
        )
    ]
    groups = np.array([photo.stem.rsplit("_", 1)[0] for photo in faces.photos])
    crops, points = (np.stack(part) for part in zip(*pairs, strict=True))
    return FaceCrops(crops, points, groups, np.full(len(pairs), "68pt"))


def split_by_group(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices with about ``fraction`` of the photos on the validation side."""
    names = np.unique(groups)
    held = np.random.default_rng(seed).permutation(names)[: int(round(fraction * len(names)))]
    is_val = np.isin(groups, held)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def to_y_down(points: torch.Tensor) -> torch.Tensor:
    """(..., 3) crop-frame points (y up) -> (..., 2) x, y-down, the frame of the human labels."""
    return torch.stack([points[..., 0], Y_FLIP - points[..., 1]], dim=-1)
