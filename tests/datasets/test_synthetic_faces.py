"""Synthetic scans from a fake, tiny morphable model: a sphere of radius 80 mm with small random bases."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import trimesh

from facegraph.datasets.synthetic_faces import CLEAN, SyntheticFaces, build_point_cache, smooth_warp
from facegraph.errors import InputError
from facegraph.morphable.bfm import MorphableModel, ParamWhitening

RADIUS_UM = 80_000.0  # the BFM is in micrometres


def fake_bfm(basis_scale: float = 300.0, seed: int = 0) -> MorphableModel:
    """An icosphere (642 vertices) as the mean face, random bases, landmarks on its front (+z) cap.

    The triangles wind clockwise seen from outside, as 3DDFA's do.
    """
    rng = np.random.default_rng(seed)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS_UM)
    vertices = np.asarray(sphere.vertices)
    n_coords = vertices.size
    return MorphableModel(
        vertices.reshape(-1),
        rng.normal(0.0, basis_scale, (n_coords, 40)),
        rng.normal(0.0, basis_scale, (n_coords, 10)),
        np.argsort(-vertices[:, 2])[:68],
        np.asarray(sphere.faces)[:, ::-1],
        ParamWhitening(np.zeros(62), np.ones(62)),
    )


@pytest.fixture(scope="module")
def model() -> MorphableModel:
    return fake_bfm()


def test_a_model_without_dense_bases_is_refused():
    sparse = fake_bfm()
    sparse.triangles = None
    with pytest.raises(InputError, match="dense"):
        SyntheticFaces(sparse)


def test_without_variation_a_clean_scan_is_the_mean_mesh_in_mm_centred_on_its_landmarks():
    model = fake_bfm(basis_scale=0.0)
    scan = SyntheticFaces(model, CLEAN).sample(np.random.default_rng(0), posed=False)
    mean_mm = model.mean.numpy().astype(np.float64).reshape(-1, 3) / 1000.0
    landmark_vertices = model.landmark_vertices.numpy()
    expected = mean_mm - mean_mm[landmark_vertices].mean(axis=0)
    np.testing.assert_allclose(scan.vertices, expected, atol=1e-9)
    np.testing.assert_array_equal(scan.faces, np.asarray(model.triangles)[:, ::-1])
    # The reversed triangles face outwards.
    normals = trimesh.Trimesh(scan.vertices, scan.faces, process=False).face_normals
    centres = scan.vertices[scan.faces].mean(axis=1) - scan.vertices.mean(axis=0)
    assert (np.einsum("ij,ij->i", normals, centres) > 0).all()


def test_clean_unposed_landmarks_are_the_landmark_vertices(model):
    faces = SyntheticFaces(model, CLEAN)
    scan = faces.sample(np.random.default_rng(1), posed=False)
    assert scan.vertices.shape == (model.n_vertices, 3)
    np.testing.assert_array_equal(scan.landmarks, scan.vertices[faces.landmark_vertices])
    np.testing.assert_allclose(scan.landmarks.mean(axis=0), 0.0, atol=1e-9)
    assert (np.abs(np.ptp(scan.vertices, axis=0) - 160.0) < 15.0).all()  # a sphere of about 80 mm, in mm


def test_clean_posed_scans_move_vertices_and_landmarks_together(model):
    faces = SyntheticFaces(model, replace(CLEAN, yaw=30.0, shift=40.0, scale=(0.9, 1.1)))
    scan = faces.sample(np.random.default_rng(2))
    np.testing.assert_allclose(scan.landmarks, scan.vertices[faces.landmark_vertices], atol=1e-9)
    assert np.linalg.norm(scan.landmarks.mean(axis=0)) > 1.0  # shifted off the origin


@pytest.mark.parametrize("seed", range(6))
def test_augmented_scans_are_valid_meshes_with_68_landmarks(model, seed):
    scan = SyntheticFaces(model).sample(np.random.default_rng(seed))
    assert np.isfinite(scan.vertices).all() and np.isfinite(scan.landmarks).all()
    assert scan.landmarks.shape == (68, 3)
    assert scan.faces.dtype == np.int64 and scan.faces.shape[1] == 3 and len(scan.faces) > 0
    assert scan.faces.min() >= 0 and scan.faces.max() < len(scan.vertices)
    assert len(np.unique(scan.faces)) == len(scan.vertices)  # no unused vertices


def test_a_seed_reproduces_a_scan(model):
    faces = SyntheticFaces(model)
    first, again = (faces.sample(np.random.default_rng(11)) for _ in range(2))
    other = faces.sample(np.random.default_rng(12))
    np.testing.assert_array_equal(first.vertices, again.vertices)
    np.testing.assert_array_equal(first.faces, again.faces)
    np.testing.assert_array_equal(first.landmarks, again.landmarks)
    assert not np.array_equal(first.landmarks, other.landmarks)


def test_warped_faces_carry_their_landmarks_and_keep_the_surface_unfolded(model):
    plain = SyntheticFaces(model, CLEAN).sample(np.random.default_rng(5), posed=False)
    faces = SyntheticFaces(model, replace(CLEAN, warp=1.0))
    warped = faces.sample(np.random.default_rng(5), posed=False)
    np.testing.assert_array_equal(warped.landmarks, warped.vertices[faces.landmark_vertices])
    moved = np.linalg.norm(warped.vertices - plain.vertices, axis=1)
    assert 1.0 < moved.max() < 8 * 6.0  # at most 8 bumps of at most 6 mm
    before = trimesh.Trimesh(plain.vertices, plain.faces, process=False).face_normals
    after = trimesh.Trimesh(warped.vertices, warped.faces, process=False).face_normals
    assert (np.einsum("ij,ij->i", before, after) > 0.5).all()  # no triangle flips


def test_a_warp_is_local_to_the_landmarks_and_bounded_by_its_amplitude():
    grid = np.stack(np.meshgrid(np.linspace(-300, 300, 61), np.linspace(-300, 300, 61)), -1).reshape(-1, 2)
    plane = np.column_stack([grid, np.zeros(len(grid))])
    landmarks = np.zeros((68, 3))
    for seed in range(5):
        moved = smooth_warp(plane, landmarks, np.random.default_rng(seed), (2.0, 3.0)) - plane
        distance = np.linalg.norm(plane, axis=1)
        assert np.abs(moved[distance > 250]).max() < 1e-3
        assert 0.5 < np.linalg.norm(moved, axis=1).max() <= 8 * 3.0


def test_build_point_cache_keeps_evenly_sampled_unposed_scans(model):
    faces = SyntheticFaces(model, CLEAN)
    cache = build_point_cache(faces, 3, 200, seed=0, progress=False)
    assert len(cache) == 3
    assert cache.points.shape == cache.normals.shape == (3, 200, 3)
    assert cache.landmarks.shape == (3, 68, 3)
    assert cache.points.dtype == cache.normals.dtype == cache.landmarks.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cache.normals, axis=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(cache.landmarks.mean(axis=1), 0.0, atol=1e-4)  # unposed: centred
    again = build_point_cache(faces, 3, 200, seed=0, progress=False)
    np.testing.assert_array_equal(cache.points, again.points)
