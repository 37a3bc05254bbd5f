"""Geometry: the head-pose convention and face-crop boxes."""

from facegraph.geometry.crops import box_from_detection, box_from_landmarks, crop, crop_to_image
from facegraph.geometry.pose import matrix_to_pose, nearest_rotation, pose_to_matrix

__all__ = [
    "box_from_detection",
    "box_from_landmarks",
    "crop",
    "crop_to_image",
    "matrix_to_pose",
    "nearest_rotation",
    "pose_to_matrix",
]
