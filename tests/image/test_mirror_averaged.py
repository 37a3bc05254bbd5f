"""Test-time mirroring: the mirror's prediction is mapped back through the crop box exactly."""

from __future__ import annotations

import numpy as np
import pytest

from facegraph.geometry.crops import crop_mirror_x, crop_to_image
from facegraph.image.crop_regressor import CropPrediction, MirrorAveraged, _mean_angles
from facegraph.schemes import get_scheme

FLIP = np.asarray(get_scheme("ibug68").flip_order)
SIZE = 120


class MirrorConsistent:
    """A stand-in network that answers ``points`` (crop frame, y up) for the crops it was made with and
    exactly their mirror image's points for the mirrored crops, as a perfectly symmetric model would."""

    input_size = SIZE
    morphable = None

    def __init__(self, crops: np.ndarray, points: np.ndarray, pose: np.ndarray) -> None:
        self.crops, self.points, self.pose = crops, points, pose

    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        n = len(self.crops)
        assert np.array_equal(crops[:n], self.crops) and np.array_equal(crops[n:], self.crops[:, :, ::-1])
        mirrored = self.points[:, FLIP].copy()
        mirrored[..., 0] = crop_mirror_x(SIZE) - mirrored[..., 0]
        points = np.concatenate([self.points, mirrored])
        pose = np.concatenate([self.pose, self.pose * [-1, 1, -1]])
        params = np.arange(2 * n * 62, dtype=float).reshape(2 * n, 62)
        return CropPrediction(params, crop_to_image(points, boxes, SIZE), pose)


def test_a_mirror_consistent_model_is_left_unchanged() -> None:
    """Averaging only helps if the mirror's answer is mapped back where the face's own would be: a
    model that is exactly mirror-consistent must come out unchanged (an x off by a pixel would not)."""
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, size=(3, SIZE, SIZE, 3), dtype=np.uint8)
    points = rng.uniform(10, 110, size=(3, 68, 3))
    pose = np.array([[30.0, -10.0, 5.0], [-60.0, 20.0, -15.0], [0.0, 0.0, 0.0]])
    boxes = np.array([[100.0, 50.0, 340.0, 290.0], [-20.0, 10.0, 80.0, 110.0], [5.5, 7.0, 65.5, 67.0]])
    model = MirrorConsistent(crops, points, pose)

    averaged = MirrorAveraged(model, FLIP).predict(crops, boxes)

    np.testing.assert_allclose(averaged.landmarks, crop_to_image(points, boxes, SIZE), atol=1e-9)
    np.testing.assert_allclose(averaged.pose, pose, atol=1e-12)
    np.testing.assert_array_equal(
        averaged.params,
        model.predict(np.concatenate([crops, crops[:, :, ::-1]]), np.concatenate([boxes, boxes])).params[:3],
    )


@pytest.mark.parametrize(
    ("a", "b", "mean"), [(10.0, 30.0, 20.0), (170.0, -170.0, 180.0), (-20.0, 350.0, -15.0)]
)
def test_angles_average_the_short_way_round(a: float, b: float, mean: float) -> None:
    got = _mean_angles(np.array([a]), np.array([b]))[0]
    assert np.isclose((got - mean + 180) % 360 - 180, 0.0)
