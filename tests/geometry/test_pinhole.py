"""The pinhole camera SPIGA's mean face is posed and projected with, and the pose fit built on it."""

import numpy as np
import pytest
import torch

from facegraph.geometry.pinhole import project, rotation_matrices
from facegraph.geometry.pose import pose_to_matrix
from facegraph.geometry.pose_fit import RIGID_POINTS, fit_pose
from facegraph.types import HeadPose

NOSE_TIP, CHIN = 30, 8


def face_like_points(seed: int = 0) -> torch.Tensor:
    """68 points spread like a face (x right, y up), the nose tip in front, the rest behind it."""
    rng = np.random.default_rng(seed)
    points = np.stack(
        [rng.uniform(-0.7, 0.7, 68), rng.uniform(-0.7, 0.5, 68), rng.uniform(-0.9, -0.2, 68)], 1
    )
    points[NOSE_TIP] = [0.0, 0.0, 0.2]
    points[CHIN] = [0.0, -0.75, -0.3]
    return torch.tensor(points, dtype=torch.float32)


def posed(yaw=0.0, pitch=0.0, roll=0.0, tx=0.0, ty=0.0, tz=3.0) -> torch.Tensor:
    return torch.tensor([[yaw, pitch, roll, tx, ty, tz]])


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, -20, 10), (-75, 40, -60), (10, 80, 5)])
def test_rotations_follow_the_packages_head_pose_convention(angles) -> None:
    matrix = rotation_matrices(torch.tensor([angles], dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(matrix, pose_to_matrix(HeadPose(*angles)), atol=1e-12)


def test_a_frontal_face_is_centred_upright_and_smaller_when_further() -> None:
    shape = face_like_points()
    near = project(shape, posed(tz=3.0), 1.5)[0]
    assert near[NOSE_TIP].tolist() == pytest.approx([0.5, 0.5])
    assert near[CHIN, 1] > near[NOSE_TIP, 1]  # y grows downward in the crop
    far = project(shape, posed(tz=6.0), 1.5)[0]
    assert (far - 0.5).abs().max() < (near - 0.5).abs().max()
    shifted = project(shape, posed(tx=0.1, ty=0.1), 1.5)[0]
    assert shifted[NOSE_TIP, 0] > 0.5 and shifted[NOSE_TIP, 1] < 0.5  # +tx right, +ty up


def test_positive_yaw_turns_the_nose_toward_the_images_left_and_roll_leans_clockwise() -> None:
    shape = face_like_points()
    turned = project(shape, posed(yaw=30.0), 1.5)[0]
    assert turned[NOSE_TIP, 0] < turned[:, 0].mean()
    leaning = project(shape, posed(roll=30.0), 1.5)[0]
    assert leaning[CHIN, 0] < 0.5  # the crown moves right, so the chin moves left


def test_fitting_recovers_the_pose_that_made_the_points() -> None:
    shape = face_like_points()
    generator = torch.Generator().manual_seed(0)
    count = 64
    truth = torch.cat(
        [
            torch.rand(count, 1, generator=generator) * 160 - 80,
            torch.rand(count, 2, generator=generator) * 60 - 30,
            torch.randn(count, 2, generator=generator) * 0.05,
            2.5 + torch.rand(count, 1, generator=generator),
        ],
        dim=1,
    )
    points = project(shape, truth, 1.5) + torch.randn(count, 68, 2, generator=generator) * 1e-3
    fitted, rms = fit_pose(points, shape, 1.5)
    rotation_error = (
        (rotation_matrices(fitted[:, :3]) - rotation_matrices(truth[:, :3])).abs().amax(dim=(1, 2))
    )
    assert rotation_error.max() < 0.02
    assert (fitted[:, 3:] - truth[:, 3:]).abs().max() < 0.05
    assert rms.max() < 3e-3  # about the noise


def test_hidden_points_are_left_out_of_the_fit() -> None:
    shape = face_like_points()
    truth = posed(yaw=40.0, pitch=-10.0, roll=5.0)
    points = project(shape, truth, 1.5)
    visible = torch.ones(1, 68, dtype=torch.bool)
    hidden = list(RIGID_POINTS[:4])
    points[0, hidden] += 0.3  # far off, as an occluder's guess would be
    visible[0, hidden] = False
    fitted, _ = fit_pose(points, shape, 1.5, visible)
    assert fitted[0, :3].tolist() == pytest.approx(truth[0, :3].tolist(), abs=0.1)
    corrupted, _ = fit_pose(points, shape, 1.5)
    assert (corrupted[0, :3] - truth[0, :3]).abs().max() > 1.0
