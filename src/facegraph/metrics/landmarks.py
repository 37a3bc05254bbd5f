"""Landmark error metrics: NME with every normalisation in use, and per-landmark distances.

All functions are pure and take arrays: predictions and ground truth as (N, P, D) (faces, points,
coordinates). NME is the mean point-to-point distance of a face divided by that face's normalising
distance, in percent. Which coordinates count is the caller's choice (the 2D protocols pass x, y).
"""

from __future__ import annotations

import warnings

import numpy as np


def point_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, P, D) x 2 -> (N, P) Euclidean distances."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return np.linalg.norm(pred - gt, axis=-1)


def nme(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """(N,) NME in percent: each face's mean error over its (visible) points over its ``norm``."""
    errors = point_errors(pred, gt)
    if visible is None:
        mean_error = errors.mean(axis=1)
    else:
        visible = np.asarray(visible, dtype=bool)
        mean_error = (errors * visible).sum(axis=1) / np.maximum(visible.sum(axis=1), 1)
    return 100.0 * mean_error / np.asarray(norm, dtype=np.float64)


def pair_distance(gt: np.ndarray, first: int, second: int) -> np.ndarray:
    """(N,) distance between two landmarks of each face (e.g. outer eye corners 36 and 45)."""
    gt = np.asarray(gt, dtype=np.float64)
    return np.linalg.norm(gt[:, first] - gt[:, second], axis=-1)


def centres_distance(gt: np.ndarray, first: list[int], second: list[int]) -> np.ndarray:
    """(N,) distance between the centroids of two landmark groups (e.g. the pupils from eye rings)."""
    gt = np.asarray(gt, dtype=np.float64)
    return np.linalg.norm(gt[:, first].mean(axis=1) - gt[:, second].mean(axis=1), axis=-1)


def box_size(boxes: np.ndarray) -> np.ndarray:
    """(N,) sqrt(w * h) of (N, 4) boxes [x0, y0, x1, y1]."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))


def box_diagonal(boxes: np.ndarray) -> np.ndarray:
    """(N,) diagonal of (N, 4) boxes [x0, y0, x1, y1]."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def landmark_boxes(gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """(N, 4) [x0, y0, x1, y1] boxes of each face's (visible) x, y landmarks."""
    xy = np.asarray(gt, dtype=np.float64)[..., :2]
    if visible is not None:
        xy = np.where(np.asarray(visible, dtype=bool)[..., None], xy, np.nan)
    return np.concatenate([np.nanmin(xy, axis=1), np.nanmax(xy, axis=1)], axis=1)


def landmark_box_size(gt: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """(N,) sqrt(w * h) of the ground-truth landmarks' box (the AFLW2000-3D normaliser)."""
    return box_size(landmark_boxes(gt, visible))


def mean_errors_over(errors: np.ndarray, indices: list[int] | range | None = None) -> np.ndarray:
    """(N,) mean of per-landmark errors (N, P) over a subset of landmarks (all when None)."""
    errors = np.asarray(errors, dtype=np.float64)
    return (errors if indices is None else errors[:, list(indices)]).mean(axis=1)


INNER_51 = range(17, 68)


def mesh_landmark_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Errors of (N, 68, 3) landmarks on meshes, in the meshes' units (mm for scans).

    Returns per-face means over the 68 points (``mean_68``) and over the 51 inner points, iBUG 17-67
    (``mean_51``: the jaw line is ill-defined on scans), and the mean error of each landmark over the
    faces (``per_landmark``, 68 numbers).
    """
    errors = point_errors(pred, gt)
    with warnings.catch_warnings():  # a landmark missing from every face's ground truth gives NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "mean_68": np.nanmean(errors, axis=1),
            "mean_51": np.nanmean(errors[:, list(INNER_51)], axis=1),
            "per_landmark": np.nanmean(errors, axis=0),
        }
