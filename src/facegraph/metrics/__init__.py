"""Evaluation metrics as pure functions over numpy arrays."""

from facegraph.metrics.aflw2000 import aflw2000_nme, summarise_by_yaw, yaw_bin_masks
from facegraph.metrics.curves import auc, ced, failure_rate
from facegraph.metrics.landmarks import (
    box_diagonal,
    box_size,
    centres_distance,
    landmark_box_size,
    landmark_boxes,
    mean_errors_over,
    mesh_landmark_errors,
    nme,
    pair_distance,
    point_errors,
)
from facegraph.metrics.pose import pose_mae, within_range

__all__ = [
    "aflw2000_nme",
    "auc",
    "box_diagonal",
    "box_size",
    "ced",
    "centres_distance",
    "failure_rate",
    "landmark_box_size",
    "landmark_boxes",
    "mean_errors_over",
    "mesh_landmark_errors",
    "nme",
    "pair_distance",
    "point_errors",
    "pose_mae",
    "summarise_by_yaw",
    "within_range",
    "yaw_bin_masks",
]
