"""Landmarks on 3D face meshes and point clouds: ``facegraph.mesh.landmark(mesh)``."""

from facegraph.mesh.conventions import (
    ConventionOffsets,
    fit_offsets,
    load_offsets,
    read_offsets,
    write_offsets,
)
from facegraph.mesh.landmarker import MeshLandmarker, MeshLandmarks, landmark
from facegraph.mesh.refine import REFINE_METHODS, RefineResult, refine_landmarks

__all__ = [
    "ConventionOffsets",
    "REFINE_METHODS",
    "MeshLandmarker",
    "MeshLandmarks",
    "RefineResult",
    "landmark",
    "fit_offsets",
    "load_offsets",
    "read_offsets",
    "refine_landmarks",
    "write_offsets",
]
