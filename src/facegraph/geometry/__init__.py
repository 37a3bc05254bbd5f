"""Geometry: the head-pose convention, face-crop boxes and rigid alignment of point sets."""

from facegraph.geometry.crops import box_from_detection, box_from_landmarks, crop, crop_to_image
from facegraph.geometry.pose import matrix_to_pose, nearest_rotation, pose_to_matrix
from facegraph.geometry.rigid import rigid_fit, robust_rigid_fit

__all__ = [
    "box_from_detection",
    "box_from_landmarks",
    "crop",
    "crop_to_image",
    "matrix_to_pose",
    "nearest_rotation",
    "pose_to_matrix",
    "rigid_fit",
    "robust_rigid_fit",
]
