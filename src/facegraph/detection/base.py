"""The detector interface and box matching."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass
class Detection:
    """A face box [x0, y0, x1, y1] in photo pixels and the detector's score (higher is surer)."""

    box: np.ndarray
    score: float


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
