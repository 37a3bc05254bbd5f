"""Cumulative error distributions, their area under the curve and failure rates."""

from __future__ import annotations

import numpy as np


def ced(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of faces whose error is at most each threshold."""
    errors = np.sort(np.asarray(errors, dtype=np.float64))
    return np.searchsorted(errors, np.asarray(thresholds, dtype=np.float64), side="right") / len(errors)


def auc(errors: np.ndarray, threshold: float) -> float:
    """Area under the CED from 0 to ``threshold``, divided by ``threshold`` (in [0, 1]).

    Computed exactly: the CED is a step function, so its integral is the mean over faces of
    max(0, threshold - error). (Published code integrates numerically on a grid — SciPy's removed
    ``simps`` among them — which differs from this in the fourth decimal at most.)
    """
    errors = np.asarray(errors, dtype=np.float64)
    return float(np.mean(np.clip(threshold - errors, 0.0, None)) / threshold)


def failure_rate(errors: np.ndarray, threshold: float) -> float:
    """Fraction of faces whose error exceeds ``threshold``."""
    return float(np.mean(np.asarray(errors, dtype=np.float64) > threshold))
