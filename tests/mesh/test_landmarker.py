"""The mesh landmarker's plumbing with tiny random weights: frames, units, checks, fallbacks, weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

import facegraph.mesh
from facegraph.errors import InputError
from facegraph.mesh.landmarker import DEFAULT_REFINE, MeshLandmarker
from facegraph.mesh.preprocess import MeshConfig, get_config
from facegraph.mesh.refine import closest_points_on_triangles
from facegraph.mesh.weights import CANONICAL_KEY, MEAN_KEY, load_weights, save_weights
from facegraph.nn.sgcn import SgcnConfig, StratifiedGcn
from facegraph.types import Mesh

TINY_NETWORK = SgcnConfig(hidden=8, depth=2, neighbours=8, global_branch="pool")


def tiny_config(branch: str = "pool") -> MeshConfig:
    """The project's configuration shrunk to 256 points and a two-layer, 8-wide network."""
    return replace(
        get_config("facegraph-mesh"), n_points=256, network=replace(TINY_NETWORK, global_branch=branch)
    )


def tiny_weights(path: Path, config: MeshConfig | None = None, mean: np.ndarray | None = None) -> Path:
    """Write random-initialised weights (seeded) for a configuration, the tiny one by default."""
    config = config or tiny_config()
    torch.manual_seed(0)
    arrays = {} if mean is None else {MEAN_KEY: mean}
    if config.two_pass:  # the mean face's landmarks: here, points spread over a sphere's front
        arrays[CANONICAL_KEY] = np.random.default_rng(0).normal(0.0, 30.0, (68, 3)) + [0.0, 0.0, 60.0]
    save_weights(path, StratifiedGcn(config.network), config, arrays, {"val_mm": 1.5})
    return path


def head(radius: float = 80.0) -> Mesh:
    """A stand-in scan: an icosphere of radius 80 mm (642 vertices)."""
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return Mesh(np.asarray(sphere.vertices), np.asarray(sphere.faces))


@pytest.fixture(scope="module")
def landmarker(tmp_path_factory: pytest.TempPathFactory) -> MeshLandmarker:
    return MeshLandmarker(tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors"))


def assert_on_scan(result, mesh: Mesh) -> None:
    """68 finite landmarks inside the scan's bounding box, at (or nearest to) real vertices."""
    assert result.points.shape == (68, 3) and np.isfinite(result.points).all()
    low, high = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    slack = 1e-9 * np.abs(mesh.vertices).max()
    assert (result.points >= low - slack).all() and (result.points <= high + slack).all()
    assert result.vertex_indices.shape == (68,)
    assert result.vertex_indices.min() >= 0 and result.vertex_indices.max() < len(mesh.vertices)


def test_weights_round_trip_with_config_and_figures(tmp_path):
    config = tiny_config()
    path = tiny_weights(tmp_path / "w.safetensors", config)
    model, loaded, arrays, figures = load_weights(path)
    assert loaded == config
    assert set(arrays) == {CANONICAL_KEY} and arrays[CANONICAL_KEY].shape == (68, 3)
    assert figures == {"val_mm": 1.5}
    assert not model.training
    torch.manual_seed(0)
    reference = StratifiedGcn(config.network).state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key])


def test_landmarks_lie_on_the_scan_in_its_frame(landmarker):
    mesh = head()
    result = landmarker(mesh)
    assert_on_scan(result, mesh)
    assert result.refine == DEFAULT_REFINE
    assert result.notes == []
    # The default snaps each landmark onto the surface: onto one of the triangles about its vertex.
    touching = mesh.faces[np.isin(mesh.faces, result.vertex_indices).any(axis=1)]
    corners = [mesh.vertices[touching[:, i]] for i in range(3)]
    gaps = [
        np.linalg.norm(
            closest_points_on_triangles(np.repeat(p[None], len(touching), 0), *corners) - p, axis=1
        ).min()
        for p in result.points
    ]
    assert max(gaps) < 1e-9
    profile = landmarker(mesh, refine="geodesic")
    np.testing.assert_allclose(profile.points, mesh.vertices[profile.vertex_indices], atol=1e-9)
    assert {"sample", "first pass", "second pass", "refine", "total"} <= set(result.seconds)
    assert result.to_landmarks().scheme == "ibug68"


def test_landmarks_move_with_the_scan(landmarker):
    mesh = head()
    offset = np.array([500.0, -300.0, 250.0])
    moved = Mesh(mesh.vertices + offset, mesh.faces)
    result, shifted = landmarker(mesh), landmarker(moved)
    assert_on_scan(shifted, moved)
    np.testing.assert_array_equal(shifted.vertex_indices, result.vertex_indices)
    np.testing.assert_allclose(shifted.points, result.points + offset, atol=1e-6)


