"""The statistical shape prior: fusing noisy landmark estimates with a linear model of faces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facegraph.geometry.pose import pose_to_matrix
from facegraph.mesh.shape_prior import ShapePrior, landmark_noise, rigid_motions
from facegraph.types import HeadPose


def toy_prior(noise_mm: float = 1.0, off_model_mm: float = 0.0, seed: int = 0) -> ShapePrior:
    """A random mean face (68 points, mm) with 10 orthonormal components of 3-10 mm spread that move
    no point set rigidly (as a model made from aligned faces)."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(0.0, 40.0, (68, 3))
    mean -= mean.mean(axis=0)
    motions = rigid_motions(mean)
    random = rng.normal(size=(204, 10))
    basis, _ = np.linalg.qr(random - motions @ (motions.T @ random))
    variances = np.linspace(10.0, 3.0, 10) ** 2
    return ShapePrior(mean, basis.T, variances, np.full(68, noise_mm), off_model_mm)


def draw_face(prior: ShapePrior, rng: np.random.Generator) -> np.ndarray:
    coefficients = rng.normal(size=len(prior.variances)) * np.sqrt(prior.variances)
    return prior.mean + (coefficients @ prior.basis).reshape(68, 3)


def posed(points: np.ndarray) -> np.ndarray:
    return points @ pose_to_matrix(HeadPose(yaw=25.0, pitch=-10.0, roll=5.0)).T + [30.0, -20.0, 500.0]


def test_fusion_brings_noisy_estimates_nearer_the_face_in_the_scans_frame():
    prior = toy_prior(noise_mm=2.0)
    rng = np.random.default_rng(1)
    before, after = [], []
    for _ in range(20):
        truth = posed(draw_face(prior, rng))
        estimate = truth + rng.normal(0.0, 2.0, truth.shape)
        before.append(np.linalg.norm(estimate - truth, axis=1).mean())
        after.append(np.linalg.norm(prior.fuse(estimate) - truth, axis=1).mean())
    assert np.mean(after) < 0.5 * np.mean(before)


def test_a_noiseless_face_of_the_model_is_kept():
    prior = toy_prior(noise_mm=0.01)
    truth = posed(draw_face(prior, np.random.default_rng(2)))
    np.testing.assert_allclose(prior.fuse(truth), truth, atol=0.1)


def test_sure_landmarks_stay_and_unsure_ones_follow_the_others():
    prior = toy_prior()
    noise = np.full(68, 0.2)
    noise[30] = 20.0  # the network knows nothing of landmark 30
    prior = replace(prior, noise_mm=noise)
    truth = posed(draw_face(prior, np.random.default_rng(3)))
    estimate = truth.copy()
    estimate[30] += [15.0, 0.0, 0.0]
    fused = prior.fuse(estimate)
    assert np.linalg.norm(fused[30] - truth[30]) < 1.0
    assert np.linalg.norm(fused - truth, axis=1)[np.arange(68) != 30].max() < 0.5


def test_shape_beyond_the_model_passes_as_its_spread_allows():
    prior = toy_prior(noise_mm=1.0)
    rng = np.random.default_rng(4)
    truth = draw_face(prior, rng)
    bump = np.zeros((68, 3))
    bump[10] = [0.0, 8.0, 0.0]  # a shape no component makes
    estimate = truth + bump
    strict = prior.fuse(estimate)
    loose = replace(prior, off_model_mm=20.0).fuse(estimate)
    assert np.linalg.norm(strict[10] - truth[10]) < 2.0
    assert np.linalg.norm(loose[10] - estimate[10]) < 0.1


def test_a_prior_round_trips_through_its_arrays():
    prior = toy_prior(off_model_mm=0.5)
    back = ShapePrior.from_arrays(prior.to_arrays())
    for field in ("mean", "basis", "variances", "noise_mm"):
        np.testing.assert_array_equal(getattr(back, field), getattr(prior, field))
    assert back.off_model_mm == 0.5
    arrays = prior.to_arrays()
    del arrays["shape_prior_noise_mm"]
    assert ShapePrior.from_arrays(arrays) is None


@pytest.mark.parametrize(
    "change, message",
    [
        ({"basis": np.zeros((9, 204))}, "basis"),
        ({"noise_mm": np.zeros(68)}, "noise_mm"),
        ({"variances": -np.ones(10)}, "variances"),
        ({"off_model_mm": -1.0}, "off_model_mm"),
    ],
)
def test_a_malformed_prior_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        replace(toy_prior(), **change)


def test_landmark_noise_is_the_rms_error_per_coordinate_in_the_canonical_frame():
    canonical = toy_prior().mean
    rng = np.random.default_rng(5)
    estimates = np.stack([posed(canonical) for _ in range(200)])
    truths = estimates.copy()
    errors = rng.normal(0.0, 1.0, (200, 3))
    truths[:, 7] += 3.0 * errors / np.linalg.norm(errors, axis=1, keepdims=True)  # 3 mm, any direction
    noise = landmark_noise(estimates, truths, canonical)
    assert noise[7] == pytest.approx(3.0 / np.sqrt(3.0), rel=1e-6)
    assert np.delete(noise, 7).max() < 1e-6
