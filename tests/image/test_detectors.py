"""Face detection: box overlap, matching a detection to a face, and dlib's HOG detector on a photo."""

from __future__ import annotations

import numpy as np
import pytest

from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    VOUCHING_SCORE,
    CombinedDetector,
    Detection,
    DlibHogDetector,
    best_match,
    iou,
    make_detector,
)
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


class Fixed:
    """A stand-in detector that finds the same detections in every photo."""

    def __init__(self, *detections: Detection) -> None:
        self.detections = list(detections)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return list(self.detections)


def test_combined_detector_adds_the_second_detectors_faces_the_first_missed_but_saw() -> None:
    """The main detector's faces (score >= 0.5) stay; a second detection is added when it is not one of
    them and the main detector saw something there (a low-scored box holding its centre)."""
    face = Detection(box(0, 0, 100, 100), 0.6)
    glimpse = Detection(box(190, 0, 310, 110), 0.03)  # too low to be a face, enough to vouch
    main = Fixed(face, glimpse)
    same_face = Detection(box(10, 10, 105, 105), 0.99)  # IoU 0.74 with the main face: the same face
    same_face_wider = Detection(box(-100, -100, 200, 200), 0.98)  # IoU 0.11, but it holds that face
    missed_face = Detection(box(200, 0, 300, 100), 0.9)
    unseen = Detection(box(400, 400, 500, 500), 0.95)  # no main box there at all
    second = Fixed(same_face, same_face_wider, missed_face, unseen)
    found = CombinedDetector(main, second, min_score=0.5).detect(np.zeros((8, 8, 3), np.uint8))
    assert [d.box.tolist() for d in found] == [[200, 0, 300, 100], [0, 0, 100, 100]]  # best first


def test_the_default_detector_is_the_combination_and_the_cli_names_the_same() -> None:
    from facegraph.cli.image import DEFAULT_DETECTOR as CLI_DEFAULT
    from facegraph.image.blazeface import BlazeFaceDetector
    from facegraph.image.faceboxes import FaceBoxesDetector

    assert CLI_DEFAULT == DEFAULT_DETECTOR == DETECTORS[0] == "faceboxes+blazeface"
    combined = make_detector(DEFAULT_DETECTOR, 0.7, smallest_face=24)
    assert isinstance(combined.main, FaceBoxesDetector) and isinstance(combined.second, BlazeFaceDetector)
    assert (combined.min_score, combined.main.smallest_face, combined.second.min_score) == (0.7, 24, 0.7)
    assert combined.main.min_score == VOUCHING_SCORE < 0.5  # FaceBoxes' low boxes vouch for BlazeFace's
    with pytest.raises(InputError, match="unknown detector 'mtcnn'"):
        make_detector("mtcnn")


def test_the_default_detector_finds_the_bundled_astronaut_once() -> None:
    found = make_detector(DEFAULT_DETECTOR).detect(read_image(sample_path("astronaut.jpg")))
    assert len(found) == 1
    centre = np.array([220.0, 121.0])  # the middle of her face, between the eyes and the mouth
    assert (found[0].box[:2] <= centre).all() and (centre <= found[0].box[2:]).all()
