"""The shared data model: landmarks, head pose, a face detection, a face result and a mesh.

Plain dataclasses over numpy arrays, so every subpackage (readers, models, metrics) speaks the same
language without depending on torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

RefineMethod = Literal["none", "snap", "euclidean", "geodesic"]
"""The mesh landmarker's second stage (see ``facegraph.mesh.refine``)."""
REFINE_METHODS: tuple[str, ...] = get_args(RefineMethod)
# The refinement that did best with the shipped weights (benchmarks/RESULTS.md): with heatmaps as
# wide as these, profile matching moves points away more often than toward the truth.
DEFAULT_REFINE: RefineMethod = "snap"


@dataclass
class Landmarks:
    """A set of facial landmark points in one scheme.

    points: (N, 2) or (N, 3) float array, in the frame of whatever they annotate (photo pixels with
        x right / y down and (0, 0) the centre of the top-left pixel; or mesh units).
    scheme: name of a registered scheme (see ``facegraph.schemes``), e.g. ``"ibug68"``.
    visible: (N,) bool; False marks points that are occluded or not annotated.
    confidence: optional (N,) float per-point confidence in [0, 1].
    """

    points: np.ndarray
    scheme: str = "ibug68"
    visible: np.ndarray | None = None
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64)
        if self.points.ndim != 2 or self.points.shape[1] not in (2, 3):
            raise ValueError(f"landmark points must be (N, 2) or (N, 3), got {self.points.shape}")
        n = len(self.points)
        self.visible = (
            np.ones(n, dtype=bool) if self.visible is None else np.asarray(self.visible, dtype=bool)
        )
        if self.visible.shape != (n,):
            raise ValueError(f"visible must have shape ({n},), got {self.visible.shape}")
        if self.confidence is not None:
            self.confidence = np.asarray(self.confidence, dtype=np.float64)
            if self.confidence.shape != (n,):
                raise ValueError(f"confidence must have shape ({n},), got {self.confidence.shape}")

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def box(self) -> np.ndarray:
        """[x0, y0, x1, y1] of the visible points."""
        p = self.points[self.visible] if self.visible.any() else self.points
        return np.concatenate([p[:, :2].min(0), p[:, :2].max(0)])


@dataclass
class HeadPose:
    """Head pose as yaw, pitch and roll in degrees (the convention is in ``facegraph.geometry.pose``)."""

    yaw: float
    pitch: float
    roll: float

    def as_dict(self) -> dict[str, float]:
        return {"yaw": float(self.yaw), "pitch": float(self.pitch), "roll": float(self.roll)}


@dataclass
class Detection:
    """A face box [x0, y0, x1, y1] in photo pixels and the detector's score (higher is surer)."""

    box: np.ndarray
    score: float


@dataclass
class Face:
    """One detected face: its box, score, landmarks, pose and optionally a dense mesh."""

    box: np.ndarray
    score: float = 1.0
    landmarks_2d: Landmarks | None = None
    landmarks_3d: Landmarks | None = None
    pose: HeadPose | None = None
    mesh_vertices: np.ndarray | None = None
    mesh_faces: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Mesh:
    """A triangle mesh, or a point cloud when ``faces`` is None.

    vertices: (V, 3) float64. faces: (F, 3) int64 vertex indices, or None.
    normals: (V, 3) unit vertex normals (the file's when it has them, else computed by trimesh), or None
        for a point cloud (and for a mesh read with ``read_mesh(..., normals=False)``).
    colors: (V, 3) uint8 RGB per vertex, written by ``write_mesh`` (PLY, OBJ), or None.
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (V, 3), got {self.vertices.shape}")
        if self.faces is not None:
            self.faces = np.asarray(self.faces, dtype=np.int64)
            if self.faces.ndim != 2 or self.faces.shape[1] != 3:
                raise ValueError(f"faces must be (F, 3), got {self.faces.shape}")
        if self.normals is not None:
            self.normals = np.asarray(self.normals, dtype=np.float64)
            if self.normals.shape != self.vertices.shape:
                raise ValueError(f"normals must be {self.vertices.shape}, got {self.normals.shape}")

    @property
    def is_point_cloud(self) -> bool:
        return self.faces is None
