"""Face detectors behind one small interface, ``detect(rgb) -> list[Detection]``, and box matching.

dlib's HOG + linear SVM frontal face detector (King 2009) is built into the dlib-bin wheel: nothing is
downloaded. It finds frontal and mildly turned faces; profile faces are often missed. FaceBoxes
(``facegraph.image.faceboxes``), a small CNN with shipped weights, also finds turned faces, at any size
from about 48 pixels, and smaller ones in photos that show small faces. MediaPipe's BlazeFace short-range
(``facegraph.image.blazeface``) sees the whole photo at 128 pixels: it finds only large faces, but
those in every pose. ``faceboxes+blazeface``, the default, runs both and adds BlazeFace's faces that
FaceBoxes did not find but saw something in (the detection benchmark in benchmarks/RESULTS.md compares
them all).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facegraph.errors import InputError
from facegraph.types import Detection

BLAZEFACE_MIN_SCORE = 0.5
DETECTORS = ("faceboxes+blazeface", "faceboxes", "blazeface", "dlib-hog")
DEFAULT_DETECTOR = "faceboxes+blazeface"


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB photo, best first."""
        ...


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
    return float(inter / union) if union > 0 else 0.0


def best_match(detections: list[Detection], reference: np.ndarray, min_iou: float) -> Detection | None:
    """The detection overlapping ``reference`` most, if it overlaps by at least ``min_iou``."""
    scored = [(iou(d.box, reference), d) for d in detections]
    best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
    return best[1] if best[0] >= min_iou else None


class DlibHogDetector:
    """``upsample``: times the photo is doubled first (finds smaller faces, slower);
    ``threshold``: the lowest SVM score kept (dlib's default is 0; -0.5 keeps harder faces).
    """

    def __init__(self, upsample: int = 1, threshold: float = -0.5) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.threshold = threshold

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(rgb), self.upsample, self.threshold)
        found = [
            Detection(np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        return sorted(found, key=lambda d: -d.score)


class CombinedDetector:
    """A main detector and a second one whose faces are added where the main one found none.

    ``main`` runs at a low threshold: its detections scoring ``min_score`` or more are faces, the rest
    only vouch for the second detector's. A second detection is added when it is no main face (it
    overlaps none by more than ``max_iou``, holds no main face's centre and has its centre in none: the
    same face boxed at another scale) and its centre lies in a box of the main detector's (any score): a
    face the main detector scored low is confirmed, a pattern it saw nothing in is not.
    """

    def __init__(
        self, main: FaceDetector, second: FaceDetector, min_score: float, max_iou: float = 0.3
    ) -> None:
        self.main, self.second, self.min_score, self.max_iou = main, second, min_score, max_iou

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        candidates = self.main.detect(rgb)
        found = [c for c in candidates if c.score >= self.min_score]
        added = [
            d
            for d in self.second.detect(rgb)
            if not any(self._same_face(d, f) for f in found) and _vouched(d, candidates)
        ]
        return sorted(found + added, key=lambda d: -d.score)

    def _same_face(self, a: Detection, b: Detection) -> bool:
        return iou(a.box, b.box) > self.max_iou or _holds_centre(a, b) or _holds_centre(b, a)


def _holds_centre(outer: Detection, inner: Detection) -> bool:
    centre = (inner.box[:2] + inner.box[2:]) / 2
    return bool((outer.box[:2] <= centre).all() and (centre <= outer.box[2:]).all())


def _vouched(detection: Detection, boxes: list[Detection]) -> bool:
    return any(_holds_centre(b, detection) for b in boxes)


# Each detector's lowest score kept by default. dlib's HOG SVM score: chosen on 300-W's training photos
# (one annotated face each), it keeps most of their faces and drops the astronaut's mission patch,
# which dlib's own default of 0 reports as a face. FaceBoxes' face probability: 3DDFA_V2's threshold,
# which gives up little recall for fewer stray boxes than 0.25 (figures in its model card). BlazeFace's
# face probability: MediaPipe's, kept after comparing lower ones on AFLW's training faces and face-free
# calibration crops (benchmarks/detector_calibration.py).
DEFAULT_MIN_SCORES = {"dlib-hog": 0.25, "faceboxes": 0.5, "blazeface": BLAZEFACE_MIN_SCORE}
# The lowest FaceBoxes score that vouches for a BlazeFace face in ``faceboxes+blazeface``: chosen with
# BlazeFace's threshold on the same calibration sets; it keeps the recall there and drops most of
# BlazeFace's false detections.
VOUCHING_SCORE = 0.02


def make_detector(
    name: str, min_score: float | None = None, smallest_face: float | None = None
) -> FaceDetector:
    """A detector by name (see ``DETECTORS``) keeping detections scoring at least ``min_score`` (dlib's
    SVM score; a CNN's face probability), by default ``DEFAULT_MIN_SCORES[name]``; ``smallest_face``
    (pixels) makes FaceBoxes search for faces down to that size, enlarging the photo when it is small
    (None: only in photos where it found small faces). For ``faceboxes+blazeface``, ``min_score``
    applies to both detectors' faces."""
    if name not in DETECTORS:
        raise InputError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
    if name == "faceboxes+blazeface":
        main = make_detector("faceboxes", VOUCHING_SCORE, smallest_face)
        faces_from = DEFAULT_MIN_SCORES["faceboxes"] if min_score is None else min_score
        return CombinedDetector(main, make_detector("blazeface", min_score), faces_from)
    if min_score is None:
        min_score = DEFAULT_MIN_SCORES[name]
    if name == "dlib-hog":
        return DlibHogDetector(threshold=min_score)
    if name == "blazeface":
        from facegraph.image.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(min_score=min_score)
    from facegraph.image.faceboxes import FaceBoxesDetector

    return FaceBoxesDetector(min_score=min_score, smallest_face=smallest_face)
