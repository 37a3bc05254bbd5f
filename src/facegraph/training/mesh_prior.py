"""Making the mesh landmarker's shape prior (``facegraph.mesh.shape_prior``) from the Basel Face Model.

The prior's components are exact, not sampled: the 68 landmark vertices are linear in the BFM's shape
and expression coefficients, so their covariance under the training distribution (coefficient spreads
widened as ``Augmentation`` widens them, landmarks centred on their mean as the generator centres
faces) is a product of the bases' landmark rows, and its eigenvectors are the components (the small
rotations some of them hold do not matter: the fusion leaves rigid motions free). The network's
per-landmark noise is measured on synthetic scans made as the training scans are, under a seed of
their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegraph.datasets.synthetic_faces import Augmentation, SyntheticFaces
from facegraph.errors import InputError
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.mesh.shape_prior import N_LANDMARKS, ShapePrior, landmark_noise
from facegraph.mesh.weights import load_weights, save_weights, stored_config
from facegraph.morphable import MorphableModel

DEFAULT_SEED = 20261202
DEFAULT_SCANS = 200
# Shape beyond the BFM's components, mm per coordinate. Chosen on the 20 neutral Surrey Face Model
# calibration faces with --offsets spiga (figures in the mesh model card): of the two best, the one
# that leaves real faces some room beyond the BFM.
DEFAULT_OFF_MODEL_MM = 0.25


def bfm_landmark_components(faces: SyntheticFaces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (68, 3) mm, orthonormal components (K, 204) and variances (K,) mm² of the BFM's 68
    landmarks under ``faces``' distribution of shape and expression, centred on their mean."""
    rows = (3 * faces.landmark_vertices[:, None] + np.arange(3)).reshape(-1)
    centring = np.eye(3 * N_LANDMARKS) - np.kron(
        np.full((N_LANDMARKS, N_LANDMARKS), 1 / N_LANDMARKS), np.eye(3)
    )
    aug = faces.augmentation
    factors = np.concatenate(
        [
            faces.shape_basis[rows] * (faces.shape_std * aug.shape_scale),
            faces.expression_basis[rows] * (faces.expression_std * aug.expression_scale),
        ],
        axis=1,
    )
    vectors, singular, _ = np.linalg.svd(centring @ factors, full_matrices=False)
    keep = singular > singular[0] * 1e-6
    mean = (centring @ faces.mean[rows]).reshape(N_LANDMARKS, 3)
    return mean, vectors[:, keep].T, singular[keep] ** 2


def measure_noise(
    landmarker: MeshLandmarker,
    faces: SyntheticFaces,
    n_scans: int,
    rng: np.random.Generator,
    progress: bool = True,
) -> np.ndarray:
    """The network's per-landmark error (68,) mm per coordinate, before any prior, on ``n_scans``
    synthetic scans drawn with ``rng``."""
    estimates, truths = [], []
    for i in tqdm(range(n_scans), desc="scans", unit="scan", disable=not progress):
        scan = faces.sample(rng)
        estimates.append(landmarker.network_estimate(scan.vertices, scan.faces, seed=i)[0])
        truths.append(scan.landmarks)
    return landmark_noise(np.stack(estimates), np.stack(truths), landmarker.canonical_landmarks)


def add_shape_prior(
    weights: str | Path,
    bfm: MorphableModel | str | Path,
    out: str | Path,
    n_scans: int = DEFAULT_SCANS,
    seed: int = DEFAULT_SEED,
    off_model_mm: float = DEFAULT_OFF_MODEL_MM,
    progress: bool = True,
) -> ShapePrior:
    """Write ``weights`` to ``out`` with a shape prior made from the BFM (a folder with dense bases, or
    the model), replacing any prior they had; returns the prior."""
    if n_scans < 10:
        raise InputError(f"--scans: the network's noise needs at least 10 scans, got {n_scans}")
    if not off_model_mm >= 0:
        raise InputError(f"--off-model-mm must not be negative, got {off_model_mm}")
    landmarker = MeshLandmarker(weights)
    if landmarker.canonical_landmarks is None:
        raise InputError(
            "a shape prior needs two-pass weights with a canonical frame (facegraph-mesh)", weights
        )
    faces = SyntheticFaces(bfm, Augmentation())
    mean, basis, variances = bfm_landmark_components(faces)
    noise = measure_noise(landmarker, faces, n_scans, np.random.default_rng(seed), progress)
    prior = ShapePrior(mean, basis, variances, noise, off_model_mm)
    model, _, arrays, figures = load_weights(weights)
    arrays.update(prior.to_arrays())
    figures = dict(figures)
    figures["shape_prior"] = {
        "components": len(variances),
        "noise_scans": n_scans,
        "noise_seed": seed,
        "noise_mm_inner_51": round(float(noise[17:].mean()), 3),
        "off_model_mm": off_model_mm,
    }
    save_weights(Path(out), model, stored_config(weights), arrays, figures)
    return prior


def describe_prior(prior: ShapePrior) -> str:
    """One line: the prior's components and the network's noise it was measured with."""
    return (
        f"shape prior: {len(prior.variances)} components of the BFM's landmarks; the network's noise"
        f" over the inner 51 points {prior.noise_mm[17:].mean():.2f} mm per coordinate"
    )
