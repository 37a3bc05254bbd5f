"""Evaluating a mesh landmarker over scans with ground-truth landmarks, in millimetres."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from facegraph.datasets.scans import ScanRecord, load_scan
from facegraph.metrics.landmarks import mesh_landmark_errors
from facegraph.types import Mesh


@dataclass
class ScanPredictions:
    """Predictions (N, 68, 3) and ground truth (N, 68, 3; NaN where unannotated) of the scans that have
    ground truth, their mesh paths and the seconds each prediction took."""

    names: list[str]
    predictions: np.ndarray
    truths: np.ndarray
    seconds: np.ndarray


def predict_scans(
    records: Sequence[ScanRecord], predict: Callable[[Mesh], np.ndarray], progress: bool = True
) -> ScanPredictions:
    """Run ``predict`` (mesh → (68, 3) landmarks) on every record with ground truth."""
    names, predictions, truths, seconds = [], [], [], []
    for record in tqdm(records, desc="scans", unit="scan", disable=not progress):
        mesh, truth = load_scan(record, normals=False)
        if truth is None:
            continue
        start = time.perf_counter()
        predictions.append(np.asarray(predict(mesh), dtype=np.float64))
        seconds.append(time.perf_counter() - start)
        truths.append(truth)
        names.append(str(record.mesh_path))
    empty = np.empty((0, 68, 3))
    return ScanPredictions(
        names,
        np.stack(predictions) if predictions else empty,
        np.stack(truths) if truths else empty,
        np.asarray(seconds, dtype=np.float64),
    )


def evaluate_scans(
    records: Sequence[ScanRecord],
    predict: Callable[[Mesh], np.ndarray],
    progress: bool = True,
    to_mm: float = 1.0,
) -> dict:
    """Run ``predict`` (mesh → (68, 3) landmarks) on every record with ground truth and report errors.

    The report has the keys of ``facegraph eval mesh``'s JSON: n, mean_mm, mean_mm_51, median_mm,
    per_mesh, per_landmark_mm, seconds_per_mesh (prediction only, reading excluded). ``to_mm`` converts
    the scans' units (those of the predictions and the ground truth) to millimetres.
    """
    run = predict_scans(records, predict, progress)
    names, predictions, truths, seconds = run.names, run.predictions, run.truths, run.seconds
    if not names:
        return {
            "n": 0,
            "mean_mm": float("nan"),
            "mean_mm_51": float("nan"),
            "median_mm": float("nan"),
            "per_mesh": [],
            "per_landmark_mm": [float("nan")] * 68,
            "seconds_per_mesh": float("nan"),
        }
    errors = mesh_landmark_errors(predictions * to_mm, truths * to_mm)
    return {
        "n": len(predictions),
        "mean_mm": float(np.mean(errors["mean_68"])),
        "mean_mm_51": float(np.mean(errors["mean_51"])),
        "median_mm": float(np.median(errors["mean_68"])),
        "per_mesh": [
            {"mesh": name, "mean_mm": float(a), "mean_mm_51": float(b)}
            for name, a, b in zip(names, errors["mean_68"], errors["mean_51"], strict=True)
        ],
        "per_landmark_mm": [float(x) for x in errors["per_landmark"]],
        "seconds_per_mesh": float(np.mean(seconds)),
    }


def error_curves(report: dict) -> dict[str, np.ndarray]:
    """Each scan's mean error over the 68 and over the inner 51 points, for cumulative error curves."""
    per_mesh = report["per_mesh"]
    return {
        "mean over 68": np.array([m["mean_mm"] for m in per_mesh]),
        "inner 51": np.array([m["mean_mm_51"] for m in per_mesh]),
    }
