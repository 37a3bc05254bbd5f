"""Head-pose errors."""

from __future__ import annotations

import numpy as np

ANGLES = ("yaw", "pitch", "roll")


def pose_mae(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean absolute error in degrees per angle of (N, 3) [yaw, pitch, roll] arrays, and their mean.

    The difference is wrapped into [-180, 180) so that 179 and -179 degrees are 2 degrees apart.
    """
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64)
    diff = (diff + 180.0) % 360.0 - 180.0
    mae = np.abs(diff).mean(axis=0)
    result = {name: float(value) for name, value in zip(ANGLES, mae, strict=True)}
    result["mean"] = float(mae.mean())
    return result


def within_range(gt: np.ndarray, limit: float = 99.0) -> np.ndarray:
    """(N,) True for faces whose three angles all lie within [-limit, limit] degrees."""
    return np.all(np.abs(np.asarray(gt, dtype=np.float64)) <= limit, axis=1)
