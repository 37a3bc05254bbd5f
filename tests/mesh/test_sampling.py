"""Input sampling: even points on a mesh or a cloud, their normals, their orientation and their graph."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from facegraph.mesh.sampling import (
    _first_in_each_cell,
    _occupied_cells,
    knn_indices,
    orient_each_outwards,
    orient_outwards,
    sample_cloud,
    sample_surface,
)

RADIUS = 80.0


def sphere(reverse_winding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere of radius 80 (outward normals, or inward with the winding reversed)."""
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS)
    faces = np.asarray(mesh.faces)
    return np.asarray(mesh.vertices), faces[:, ::-1] if reverse_winding else faces


def square(side: float = 100.0, cells: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The z = 0 square [0, side]^2 as a grid of cells x cells squares, two triangles each."""
    ticks = np.linspace(0.0, side, cells + 1)
    xy = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    corner = (np.arange(cells)[:, None] * (cells + 1) + np.arange(cells)[None]).ravel()
    faces = np.concatenate(
        [
            np.stack([corner, corner + cells + 1, corner + 1], axis=1),
            np.stack([corner + 1, corner + cells + 1, corner + cells + 2], axis=1),
        ]
    )
    return np.column_stack([xy, np.zeros(len(xy))]), faces


def nn_variation(points: np.ndarray) -> float:
    """Coefficient of variation of each point's distance to its nearest other point."""
    distances, _ = cKDTree(points).query(points, k=2)
    return float(distances[:, 1].std() / distances[:, 1].mean())


def test_sample_surface_gives_n_points_on_their_faces_with_the_face_normals():
    vertices, faces = sphere()
    sample = sample_surface(vertices, faces, 1000, np.random.default_rng(1))
    assert sample.points.shape == sample.normals.shape == (1000, 3)
    assert sample.face_ids.shape == (1000,)
    corners = vertices[faces[sample.face_ids]]
    # On the face's plane...
    face_normals = np.asarray(trimesh.Trimesh(vertices, faces, process=False).face_normals)
    offset = np.einsum("ij,ij->i", sample.points - corners[:, 0], face_normals[sample.face_ids])
    np.testing.assert_allclose(offset, 0.0, atol=1e-9)
    # ...and inside the triangle: non-negative barycentric coordinates.
    for i in range(3):
        a, b, c = corners[:, i], corners[:, (i + 1) % 3], corners[:, (i + 2) % 3]
        side = np.einsum("ij,ij->i", np.cross(b - a, sample.points - a), np.cross(b - a, c - a))
        assert (side >= -1e-9).all()
    np.testing.assert_allclose(np.linalg.norm(sample.normals, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(sample.normals, face_normals[sample.face_ids], atol=1e-9)
    assert np.linalg.norm(sample.points, axis=1).max() <= RADIUS + 1e-9
    assert np.linalg.norm(sample.points, axis=1).min() > 0.98 * RADIUS


def test_sample_surface_spreads_points_more_evenly_than_random_sampling():
    vertices, faces = square()
    sample = sample_surface(vertices, faces, 1000, np.random.default_rng(0))
    assert sample.points.shape == (1000, 3)
    np.testing.assert_allclose(sample.points[:, 2], 0.0)
    assert sample.points[:, :2].min() >= 0.0 and sample.points[:, :2].max() <= 100.0
    np.testing.assert_allclose(sample.normals, np.tile([0.0, 0.0, 1.0], (1000, 1)), atol=1e-12)
    # Uniform random points have a coefficient of variation of sqrt(4/pi - 1) = 0.52.
    random = np.random.default_rng(0).random((1000, 2)) * 100.0
    assert nn_variation(random) > 0.48
    assert nn_variation(sample.points) < 0.42
    # No region is left out: every 10 x 10 cell of the square holds points.
    counts = np.histogram2d(sample.points[:, 0], sample.points[:, 1], bins=10, range=[[0, 100], [0, 100]])[0]
    assert counts.min() >= 4


def test_sample_surface_is_deterministic_for_a_seed():
    vertices, faces = sphere()
    first = sample_surface(vertices, faces, 500, np.random.default_rng(7))
    again = sample_surface(vertices, faces, 500, np.random.default_rng(7))
    other = sample_surface(vertices, faces, 500, np.random.default_rng(8))
    np.testing.assert_array_equal(first.points, again.points)
    np.testing.assert_array_equal(first.face_ids, again.face_ids)
    assert not np.array_equal(first.points, other.points)


def test_sample_surface_refuses_a_mesh_without_area():
    vertices = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="no surface area"):
        sample_surface(vertices, np.array([[0, 1, 2]]), 10)


def test_sample_cloud_gives_n_cloud_points_with_normals_perpendicular_to_a_plane():
    rng = np.random.default_rng(3)
    normal = np.array([1.0, 2.0, 2.0]) / 3.0
    u = np.cross(normal, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    coords = rng.uniform(-50.0, 50.0, (3000, 2))
    cloud = coords[:, :1] * u + coords[:, 1:] * v + np.array([10.0, -5.0, 3.0])
    sample = sample_cloud(cloud, 400, rng)
    assert sample.points.shape == sample.normals.shape == (400, 3)
    assert sample.face_ids is None
    assert cKDTree(cloud).query(sample.points)[0].max() == 0.0  # points of the cloud itself
    assert len(np.unique(sample.points, axis=0)) == 400
    np.testing.assert_allclose(np.linalg.norm(sample.normals, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(sample.normals @ normal), 1.0, atol=1e-6)


def test_sample_cloud_repeats_points_of_a_small_cloud_to_fill_n():
    cloud = np.random.default_rng(0).normal(size=(50, 3))
    sample = sample_cloud(cloud, 120)
    assert sample.points.shape == (120, 3)
    assert len(np.unique(sample.points, axis=0)) == 50


def test_orient_outwards_flips_a_sphere_with_reversed_winding():
    vertices, faces = sphere(reverse_winding=True)
    sample = sample_surface(vertices, faces, 500, np.random.default_rng(0))
    radial = sample.points / np.linalg.norm(sample.points, axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", sample.normals, radial) < 0).all()
    flipped = orient_outwards(sample.points, sample.normals)
    assert (np.einsum("ij,ij->i", flipped, radial) > 0.9).all()
    # Normals that already point outwards are left alone.
    np.testing.assert_array_equal(orient_outwards(sample.points, flipped), flipped)


def test_orient_each_outwards_flips_only_the_inward_normals():
    points = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    normals = np.array([[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    expected = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(orient_each_outwards(points, normals), expected)


def test_knn_indices_excludes_self_and_matches_brute_force():
    points = np.random.default_rng(0).normal(size=(200, 3))
    k = 6
    found = knn_indices(points, k)
    assert found.shape == (200, k) and found.dtype == np.int64
    assert not (found == np.arange(200)[:, None]).any()
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    np.testing.assert_array_equal(found, np.argsort(distances, axis=1)[:, :k])


def test_each_cell_keeps_its_first_point_as_np_unique_would():
    """The thinning's cheap sort gives the same cells and representatives as ``np.unique``."""
    keys = np.random.default_rng(2).integers(0, 500, size=3000)
    unique, first = np.unique(keys, return_index=True)
    np.testing.assert_array_equal(_first_in_each_cell(keys), first)
    assert _occupied_cells(keys) == len(unique)
