"""Photos to faces: detection, crops, landmarks in 2D and 3D, head pose and the dense face."""

from facegraph.image.analyzer import FaceAnalyzer, analyze, face_to_dict
from facegraph.image.detectors import DETECTORS, make_detector

__all__ = ["DETECTORS", "FaceAnalyzer", "analyze", "face_to_dict", "make_detector"]
