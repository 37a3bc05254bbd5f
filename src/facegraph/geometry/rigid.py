"""Alignment of corresponding 3D point sets: rigid (Kabsch), plain and trimmed, and with a scale (Umeyama)."""

from __future__ import annotations

import numpy as np

TRIMMED_FRACTION = 0.3  # the share of worst-fitting points the robust fit leaves out


def rigid_fit(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation R and shift t minimising |source @ R.T + t - target| (Kabsch, no reflection)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - source_mean).T @ (target - target_mean))
    flip = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, flip]) @ u.T
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
    u, singular, vt = np.linalg.svd(centred.T @ (target - target_mean))
    signs = np.array([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))])
    rotation = vt.T @ np.diag(signs) @ u.T
    scale = float((singular * signs).sum() / (centred**2).sum())
    return scale, rotation, target_mean - scale * source_mean @ rotation.T
