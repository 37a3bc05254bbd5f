"""Mesh landmarker configurations and the network's input: sampled points, normalised, with their graph.

Two configurations are defined:

- ``2s-sgcn-paper``, the published design: 32,768 points, the bounding box mapped into (-1, 1), the
  global branch over the 68 super points, one pass over the whole input.
- ``facegraph-mesh``, the project's: 4,096 points in a fixed metric frame (100 mm to one unit, so the
  network sees true sizes whatever the framing), Fourier features of the coordinates, a pooled global
  branch, wide (15 mm) heatmaps beside the narrow ones to find the face, and two stages of passes. The
  first pass, over the whole scan, finds the face in any pose within the training ranges; the scan is
  then turned and moved so that the first estimate lies on the mean face in the canonical frame, and the
  second pass runs on a ball of 110 mm about the face there (several times, re-aligning in between).
  Heads with scalp, ears, neck and shoulders are landmarked as well as cropped faces, and the second
  pass works on nearly frontal, centred faces, which is what makes it accurate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import torch
from scipy.spatial import cKDTree

from facegraph.mesh.sampling import knn_indices, thin_evenly
from facegraph.nn.sgcn import SgcnConfig


@dataclass(frozen=True)
class MeshConfig:
    """What defines a mesh landmarker at inference: its input sampling, frame, network and heatmaps.

    How it was trained (batch size, learning rate, epochs, the share of second-pass samples) is the
    training recipe's (``facegraph.training.mesh.MeshRecipe``); weights files store both, and reading
    them keeps only these fields.
    """

    name: str
    n_points: int
    normalisation: str  # "bbox": bounding box into (-1, 1); "metric": centred, metric_scale mm per unit
    network: SgcnConfig = field(default_factory=SgcnConfig)
    metric_scale: float = 100.0
    sigma: float = 0.03  # the heatmaps' Gaussian, normalised units
    coarse_sigma: float = 0.15  # the wide heatmaps' Gaussian (when the network has them)
    two_pass: bool = False
    crop_radius: float = 110.0  # mm, the second pass's ball about the first pass's face centre

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict) -> MeshConfig:
        """The configuration from a stored dict, ignoring the training recipe's fields beside it."""
        known = {f.name for f in fields(MeshConfig)}
        kept = {key: value for key, value in values.items() if key in known}
        kept["network"] = SgcnConfig(**kept["network"])
        return MeshConfig(**kept)


CONFIGS: dict[str, MeshConfig] = {
    "2s-sgcn-paper": MeshConfig(
        name="2s-sgcn-paper",
        n_points=32_768,
        normalisation="bbox",
        network=SgcnConfig(global_branch="super"),
    ),
    "facegraph-mesh": MeshConfig(
        name="facegraph-mesh",
        n_points=4_096,
        normalisation="metric",
        network=SgcnConfig(global_branch="pool", fourier_bands=6, coarse=True),
        two_pass=True,
    ),
}


def get_config(name: str, n_points: int | None = None) -> MeshConfig:
    """A named configuration, optionally with another number of input points."""
    if name not in CONFIGS:
        raise KeyError(f"unknown mesh configuration {name!r} (known: {', '.join(CONFIGS)})")
    config = CONFIGS[name]
    return config if n_points is None else replace(config, n_points=n_points)


@dataclass
class NetworkInput:
    """One sample for the network: features (N, 6), neighbours (N, k), and the frame used.

    points_mm = features[:, :3] * scale + centre.
    """

    features: np.ndarray
    neighbours: np.ndarray
    centre: np.ndarray
    scale: float


def normalisation_frame(points: np.ndarray, config: MeshConfig) -> tuple[np.ndarray, float]:
    """The centre (3,) and the scale (mm per unit) that map the points into the network's frame."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre = 0.5 * (low + high)
    if config.normalisation == "bbox":
        return centre, float(max(0.5 * (high - low).max(), 1e-9))
    return centre, config.metric_scale


def network_input(
    points: np.ndarray,
    normals: np.ndarray,
    config: MeshConfig,
    rng: np.random.Generator,
    centre: np.ndarray | None = None,
) -> NetworkInput:
    """Thin dense surface points to the configuration's count and normalise them with their graph.

    ``centre`` overrides the bounding box's centre (the second pass centres on the face it aligned).
    """
    keep = thin_evenly(points, config.n_points, rng)
    if len(keep) < config.n_points:  # a small input: repeat points to fill the fixed size
        keep = np.concatenate([keep, rng.choice(keep, config.n_points - len(keep), replace=True)])
    chosen = points[keep]
    box_centre, scale = normalisation_frame(chosen, config)
    centre = box_centre if centre is None else np.asarray(centre, dtype=np.float64)
    normalised = (chosen - centre) / scale
    features = np.concatenate([normalised, normals[keep]], axis=1).astype(np.float32)
    return NetworkInput(features, knn_indices(normalised, config.network.neighbours), centre, scale)


def crop_to_ball(
    points: np.ndarray, normals: np.ndarray, centre: np.ndarray, config: MeshConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The points (and normals) within the second pass's ball about ``centre``; all of them when fewer
    than a quarter of the network's input would remain (then the ball missed the scan)."""
    inside = np.linalg.norm(points - centre, axis=1) < config.crop_radius
    if inside.sum() < config.n_points // 4:
        return points, normals
    return points[inside], normals[inside]


def super_points(normalised: np.ndarray, mean_landmarks: np.ndarray) -> np.ndarray:
    """Indices (68,) of the points nearest the mean landmark positions, both in the normalised frame."""
    _, index = cKDTree(normalised).query(mean_landmarks)
    return index.astype(np.int64)


def to_batch(inputs: list[NetworkInput], mean_landmarks: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Stack samples into the network's tensors (super points only when mean landmarks are given)."""
    batch = {
        "features": torch.from_numpy(np.stack([x.features for x in inputs])),
        "neighbours": torch.from_numpy(np.stack([x.neighbours for x in inputs])),
    }
    if mean_landmarks is not None:
        batch["super_points"] = torch.from_numpy(
            np.stack([super_points(x.features[:, :3], mean_landmarks) for x in inputs])
        )
    return batch
