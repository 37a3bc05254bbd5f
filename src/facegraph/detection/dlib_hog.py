"""dlib's HOG + linear SVM frontal face detector (King 2009), built into the dlib-bin wheel.

Nothing is downloaded: the detector's model is compiled into dlib. It finds frontal and mildly turned
faces; profile faces are often missed.
"""

from __future__ import annotations

import numpy as np

from facegraph.detection.base import Detection


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
