"""The pinned head-pose convention: round trips and AFLW2000-3D's own rotations."""

import numpy as np
import pytest
import scipy.io

from facegraph.geometry.pose import (
    aflw_pose_para_to_pose,
    matrices_to_angles,
    matrix_to_pose,
    nearest_rotation,
    pose_to_matrix,
)
from facegraph.types import HeadPose
from tests.conftest import shared


@pytest.mark.parametrize(
    "angles", [(0, 0, 0), (30, -20, 10), (-75, 40, -60), (89, 5, 5), (-10, 80, 170), (45, -85, -120)]
)
def test_pose_round_trips_through_the_rotation_matrix(angles):
    pose = HeadPose(*angles)
    rotation = pose_to_matrix(pose)
    assert rotation @ rotation.T == pytest.approx(np.eye(3), abs=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    back = matrix_to_pose(rotation)
    assert [back.yaw, back.pitch, back.roll] == pytest.approx(list(angles), abs=1e-9)


def test_gimbal_lock_keeps_the_rotation():
    rotation = pose_to_matrix(HeadPose(90, 20, 30))
    assert pose_to_matrix(matrix_to_pose(rotation)) == pytest.approx(rotation, abs=1e-9)


def test_signs_match_the_documented_table():
    nose = np.array([0.0, 0.0, 1.0])  # points toward the viewer in a frontal face
    crown = np.array([0.0, 1.0, 0.0])
    assert (pose_to_matrix(HeadPose(30, 0, 0)) @ nose)[0] < 0  # yaw > 0: nose to the image's left
    assert (pose_to_matrix(HeadPose(0, 30, 0)) @ nose)[1] > 0  # pitch > 0: nose up
    assert (pose_to_matrix(HeadPose(0, 0, 30)) @ crown)[0] > 0  # roll > 0: crown to the image's right


def test_nearest_rotation_of_a_scaled_noisy_rotation():
    rotation = pose_to_matrix(HeadPose(20, 10, -5))
    noisy = 3.0 * rotation + 1e-3 * np.random.default_rng(0).normal(size=(3, 3))
    assert nearest_rotation(noisy) == pytest.approx(rotation, abs=1e-3)


def _kabsch(model: np.ndarray, observed: np.ndarray) -> np.ndarray:
    a, b = model - model.mean(0), observed - observed.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    return u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt


def test_convention_matches_aflw2000_3d_pose_para_on_real_faces():
    """Fitting the BFM mean landmarks to each face's 3D points recovers Pose_Para's rotation."""
    images = shared("aflw2000-3d/images")
    mean_face = np.loadtxt(shared("bfm/keypoints68-basis/u_base.txt")).reshape(68, 3)
    errors = []
    for mat_path in sorted(images.glob("*.mat"))[:300]:
        mat = scipy.io.loadmat(mat_path)
        pose = aflw_pose_para_to_pose(mat["Pose_Para"])
        if max(abs(pose.yaw), abs(pose.pitch), abs(pose.roll)) > 80:
            continue
        observed = mat["pt3d_68"].T * np.array([1.0, -1.0, 1.0])  # photo rows grow down; the frame is y-up
        fitted = _kabsch(mean_face, observed)
        cos = (np.trace(pose_to_matrix(pose).T @ fitted) - 1) / 2
        errors.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    # a mean shape fits each face to within a few degrees; a wrong convention misses by tens
    assert np.median(errors) < 2.5
    assert np.percentile(errors, 90) < 6.0


def test_batched_angles_match_one_at_a_time():
    angles = [(0, 0, 0), (30, -20, 10), (-75, 40, -60), (90, 20, 30), (-10, 80, 170)]
    rotations = np.stack([pose_to_matrix(HeadPose(*a)) for a in angles])
    scaled = 2.5 * rotations + 1e-4 * np.random.default_rng(1).normal(size=rotations.shape)
    batched = matrices_to_angles(nearest_rotation(scaled))
    single = [matrix_to_pose(nearest_rotation(m)) for m in scaled]
    assert batched == pytest.approx(np.array([[p.yaw, p.pitch, p.roll] for p in single]), abs=1e-12)
    assert batched[3, 2] == 0.0  # gimbal lock: roll reported as 0
