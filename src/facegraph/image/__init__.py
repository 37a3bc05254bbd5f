"""Photos to faces: detection, crops, landmarks in 2D and 3D, head pose and the dense face."""

from facegraph.image.analyzer import DETECTORS, FaceAnalyzer, analyze, face_to_dict, make_detector

__all__ = ["DETECTORS", "FaceAnalyzer", "analyze", "face_to_dict", "make_detector"]
