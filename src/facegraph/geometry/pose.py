"""Head pose as yaw, pitch and roll in degrees, and its round trip with rotation matrices.

The convention is AFLW2000-3D's own (its ``Pose_Para`` = [pitch, yaw, roll, ...] in radians), checked
against the data: fitting the mean face to each scan's 68 landmarks recovers
``R = Rx(-pitch) @ Ry(-yaw) @ Rz(-roll)`` to within the mean-shape fit's own error, while every
other axis order or sign choice misses by far more on turned faces.

``R`` maps face-model coordinates to camera coordinates, both right-handed with x toward the image's
right, y up and z toward the viewer (the Basel Face Model's canonical frame: a frontal face has R = I).

=========  ===================================================  ======================================
angle      positive means                                       axis
=========  ===================================================  ======================================
yaw        the face turns toward the image's left               y (up)
           (the subject's right cheek turns away)
pitch      the face tilts up (chin forward, looking up)         x (image right)
roll       the head leans clockwise as seen in the photo         z (toward the viewer)
           (the crown moves toward the image's right)
=========  ===================================================  ======================================

::

        y (up)                    yaw > 0            pitch > 0          roll > 0
        |                         nose goes  <-      nose goes  ^       crown goes  ->
        |____ x (image right)      ( o )              ( o )              \\o/
       /
      z (toward the viewer)
"""

from __future__ import annotations

import numpy as np

from facegraph.types import HeadPose

GIMBAL_EPS = 1e-6


def _rx(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def pose_to_matrix(pose: HeadPose) -> np.ndarray:
    """The 3x3 rotation (model -> camera) of a head pose in degrees."""
    yaw, pitch, roll = np.radians([pose.yaw, pose.pitch, pose.roll])
    return _rx(-pitch) @ _ry(-yaw) @ _rz(-roll)


def matrix_to_pose(rotation: np.ndarray) -> HeadPose:
    """Yaw, pitch and roll in degrees of a 3x3 rotation (model -> camera).

    At |yaw| = 90 degrees pitch and roll are not separable; roll is then reported as 0.
    """
    return HeadPose(*matrices_to_angles(rotation))


def matrices_to_angles(rotations: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations (model -> camera) -> (..., 3) yaw, pitch, roll in degrees, as
    ``matrix_to_pose`` gives them, for a whole batch at once."""
    r = np.asarray(rotations, dtype=np.float64)
    # R^T = Rz(roll) Ry(yaw) Rx(pitch): a Z-Y-X decomposition of the transpose.
    sin_yaw = np.clip(-r[..., 0, 2], -1.0, 1.0)
    gimbal = np.abs(np.abs(sin_yaw) - 1.0) <= GIMBAL_EPS
    pitch = np.where(gimbal, np.arctan2(-r[..., 2, 1], r[..., 1, 1]), np.arctan2(r[..., 1, 2], r[..., 2, 2]))
    roll = np.where(gimbal, 0.0, np.arctan2(r[..., 0, 1], r[..., 0, 0]))
    return np.degrees(np.stack([np.arcsin(sin_yaw), pitch, roll], axis=-1))


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The rotation closest (Frobenius) to a 3x3 matrix, e.g. a regressed scaled-rotation camera;
    (..., 3, 3) batches too."""
    u, _, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    u[..., :, 2] *= np.sign(np.linalg.det(u @ vt))[..., None]
    return u @ vt


def aflw_pose_para_to_pose(pose_para: np.ndarray) -> HeadPose:
    """AFLW2000-3D's ``Pose_Para`` ([pitch, yaw, roll, tx, ty, tz, s], radians) as a HeadPose."""
    pitch, yaw, roll = np.degrees(np.asarray(pose_para, dtype=np.float64).ravel()[:3])
    return HeadPose(yaw=yaw, pitch=pitch, roll=roll)
