"""The Basel Face Model in 3DDFA's layout, decoded in batches with torch.

A face is ``mean + shape_basis @ alpha_shp + expression_basis @ alpha_exp`` (x, y, z interleaved per
vertex, in micrometres), posed by a 3x4 affine camera ``[s R | t]``. The 62 numbers of the parameter
layout are the camera's 12 entries (row-major), 40 shape and 10 expression coefficients; networks
predict them whitened, ``(p - mean) / std``.

Two folder layouts are read (nothing of the BFM ships with facegraph: its licence is research-only):

- the full layout: ``u_shp.npy``, ``u_exp.npy``, ``w_shp_sim.npy``, ``w_exp_sim.npy``,
  ``keypoints_sim.npy``, ``param_whitening.pkl`` and triangles from ``tri.mat`` or ``bfm.ply``:
  landmarks and the 53,215-vertex dense mesh;
- the 68-point basis (``u_base.txt``, ``w_shp_base.txt``, ``w_exp_base.txt``, ``param_mean.txt``,
  ``param_std.txt``): enough to decode the 68 landmarks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import nn

from facegraph.errors import InputError
from facegraph.io.safe_pickle import load_array_pickle

N_CAMERA, N_SHAPE, N_EXPRESSION = 12, 40, 10
N_PARAMS = N_CAMERA + N_SHAPE + N_EXPRESSION
N_LANDMARKS = 68
BFM_ENV = "FACEGRAPH_BFM"

_FULL_FILES = ("u_shp.npy", "u_exp.npy", "w_shp_sim.npy", "w_exp_sim.npy", "keypoints_sim.npy")
_BASIS_FILES = ("u_base.txt", "w_shp_base.txt", "w_exp_base.txt")


@dataclass(frozen=True)
class ParamWhitening:
    """Per-parameter mean and std of a 62-number parameter vector."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = np.asarray(getattr(self, name), dtype=np.float32).reshape(-1)
            if value.shape != (N_PARAMS,):
                raise ValueError(f"whitening {name} must have {N_PARAMS} numbers, got {value.shape}")
            object.__setattr__(self, name, value)

    def whiten(self, params: torch.Tensor) -> torch.Tensor:
        return (params - params.new_tensor(self.mean)) / params.new_tensor(self.std)

    def unwhiten(self, params: torch.Tensor) -> torch.Tensor:
        return params * params.new_tensor(self.std) + params.new_tensor(self.mean)


