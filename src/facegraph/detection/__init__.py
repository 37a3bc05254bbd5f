"""Face detectors behind one small interface: ``detect(rgb) -> list[Detection]``."""

from facegraph.detection.base import Detection, FaceDetector, best_match, iou
from facegraph.detection.dlib_hog import DlibHogDetector

__all__ = ["Detection", "DlibHogDetector", "FaceDetector", "best_match", "iou"]
