"""Face detectors behind one small interface, ``detect(rgb) -> list[Detection]``, and box matching.

dlib's HOG + linear SVM frontal face detector (King 2009) is built into the dlib-bin wheel: nothing is
downloaded. It finds frontal and mildly turned faces; profile faces are often missed. FaceBoxes
(``facegraph.image.faceboxes``), a small CNN with shipped weights, also finds turned faces.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facegraph.errors import InputError
from facegraph.types import Detection

DETECTORS = ("dlib-hog", "faceboxes")


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


# Each detector's lowest score kept by default. dlib's HOG SVM score: chosen on 300-W's training photos
# (one annotated face each), it keeps most of their faces and drops the astronaut's mission patch,
# which dlib's own default of 0 reports as a face. FaceBoxes' face probability: 3DDFA_V2's threshold,
# which gives up little recall for fewer stray boxes than 0.25 (figures in its model card).
DEFAULT_MIN_SCORES = {"dlib-hog": 0.25, "faceboxes": 0.5}


def make_detector(name: str, min_score: float | None = None) -> FaceDetector:
    """A detector by name (see ``DETECTORS``) keeping detections scoring at least ``min_score`` (dlib's
    SVM score; FaceBoxes' face probability), by default ``DEFAULT_MIN_SCORES[name]``."""
    if name in DEFAULT_MIN_SCORES and min_score is None:
        min_score = DEFAULT_MIN_SCORES[name]
    if name == "dlib-hog":
        return DlibHogDetector(threshold=min_score)
    if name == "faceboxes":
        from facegraph.image.faceboxes import FaceBoxesDetector

        return FaceBoxesDetector(min_score=min_score)
    raise InputError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")