def split_params(params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, 62) -> scaled rotation (B, 3, 3), translation (B, 3), alpha_shp (B, 40), alpha_exp (B, 10)."""
    camera = params[:, :N_CAMERA].reshape(-1, 3, 4)
    return (
        camera[:, :, :3],
        camera[:, :, 3],
        params[:, N_CAMERA : N_CAMERA + N_SHAPE],
        params[:, N_CAMERA + N_SHAPE :],
    )


class MorphableModel(nn.Module):
    """Batched decoding of 62-number parameters to 3D points (the 68 landmarks or the dense mesh).

    Output points are in the camera's frame (x right, y up, z toward the viewer), in the units the
    camera maps to (for 3DDFA-style networks: pixels of the input crop, before its y flip).
    """

    def __init__(
        self,
        mean: np.ndarray,
        shape_basis: np.ndarray,
        expression_basis: np.ndarray,
        landmark_vertices: np.ndarray,
        triangles: np.ndarray | None = None,
        whitening: ParamWhitening | None = None,
    ) -> None:
        super().__init__()
        n_coords = len(mean)
        if shape_basis.shape != (n_coords, N_SHAPE) or expression_basis.shape != (n_coords, N_EXPRESSION):
            raise ValueError(
                f"bases must be ({n_coords}, {N_SHAPE}) and ({n_coords}, {N_EXPRESSION}), "
                f"got {shape_basis.shape} and {expression_basis.shape}"
            )
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(-1))
        self.register_buffer("shape_basis", torch.as_tensor(shape_basis, dtype=torch.float32))
        self.register_buffer("expression_basis", torch.as_tensor(expression_basis, dtype=torch.float32))
        self.register_buffer("landmark_vertices", torch.as_tensor(landmark_vertices, dtype=torch.long))
        self.triangles = None if triangles is None else np.asarray(triangles, dtype=np.int64)
        self.whitening = whitening

    @property
    def n_vertices(self) -> int:
        return self.mean.numel() // 3

    @property
    def has_dense(self) -> bool:
        """False when only the 68-point basis was loaded."""
        return self.n_vertices != N_LANDMARKS or self.triangles is not None

    def _decode(self, params: torch.Tensor, coords: torch.Tensor | None) -> torch.Tensor:
        rotation, translation, alpha_shp, alpha_exp = split_params(params)
        mean, shp, exp = self.mean, self.shape_basis, self.expression_basis
        if coords is not None:
            mean, shp, exp = mean[coords], shp[coords], exp[coords]
        shape = mean + alpha_shp @ shp.T + alpha_exp @ exp.T
        points = shape.reshape(len(params), -1, 3)
        return points @ rotation.transpose(1, 2) + translation[:, None, :]

    def landmarks(self, params: torch.Tensor) -> torch.Tensor:
        """(B, 62) unwhitened parameters -> (B, 68, 3) posed landmarks."""
        if self.n_vertices == N_LANDMARKS and len(self.landmark_vertices) == N_LANDMARKS:
            return self._decode(params, None)
        coords = (self.landmark_vertices[:, None] * 3 + torch.arange(3, device=params.device)).reshape(-1)
        return self._decode(params, coords)

    def vertices(self, params: torch.Tensor) -> torch.Tensor:
        """(B, 62) unwhitened parameters -> (B, V, 3) posed dense vertices."""
        if not self.has_dense:
            raise RuntimeError("this morphable model was loaded from the 68-point basis: no dense mesh")
        return self._decode(params, None)


def _need(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        if not (folder / name).is_file():
            raise InputError(f"missing {name} (see docs/data-layouts.md)", folder)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"not a readable .npy array ({exc})", path) from None


def _load_txt(path: Path) -> np.ndarray:
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as exc:
        raise InputError(f"not a text array ({exc})", path) from None


def _load_triangles(folder: Path) -> np.ndarray | None:
    if (folder / "tri.mat").is_file():
        try:
            tri = scipy.io.loadmat(folder / "tri.mat")["tri"]
        except (ValueError, KeyError, OSError) as exc:
            raise InputError(f"not a triangle .mat with a 'tri' array ({exc})", folder / "tri.mat") from None
        tri = np.asarray(tri, dtype=np.int64)
        tri = tri.T if tri.shape[0] == 3 else tri
        return tri - 1  # Matlab indices are 1-based
    if (folder / "bfm.ply").is_file():
        import trimesh

        return np.asarray(trimesh.load(folder / "bfm.ply", process=False).faces, dtype=np.int64)
    return None


def resolve_bfm_folder(folder: str | Path | None) -> Path:
    """The BFM folder from a flag, else from ``$FACEGRAPH_BFM``, else the one ``facegraph setup bfm``
    installed; InputError when none is usable."""
    from facegraph.morphable.setup import installed_bfm_folder  # it loads BFMs with this module

    chosen = folder if folder is not None else os.environ.get(BFM_ENV) or installed_bfm_folder()
    if not chosen:
        raise InputError(
            f"no BFM folder: run `facegraph setup bfm SOURCE` once, or pass --bfm DIR or set {BFM_ENV}"
            " (see docs/data-layouts.md)"
        )
    path = Path(chosen)
    if not path.is_dir():
        raise InputError("BFM folder not found", path)
    return path


def load_bfm(folder: str | Path | None = None) -> MorphableModel:
    """Load the BFM from a folder in either layout (the full one is preferred when both are there)."""
    folder = resolve_bfm_folder(folder)
    has_full = all((folder / name).is_file() for name in _FULL_FILES)
    if has_full:
        return _load_full(folder)
    for basis in (folder, folder / "keypoints68-basis"):
        if (basis / "u_base.txt").is_file():
            return _load_basis(basis)
    if (folder / "u_shp.npy").is_file():
        missing = [name for name in _FULL_FILES if not (folder / name).is_file()]
        raise InputError(f"missing {', '.join(missing)} (the dense bases: see docs/data-layouts.md)", folder)
    raise InputError(
        "not a BFM folder: expected u_shp.npy (full layout) or u_base.txt (68-point basis)", folder
    )


def _load_full(folder: Path) -> MorphableModel:
    _need(folder, _FULL_FILES)
    mean = _load_npy(folder / "u_shp.npy").reshape(-1) + _load_npy(folder / "u_exp.npy").reshape(-1)
    keypoints = _load_npy(folder / "keypoints_sim.npy").reshape(-1)
    if keypoints.shape != (3 * N_LANDMARKS,):
        raise InputError(f"expected {3 * N_LANDMARKS} keypoint coordinates", folder / "keypoints_sim.npy")
    whitening = None
    if (folder / "param_whitening.pkl").is_file():
        stats = load_array_pickle(folder / "param_whitening.pkl")
        whitening = ParamWhitening(stats["param_mean"], stats["param_std"])
    return MorphableModel(
        mean,
        _load_npy(folder / "w_shp_sim.npy"),
        _load_npy(folder / "w_exp_sim.npy"),
        landmark_vertices=keypoints[0::3] // 3,
        triangles=_load_triangles(folder),
        whitening=whitening,
    )


def _load_basis(folder: Path) -> MorphableModel:
    _need(folder, _BASIS_FILES)
    whitening = None
    if (folder / "param_mean.txt").is_file() and (folder / "param_std.txt").is_file():
        whitening = ParamWhitening(_load_txt(folder / "param_mean.txt"), _load_txt(folder / "param_std.txt"))
    shape_basis = _load_txt(folder / "w_shp_base.txt").reshape(3 * N_LANDMARKS, -1)
    expression_basis = _load_txt(folder / "w_exp_base.txt").reshape(3 * N_LANDMARKS, -1)
    return MorphableModel(
        _load_txt(folder / "u_base.txt"),
        shape_basis,
        expression_basis,
        landmark_vertices=np.arange(N_LANDMARKS),
        whitening=whitening,
    )
