"""Making the mesh landmarker's shape prior from a (fake, tiny) morphable model, and using it."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from facegraph.datasets.synthetic_faces import Augmentation, SyntheticFaces
from facegraph.errors import InputError
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.mesh.preprocess import get_config
from facegraph.mesh.weights import load_weights
from facegraph.training.mesh_prior import add_shape_prior, bfm_landmark_components
from tests.datasets.test_synthetic_faces import fake_bfm
from tests.mesh.test_landmarker import TINY_NETWORK, head, tiny_weights


@pytest.fixture(scope="module")
def model():
    return fake_bfm()


@pytest.fixture(scope="module")
def prior_weights(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prior")
    plain = tiny_weights(folder / "plain.safetensors")
    with_prior = folder / "with-prior.safetensors"
    add_shape_prior(plain, model, with_prior, n_scans=10, progress=False)
    return plain, with_prior


def test_the_components_are_the_landmarks_covariance_under_the_training_distribution(model):
    faces = SyntheticFaces(model, Augmentation())
    mean, basis, variances = bfm_landmark_components(faces)
    np.testing.assert_allclose(basis @ basis.T, np.eye(len(variances)), atol=1e-9)
    assert len(variances) <= 50 and np.all(np.diff(variances) <= 0)
    np.testing.assert_allclose(mean.mean(axis=0), 0.0, atol=1e-9)
    rng = np.random.default_rng(0)
    aug = faces.augmentation
    samples = np.stack(
        [faces.face(rng, aug.shape_scale, aug.expression_scale)[faces.landmark_vertices] for _ in range(3000)]
    ).reshape(3000, -1)
    np.testing.assert_allclose(samples.mean(axis=0), mean.reshape(-1), atol=0.1 * np.sqrt(variances[0]))
    covariance = np.cov(samples, rowvar=False)
    modelled = basis.T @ np.diag(variances) @ basis
    assert np.trace(covariance) == pytest.approx(np.trace(modelled), rel=0.1)
    assert np.abs(covariance - modelled).max() < 0.15 * np.abs(modelled).max()


def test_adding_a_prior_keeps_the_network_and_leaves_the_input_alone(prior_weights):
    plain, with_prior = prior_weights
    before = hashlib.sha256(plain.read_bytes()).hexdigest()
    model, config, arrays, figures = load_weights(with_prior)
    original, _, original_arrays, _ = load_weights(plain)
    for key, value in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)
    np.testing.assert_array_equal(arrays["canonical_landmarks"], original_arrays["canonical_landmarks"])
    assert figures["shape_prior"]["noise_scans"] == 10 and figures["val_mm"] == 1.5
    prior = MeshLandmarker(with_prior).shape_prior
    assert prior is not None and prior.noise_mm.shape == (68,) and prior.off_model_mm == 0.25
    assert MeshLandmarker(plain).shape_prior is None
    assert hashlib.sha256(plain.read_bytes()).hexdigest() == before


def test_the_landmarker_fuses_with_the_prior_unless_told_not_to(prior_weights):
    plain, with_prior = prior_weights
    mesh = head()
    fused = MeshLandmarker(with_prior)(mesh, refine="none")
    unfused = MeshLandmarker(with_prior)(mesh, refine="none", shape_prior=False)
    without = MeshLandmarker(plain)(mesh, refine="none")
    np.testing.assert_allclose(unfused.points, without.points)
    assert np.abs(fused.points - unfused.points).max() > 1e-3
    assert "shape prior" in fused.seconds and "shape prior" not in unfused.seconds


def test_a_prior_needs_two_pass_weights(model, tmp_path):
    config = replace(
        get_config("2s-sgcn-paper"), n_points=256, network=replace(TINY_NETWORK, global_branch="super")
    )
    mean = np.random.default_rng(0).uniform(-0.5, 0.5, (68, 3)).astype(np.float32)
    paper = tiny_weights(tmp_path / "paper.safetensors", config, mean)
    with pytest.raises(InputError, match="two-pass"):
        add_shape_prior(paper, model, tmp_path / "out.safetensors", n_scans=10, progress=False)
    assert not (tmp_path / "out.safetensors").exists()
