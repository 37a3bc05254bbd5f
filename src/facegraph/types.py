"""The shared data model: landmarks, head pose and a face result.

Plain dataclasses over numpy arrays, so every subpackage (readers, models, metrics) speaks the same
language without depending on torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