def test_same_seed_same_landmarks(landmarker):
    mesh = head()
    first, again = landmarker(mesh, seed=3), landmarker(mesh, seed=3)
    np.testing.assert_array_equal(first.points, again.points)


def test_a_point_cloud_falls_back_to_euclidean_refinement(landmarker):
    cloud = Mesh(head().vertices)
    result = landmarker(cloud)
    assert_on_scan(result, cloud)
    assert result.refine == "euclidean"
    assert any("'euclidean'" in note for note in result.notes)


def test_a_scan_in_metres_is_refused_unless_its_units_are_given(landmarker):
    metres = head(radius=0.08)
    with pytest.raises(InputError, match="--units m"):
        landmarker(metres)
    result = landmarker(metres, units="m")
    assert_on_scan(result, metres)


def test_unknown_units_are_refused(landmarker):
    with pytest.raises(InputError, match="unknown units"):
        landmarker(head(), units="furlong")


def test_too_few_vertices_are_refused(landmarker):
    sphere = trimesh.creation.icosphere(subdivisions=1, radius=80.0)  # 42 vertices
    with pytest.raises(InputError, match="too few"):
        landmarker(Mesh(np.asarray(sphere.vertices), np.asarray(sphere.faces)))


def test_a_nan_vertex_is_refused(landmarker):
    mesh = head()
    mesh.vertices[17, 1] = np.nan
    with pytest.raises(InputError, match="vertex 17 has a NaN"):
        landmarker(mesh)


def test_a_mesh_of_degenerate_faces_is_treated_as_a_point_cloud(landmarker):
    mesh = head()
    n = len(mesh.vertices)
    degenerate = np.stack([np.arange(n), np.arange(n), np.roll(np.arange(n), 1)], axis=1)
    result = landmarker(Mesh(mesh.vertices, degenerate))
    assert_on_scan(result, mesh)
    assert "no usable faces: treated as a point cloud" in result.notes
    assert any(f"ignored {n} degenerate faces" in note for note in result.notes)
    assert result.refine == "euclidean"


def test_the_published_super_point_design_round_trips(tmp_path):
    config = replace(
        get_config("2s-sgcn-paper"), n_points=256, network=replace(TINY_NETWORK, global_branch="super")
    )
    mean = np.random.default_rng(0).uniform(-0.5, 0.5, (68, 3)).astype(np.float32)
    path = tiny_weights(tmp_path / "paper.safetensors", config, mean)
    landmarker = MeshLandmarker(path)
    assert landmarker.config == config
    np.testing.assert_array_equal(landmarker.mean_landmarks, mean)
    mesh = head()
    assert_on_scan(landmarker(mesh), mesh)


def test_load_weights_refuses_other_files(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("these are not weights\n")
    with pytest.raises(InputError, match="not mesh landmarker weights"):
        load_weights(text)
    with pytest.raises(InputError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")


def test_load_weights_refuses_weights_that_do_not_match_their_config(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, StratifiedGcn(replace(TINY_NETWORK, hidden=4)), tiny_config(), {}, {})
    with pytest.raises(InputError, match="do not match"):
        load_weights(path)


def test_the_shipped_weights_find_the_landmarks_of_the_bundled_scan():
    """The default model on menpo3d's james (a real head scan shipped as the demo's sample)."""
    from facegraph.demo import sample_path
    from facegraph.io import read_landmarks, read_mesh

    mesh = read_mesh(sample_path("james.obj"))
    truth = read_landmarks(sample_path("james.json")).points
    landmarks = facegraph.mesh.landmark(mesh)
    assert landmarks.scheme == "ibug68" and landmarks.points.shape == (68, 3)
    errors = np.linalg.norm(landmarks.points - truth, axis=1)
    # Measured 4.07 mm over the inner 51 with the shipped weights and their shape prior (`make demo`);
    # 4.69 without the prior, and the weights before those 5.39.
    assert errors[17:].mean() < 4.6
    assert np.median(errors) < 10.0


def test_mirroring_landmarks_swaps_sides_and_undoes_itself():
    from facegraph.mesh.landmarker import mirror_landmarks

    points = np.random.default_rng(3).normal(size=(68, 3))
    twice = mirror_landmarks(mirror_landmarks(points))
    np.testing.assert_array_equal(twice, points)
    mirrored = mirror_landmarks(points)
    np.testing.assert_array_equal(mirrored[36], points[45] * [-1, 1, 1])  # outer eye corners swap
    np.testing.assert_array_equal(mirrored[30], points[30] * [-1, 1, 1])  # the nose tip stays
    top = np.random.default_rng(4).normal(size=(68, 7, 3))  # each landmark's top points move with it
    np.testing.assert_array_equal(mirror_landmarks(top)[36], top[45] * [-1, 1, 1])
