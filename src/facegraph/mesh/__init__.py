"""Landmarks on 3D face meshes and point clouds: ``facegraph.mesh.landmark(mesh)``."""

from facegraph.mesh.landmarker import MeshLandmarker, MeshLandmarks, landmark
from facegraph.mesh.refine import REFINE_METHODS, RefineResult, refine_landmarks

__all__ = [
    "REFINE_METHODS",
    "MeshLandmarker",
    "MeshLandmarks",
    "RefineResult",
    "landmark",
    "refine_landmarks",
]
