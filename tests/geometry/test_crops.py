import numpy as np
import pytest

from facegraph.geometry.crops import box_from_detection, box_from_landmarks, crop, crop_to_image


def test_landmark_box_is_a_sqrt2_square_around_the_points():
    points = np.array([[10.0, 20.0], [110.0, 70.0]])
    box = box_from_landmarks(points)
    side = np.sqrt(2) * 100
    assert box == pytest.approx(np.round([60 - side / 2, 45 - side / 2, 60 + side / 2, 45 + side / 2]))


def test_detection_box_is_enlarged_and_shifted_down():
    box = box_from_detection(np.array([0.0, 0.0, 100.0, 100.0]))
    assert box[2] - box[0] == pytest.approx(158.0)
    assert (box[1] + box[3]) / 2 == pytest.approx(64.0)


def test_crop_fills_outside_the_photo_with_black_and_resizes():
    photo = np.full((10, 10, 3), 200, dtype=np.uint8)
    out = crop(photo, np.array([-10, 0, 10, 20]), 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    # the box reaches 10 px left of and 10 px below the photo
    assert out[:, :8].max() == 0 and out[12:].max() == 0 and out[:8, 12:].min() == 200


def test_crop_rejects_an_empty_box():
    with pytest.raises(ValueError, match="empty crop box"):
        crop(np.zeros((5, 5, 3), np.uint8), np.array([3, 3, 3, 8]), 10)


def test_crop_to_image_follows_3ddfas_benchmark_mapping():
    box = np.array([[100.0, 50.0, 340.0, 290.0]])  # scale 2 from a 120 crop
    points = np.array([[[0.0, 121.0, 5.0], [60.0, 1.0, 8.0]]])
    out = crop_to_image(points, box, 120)
    assert out[0, :, :2] == pytest.approx(np.array([[100.0, 50.0], [220.0, 290.0]]))
    assert out[0, :, 2] == pytest.approx([0.0, 6.0])
