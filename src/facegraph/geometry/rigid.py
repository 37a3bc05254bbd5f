"""Rigid alignment of corresponding 3D point sets (Kabsch), plain and trimmed."""

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
