"""Alignment of corresponding 3D point sets: rigid (Kabsch), plain and trimmed, and with a scale (Umeyama)."""

from __future__ import annotations

import numpy as np

TRIMMED_FRACTION = 0.3  # the share of worst-fitting points the robust fit leaves out


def _best_rotation(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """For centred point sets: the rotation R (no reflection) best turning ``source`` onto ``target``,
    and the sum of the signed singular values, trace(R @ source.T @ target), which gives the scale."""
    u, singular, vt = np.linalg.svd(source.T @ target)
    signs = np.array([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    return vt.T @ np.diag(signs) @ u.T, float((singular * signs).sum())


def rigid_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation R and shift t minimising |source @ R.T + t - target| (Kabsch, no reflection)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    rotation, _ = _best_rotation(source - source_mean, target - target_mean)
    return rotation, target_mean - source_mean @ rotation.T


def robust_rigid_fit(
    source: np.ndarray, target: np.ndarray, rounds: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """``rigid_fit`` refitted on the best-fitting 70% of the points, so wild estimates do not tilt it."""
    keep = np.ones(len(source), dtype=bool)
    for _ in range(rounds):
        rotation, shift = rigid_fit(source[keep], target[keep])
        residual = np.linalg.norm(source @ rotation.T + shift - target, axis=1)
        keep = residual <= np.quantile(residual, 1.0 - TRIMMED_FRACTION)
    return rotation, shift


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The scale s, rotation R and shift t minimising |s * source @ R.T + t - target| (Umeyama, no
    reflection): for point sets in unknown units."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    centred = source - source_mean
    rotation, trace = _best_rotation(centred, target - target_mean)
    scale = trace / float((centred**2).sum())
    return scale, rotation, target_mean - scale * source_mean @ rotation.T
