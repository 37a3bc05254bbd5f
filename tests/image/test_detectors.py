"""Face detection: box overlap, matching a detection to a face, and dlib's HOG detector on a photo."""

from __future__ import annotations

import numpy as np
import pytest

from facegraph.demo import sample_path
from facegraph.image.detectors import Detection, DlibHogDetector, best_match, iou
from facegraph.io import read_image, read_landmarks


def box(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (box(0, 0, 10, 10), box(0, 0, 10, 10), 1.0),
        (box(0, 0, 10, 10), box(20, 20, 30, 30), 0.0),
        (box(0, 0, 10, 10), box(10, 0, 20, 10), 0.0),  # sharing an edge only
        (box(0, 0, 10, 10), box(5, 0, 15, 10), 50 / 150),  # half of each overlaps
        (box(0, 0, 10, 10), box(2, 2, 7, 7), 25 / 100),  # one inside the other
        (box(0, 0, 4, 2), box(2, -1, 6, 1), 2 / 14),
    ],
)
def test_iou_of_hand_worked_boxes(a: np.ndarray, b: np.ndarray, expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_iou_of_empty_boxes_is_zero() -> None:
    assert iou(box(3, 3, 3, 3), box(3, 3, 3, 3)) == 0.0


def test_best_match_picks_the_most_overlapping_detection_not_the_highest_scored() -> None:
    reference = box(0, 0, 10, 10)
    far = Detection(box(50, 50, 60, 60), score=2.0)
    half = Detection(box(5, 0, 15, 10), score=1.0)
    close = Detection(box(1, 0, 11, 10), score=0.1)
    assert best_match([far, half, close], reference, 0.3) is close


def test_best_match_needs_at_least_the_minimum_overlap() -> None:
    reference = box(0, 0, 10, 10)
    third = Detection(box(5, 0, 15, 10), score=1.0)  # IoU exactly 1/3
    assert best_match([third], reference, 1 / 3) is third
    assert best_match([third], reference, 0.34) is None
    assert best_match([], reference, 0.0) is None


def test_dlib_hog_finds_the_face_in_the_bundled_photo() -> None:
    photo = read_image(sample_path("einstein.jpg"))
    face_box = read_landmarks(sample_path("einstein.pts")).box()

    detections = DlibHogDetector().detect(photo)

    assert all(d.box.shape == (4,) for d in detections)
    assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)
    match = best_match(detections, face_box, 0.3)
    assert match is not None
    assert iou(match.box, face_box) > 0.3
