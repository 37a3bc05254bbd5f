"""AFLW2000-3D (Zhu et al. 2016), the benchmark of 3DDFA, in its two common layouts.

- The 3DDFA protocol layout: ``crops-120/`` (120x120 crops) with ``crops-120.list`` and ``configs/``
  (``AFLW2000-3D.pts68.npy`` (N, 3, 68), ``AFLW2000-3D-Reannotated.pts68.npy`` (N, 2, 68),
  ``AFLW2000-3D.pose.npy`` yaw in degrees, ``AFLW2000-3D_crop.roi_box.npy``); head-pose ground truth
  comes from the originals' ``.mat`` files in ``images/`` when they are there.
- The original release: ``imageNNNNN.jpg`` with ``imageNNNNN.mat`` (``pt3d_68``, ``Pose_Para``), in the
  folder itself or in ``images/``; crops are cut with 3DDFA's landmark-derived boxes (or with the
  configs' boxes when ``configs/`` is there). No re-annotated ground truth comes with this layout.

Landmarks are (N, 68, 3) in photo pixels; poses (N, 3) yaw, pitch, roll in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from facegraph.errors import InputError
from facegraph.geometry.crops import box_from_landmarks, crop
from facegraph.geometry.pose import aflw_pose_para_to_pose
from facegraph.io.images import read_image

CONFIG_FILES = {
    "gt": "AFLW2000-3D.pts68.npy",
    "reannotated": "AFLW2000-3D-Reannotated.pts68.npy",
    "yaw": "AFLW2000-3D.pose.npy",
    "boxes": "AFLW2000-3D_crop.roi_box.npy",
}
CROP_SIZE = 120


@dataclass
class Aflw2000:
    """The benchmark's faces: names, crop boxes, ground truth and where to read each crop from."""

    root: Path
    names: list[str]
    boxes: np.ndarray  # (N, 4) crop boxes in the originals
    landmarks: np.ndarray  # (N, 68, 3)
    landmarks_reannotated: np.ndarray | None  # (N, 68, 2)
    yaw: np.ndarray  # (N,) degrees, for the yaw bins
    pose: np.ndarray | None  # (N, 3) yaw, pitch, roll in degrees
    crops_folder: Path | None  # 120x120 crops, or None to cut them from the originals
    images_folder: Path | None

    def __len__(self) -> int:
        return len(self.names)

    def crop(self, index: int) -> np.ndarray:
        """The (120, 120, 3) uint8 RGB crop of face ``index``."""
        if self.crops_folder is not None:
            image = read_image(self.crops_folder / self.names[index])
            if image.shape[:2] != (CROP_SIZE, CROP_SIZE):
                raise InputError(
                    f"expected a {CROP_SIZE}x{CROP_SIZE} crop, got {image.shape[1]}x{image.shape[0]}",
                    self.crops_folder / self.names[index],
                )
            return image
        return crop(read_image(self.images_folder / self.names[index]), self.boxes[index], CROP_SIZE)


def _load_npy(path: Path, shape_tail: tuple[int, ...], n: int | None) -> np.ndarray:
    if not path.is_file():
        raise InputError("missing file of the AFLW2000-3D layout", path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npy array ({exc})", path) from None
    if (
        array.ndim != 1 + len(shape_tail)
        or array.shape[1:] != shape_tail
        or (n is not None and len(array) != n)
    ):
        expected = ("N" if n is None else str(n),) + tuple(map(str, shape_tail))
        raise InputError(f"expected shape ({', '.join(expected)}), got {array.shape}", path)
    return array


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(68, 3) landmarks and (3,) yaw, pitch, roll in degrees from one AFLW2000-3D ``.mat``."""
    if not path.is_file():
        raise InputError("missing .mat beside the photo", path)
    try:
        mat = scipy.io.loadmat(path)
        landmarks = np.asarray(mat["pt3d_68"], dtype=np.float64).T
        pose = aflw_pose_para_to_pose(mat["Pose_Para"])
    except (ValueError, KeyError, OSError, TypeError, IndexError, scipy.io.matlab.MatReadError) as exc:
        detail = f"no {exc} field" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise InputError(f"not an AFLW2000-3D .mat ({detail})", path) from None
    if landmarks.shape != (68, 3):
        raise InputError(f"pt3d_68 should be 3x68, got {landmarks.T.shape}", path)
    return landmarks, np.array([pose.yaw, pose.pitch, pose.roll])


def _read_mats(folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [_read_mat(folder / Path(name).with_suffix(".mat")) for name in names]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def load_aflw2000(root: str | Path) -> Aflw2000:
    """Read the benchmark from either layout (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("AFLW2000-3D folder not found", root)
    if (root / "crops-120").is_dir() or (root / "configs").is_dir():
        return _load_protocol_layout(root)
    for folder in (root, root / "images"):
        if folder.is_dir() and any(folder.glob("image*.mat")):
            return _load_original_layout(root, folder)
    raise InputError(
        "not an AFLW2000-3D folder: expected crops-120/ with configs/ (3DDFA layout) "
        "or imageNNNNN.jpg with .mat files",
        root,
    )


def _load_protocol_layout(root: Path) -> Aflw2000:
    configs = root / "configs"
    list_path = root / "crops-120.list"
    if not list_path.is_file():
        raise InputError("missing file of the AFLW2000-3D layout", list_path)
    names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
    n = len(names)
    gt = _load_npy(configs / CONFIG_FILES["gt"], (3, 68), n).transpose(0, 2, 1).astype(np.float64)
    reannotated = _load_npy(configs / CONFIG_FILES["reannotated"], (2, 68), n).transpose(0, 2, 1)
    yaw = _load_npy(configs / CONFIG_FILES["yaw"], (), n).astype(np.float64)
    boxes = _load_npy(configs / CONFIG_FILES["boxes"], (4,), n).astype(np.float64)
    images = root / "images"
    pose = _read_mats(images, names)[1] if images.is_dir() else None
    crops = root / "crops-120"
    return Aflw2000(
        root,
        names,
        boxes,
        gt,
        reannotated.astype(np.float64),
        yaw,
        pose,
        crops if crops.is_dir() else None,
        images if images.is_dir() else None,
    )


def _load_original_layout(root: Path, folder: Path) -> Aflw2000:
    names = sorted(p.with_suffix(".jpg").name for p in folder.glob("image*.mat"))
    for name in names:
        if not (folder / name).is_file():
            raise InputError("missing photo beside its .mat", folder / name)
    landmarks, pose = _read_mats(folder, names)
    boxes = np.stack([box_from_landmarks(points) for points in landmarks])
    return Aflw2000(root, names, boxes, landmarks, None, pose[:, 0].copy(), pose, None, folder)
