"""A statistical shape prior on the 68 landmarks, fused with the network's estimate.

The network places each landmark from the surface around it, so its errors are partly independent from
point to point: a brow a few millimetres off, an eye corner pulled along the lid. The 68 points of real
faces are strongly correlated, and a linear model of them (a point distribution model, as in active shape
models) says which combinations are plausible. The prior here is such a model made from the training
faces: the Basel Face Model's landmark vertices under the training distribution of shape and expression,
turned onto the canonical frame, as a mean and principal components with their variances.

Fusion treats the estimate ``y`` (turned onto the prior's mean) as ``mean + B c + e + n``: ``c`` the
components' coefficients, ``c ~ N(0, variances)``; ``e ~ N(0, off_model_mm²)`` per coordinate, the
shape that the BFM cannot express; ``n ~ N(0, noise_mm[k]²)``, the network's own error at landmark
``k``, estimated on held-out synthetic scans; small rigid motions, which the alignment may leave, are
free. The answer is the posterior mean of ``mean + B c + e`` (with those motions):
where the network is unsure (large ``noise_mm``) the prior's correlations decide, where it is sure the
estimate stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from facegraph.geometry.rigid import robust_rigid_fit
from facegraph.mesh.conventions import canonical_residuals

if TYPE_CHECKING:
    import torch

N_LANDMARKS = 68
PRIOR_KEYS = ("shape_prior_mean", "shape_prior_basis", "shape_prior_variances", "shape_prior_noise_mm")
OFF_MODEL_KEY = "shape_prior_off_model_mm"


@dataclass(frozen=True)
class ShapePrior:
    """Mean (68, 3) mm, orthonormal components (K, 204), their variances (K,) mm², the network's
    per-landmark noise (68,) mm per coordinate, and the spread of shape beyond the components (mm)."""

    mean: np.ndarray
    basis: np.ndarray
    variances: np.ndarray
    noise_mm: np.ndarray
    off_model_mm: float

    def __post_init__(self) -> None:
        values = (self.mean, self.basis, self.variances, self.noise_mm, self.off_model_mm)
        if not all(np.isfinite(value).all() for value in values):
            raise ValueError("the shape prior has NaN or infinite values")
        k = len(self.variances)
        if self.mean.shape != (N_LANDMARKS, 3) or self.basis.shape != (k, 3 * N_LANDMARKS):
            raise ValueError(
                f"need a (68, 3) mean and ({k}, 204) basis, got {self.mean.shape}, {self.basis.shape}"
            )
        if self.noise_mm.shape != (N_LANDMARKS,) or not (self.noise_mm > 0).all():
            raise ValueError("noise_mm must be 68 positive numbers")
        if not (self.variances > 0).all() or not self.off_model_mm >= 0:
            raise ValueError("variances must be positive and off_model_mm not negative")
        object.__setattr__(self, "_gain", self._posterior_gain())

    def _posterior_gain(self) -> np.ndarray:
        """The linear map (204, 204) from an aligned estimate's deviation from the mean to the posterior
        mean's: it depends only on the prior, so it is made once."""
        weights = 1.0 / (self.off_model_mm**2 + np.repeat(self.noise_mm**2, 3))
        # Small rigid motions about the mean are free: what the alignment left of them is not shape.
        components = np.concatenate([self.basis.T, rigid_motions(self.mean)], axis=1)
        precision = np.concatenate([1.0 / self.variances, np.zeros(6)])
        normal = components.T @ (weights[:, None] * components) + np.diag(precision)
        in_model = components @ np.linalg.solve(normal, components.T * weights)
        off_model = self.off_model_mm**2 * weights[:, None] * (np.eye(len(weights)) - in_model)
        return in_model + off_model

    def fuse(self, points: np.ndarray) -> np.ndarray:
        """The posterior mean (68, 3) of the landmarks given the network's estimate ``points``, in its
        frame."""
        rotation, shift = robust_rigid_fit(self.mean, points)
        deviation = ((points - shift) @ rotation - self.mean).reshape(-1)
        fused = self.mean + (self._gain @ deviation).reshape(N_LANDMARKS, 3)
        return fused @ rotation.T + shift

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The prior as named arrays, for the weights file."""
        values = (self.mean, self.basis, self.variances, self.noise_mm)
        arrays = dict(zip(PRIOR_KEYS, values, strict=True))
        arrays[OFF_MODEL_KEY] = np.array([self.off_model_mm])
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ShapePrior | None:
        """The prior stored in a weights file's arrays, or None when it has none; ValueError when they
        are misshapen, not finite or not a valid prior."""
        if not all(key in arrays for key in (*PRIOR_KEYS, OFF_MODEL_KEY)):
            return None
        mean, basis, variances, noise = (np.asarray(arrays[key], dtype=np.float64) for key in PRIOR_KEYS)
        return cls(mean, basis, variances, noise, float(np.asarray(arrays[OFF_MODEL_KEY]).item()))


def prior_shapes(arrays: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The shapes a stored prior's arrays must have; its number of components is the variances'."""
    variances = arrays.get(PRIOR_KEYS[2])
    k = len(variances) if variances is not None and variances.ndim else 0
    shapes = ((N_LANDMARKS, 3), (k, 3 * N_LANDMARKS), (k,), (N_LANDMARKS,))
    return {**dict(zip(PRIOR_KEYS, shapes, strict=True)), OFF_MODEL_KEY: (1,)}


def rigid_motions(points: np.ndarray) -> np.ndarray:
    """Orthonormal directions (3N, 6) in which a point set (N, 3) moves under small shifts and turns."""
    shifts = [np.tile(axis, len(points)) for axis in np.eye(3)]
    turns = [np.cross(axis, points - points.mean(axis=0)).reshape(-1) for axis in np.eye(3)]
    directions, _ = np.linalg.qr(np.stack(shifts + turns, axis=1))
    return directions


def landmark_noise(estimates: np.ndarray, truths: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """Root-mean-square error (68,) per coordinate of each landmark over scans (N, 68, 3), in the
    canonical frame (each scan's frame from its estimate, as when the prior is applied)."""
    return np.sqrt(np.mean(canonical_residuals(estimates, truths, canonical) ** 2, axis=(0, 2)))
