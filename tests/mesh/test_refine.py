"""Stage-2 refinement on small meshes built here: a flat grid, an icosphere and a folded strip."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from facegraph.mesh import refine
from facegraph.mesh.refine import (
    REFINE_METHODS,
    _geodesic_squared_distances,
    _incidence,
    _Surface,
    closest_points_on_triangles,
    closest_surface_points,
    refine_landmarks,
)

SIGMA = 1.5


def grid_faces(n_u: int, n_v: int) -> np.ndarray:
    """Two triangles per cell of an n_u x n_v vertex grid numbered row-major (u outer)."""
    corner = (np.arange(n_u - 1)[:, None] * n_v + np.arange(n_v - 1)[None]).ravel()
    return np.concatenate(
        [
            np.stack([corner, corner + n_v, corner + 1], axis=1),
            np.stack([corner + 1, corner + n_v, corner + n_v + 1], axis=1),
        ]
    )


def folded_strip(fold_degrees: float, step: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 16 x 8 strip folded along u = 0 by ``fold_degrees`` (180 would lay it flat on itself).

    Returns the 3-D vertices, the faces and each vertex's (u, v) before folding: distances along the
    surface are straight-line distances in (u, v).
    """
    u, v = np.arange(-8, 8 + step / 2, step), np.arange(-4, 4 + step / 2, step)
    flat = np.stack(np.meshgrid(u, v, indexing="ij"), axis=-1).reshape(-1, 2)
    angle = np.radians(fold_degrees)
    folded_u = np.where(flat[:, 0] <= 0, flat[:, 0], flat[:, 0] * np.cos(angle))
    height = np.where(flat[:, 0] <= 0, 0.0, flat[:, 0] * np.sin(angle))
    return np.stack([folded_u, flat[:, 1], height], axis=1), grid_faces(len(u), len(v)), flat


def plane(half_width: int = 10, step: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The z = 0 square [-half_width, half_width]^2 as a triangulated grid."""
    ticks = np.arange(-half_width, half_width + step / 2, step)
    xy = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    vertices = np.column_stack([xy, np.zeros(len(xy))])
    return vertices, grid_faces(len(ticks), len(ticks))


def profile_input(
    vertices: np.ndarray, landmark: int, top: np.ndarray, distance: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free stage-1 output for one landmark: an estimate off the landmark vertex, the top points
    and their exact Gaussian heat from ``distance`` (each top point's distance to the landmark)."""
    estimate = vertices[landmark] + np.array([0.4, -0.3, 0.2])
    heat = np.exp(-(distance**2) / (2 * SIGMA**2))
    return estimate[None], vertices[top][None], heat[None]


def test_snap_lands_on_the_plane_at_the_foot_of_each_point() -> None:
    vertices, faces = plane(half_width=5)
    estimates = np.array([[0.3, -0.7, 2.5], [1.25, 2.5, -4.0], [7.0, 0.2, 1.0], [8.0, 9.0, -1.0]])
    result = refine_landmarks(vertices, faces, estimates, estimates[:, None], np.ones((4, 1)), 1.0, "snap")
    expected = np.array([[0.3, -0.7, 0.0], [1.25, 2.5, 0.0], [5.0, 0.2, 0.0], [5.0, 5.0, 0.0]])
    np.testing.assert_allclose(result.points, expected, atol=1e-12)
    assert result.method == "snap"
    nearest = np.argmin(((result.points[:, None] - vertices[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(result.vertex_indices, nearest)


def test_closest_surface_points_are_the_feet_on_the_plane_and_none_without_faces_with_area() -> None:
    vertices, faces = plane(half_width=5)
    points = np.array([[0.3, -0.7, 2.5], [7.0, 0.2, 1.0]])
    expected = np.array([[0.3, -0.7, 0.0], [5.0, 0.2, 0.0]])
    np.testing.assert_allclose(closest_surface_points(vertices, faces, points), expected, atol=1e-12)
    assert closest_surface_points(vertices, np.array([[0, 0, 1], [2, 3, 3]]), points) is None


def test_closest_point_on_a_triangle_is_on_it_and_nearer_than_any_other_point_of_it() -> None:
    rng = np.random.default_rng(0)
    a, b, c = np.array([0.0, 0.0, 0.0]), np.array([3.0, 0.5, 0.2]), np.array([0.7, 2.0, -0.4])
    points = rng.uniform(-3, 5, size=(400, 3))  # around the triangle: every Voronoi region is hit
    n = len(points)
    closest = closest_points_on_triangles(points, np.tile(a, (n, 1)), np.tile(b, (n, 1)), np.tile(c, (n, 1)))

    # On the triangle: barycentric coordinates in [0, 1] and no offset from its plane.
    basis = np.stack([b - a, c - a], axis=1)
    weights, *_ = np.linalg.lstsq(basis, (closest - a).T, rcond=None)
    np.testing.assert_allclose(a + (basis @ weights).T, closest, atol=1e-9)
    assert weights.min() > -1e-9 and weights.sum(axis=0).max() < 1 + 1e-9

    # Nearer than every point of a fine barycentric sample of the triangle.
    s, t = np.meshgrid(np.linspace(0, 1, 121), np.linspace(0, 1, 121))
    keep = s + t <= 1
    samples = a + s[keep, None] * (b - a) + t[keep, None] * (c - a)
    sampled = np.sqrt(((points[:, None] - samples[None]) ** 2).sum(axis=2)).min(axis=1)
    assert np.all(np.linalg.norm(closest - points, axis=1) <= sampled + 1e-9)


@pytest.mark.parametrize("pairs_at_once", [1_000_000, 7])
def test_snap_on_a_sphere_matches_the_nearest_point_of_any_face(
    pairs_at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also when the search runs in small chunks, and on a mesh with a few long, thin faces (which widen
    the search for every point)."""
    monkeypatch.setattr(refine, "SNAP_PAIRS", pairs_at_once)
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    far = len(vertices)
    vertices = np.concatenate([vertices, [[30.0, 0.0, 0.0], [30.0, 0.5, 0.0]]])
    faces = np.concatenate([faces, [[0, far, far + 1], [1, far + 1, far]]])
    rng = np.random.default_rng(1)
    estimates = rng.normal(size=(12, 3))
    estimates *= rng.uniform(6.0, 14.0, size=(12, 1)) / np.linalg.norm(estimates, axis=1, keepdims=True)
    result = refine_landmarks(vertices, faces, estimates, estimates[:, None], np.ones((12, 1)), 1.0, "snap")

    corners = vertices[faces]
    for estimate, snapped in zip(estimates, result.points, strict=True):
        on_every_face = closest_points_on_triangles(
            np.tile(estimate, (len(faces), 1)), corners[:, 0], corners[:, 1], corners[:, 2]
        )
        best = np.linalg.norm(on_every_face - estimate, axis=1).min()
        assert np.linalg.norm(snapped - estimate) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("method", ["euclidean", "geodesic"])
def test_profile_matching_recovers_the_landmark_vertex_on_a_plane(method: str) -> None:
    vertices, faces = plane()
    landmark = int(np.flatnonzero((vertices[:, 0] == 1) & (vertices[:, 1] == 2))[0])
    distance = np.linalg.norm(vertices - vertices[landmark], axis=1)
    rng = np.random.default_rng(2)
    top = rng.choice(np.flatnonzero((distance > 0) & (distance < 3.5)), size=7, replace=False)
    estimate, top_points, heat = profile_input(vertices, landmark, top, distance[top])
    result = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, method)
    assert result.method == method
    assert result.vertex_indices.tolist() == [landmark]
    np.testing.assert_array_equal(result.points, vertices[[landmark]])
    assert result.points.dtype == np.float64 and result.vertex_indices.dtype == np.int64


@pytest.mark.parametrize("method", ["euclidean", "geodesic"])
def test_profile_matching_recovers_the_landmark_vertex_on_a_sphere(method: str) -> None:
    radius = 20.0
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    vertices, faces = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    landmarks = [0, 500, 1500]
    for landmark in landmarks:
        chord = np.linalg.norm(vertices - vertices[landmark], axis=1)
        arc = 2 * radius * np.arcsin(np.clip(chord / (2 * radius), 0, 1))
        top = np.argsort(arc)[1:8]
        distance = arc if method == "geodesic" else chord
        estimate, top_points, heat = profile_input(vertices, landmark, top, distance[top])
        result = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, method)
        assert result.vertex_indices.tolist() == [landmark]


def test_geodesic_follows_the_surface_round_a_fold_where_euclidean_is_misled() -> None:
    # Folded by 160 degrees, the far sheet lies close above the near one; the landmark is 1.5 from
    # the crease and its hottest points spread 3 along the surface, some of them round the fold.
    vertices, faces, flat = folded_strip(160.0)
    landmark = int(np.flatnonzero((flat[:, 0] == -1.5) & (flat[:, 1] == 0))[0])
    along_surface = np.linalg.norm(flat - flat[landmark], axis=1)
    top = np.flatnonzero(along_surface <= 3.0)
    assert (flat[top, 0] > 0).any()
    estimate, top_points, heat = profile_input(vertices, landmark, top, along_surface[top])

    geodesic = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "geodesic")
    euclidean = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "euclidean")
    assert geodesic.vertex_indices.tolist() == [landmark]
    assert along_surface[euclidean.vertex_indices[0]] >= 1.0  # two grid steps or more off


def two_sheets(gap: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Two parallel 12 x 12 sheets ``gap`` apart that do not touch (like closed lips): vertices, faces
    and the number of lower-sheet vertices (those come first)."""
    lower, faces = plane(half_width=6, step=0.5)
    vertices = np.concatenate([lower, lower + np.array([0.0, 0.0, gap])])
    return vertices, np.concatenate([faces, faces + len(lower)]), len(lower)


def test_geodesic_ignores_cold_points_on_a_sheet_that_does_not_touch_where_euclidean_is_misled() -> None:
    # A lower-lip landmark: hot points around it, and cold points just above it on the upper lip,
    # which is far along the surface (no path at all) but near in a straight line.
    vertices, faces, n_lower = two_sheets(gap=0.6)
    landmark = int(np.flatnonzero((vertices[:n_lower, 0] == 0.5) & (vertices[:n_lower, 1] == -1))[0])
    straight = np.linalg.norm(vertices - vertices[landmark], axis=1)
    on_upper = np.arange(len(vertices)) >= n_lower
    top = np.flatnonzero((~on_upper & (straight <= 2.0)) | (on_upper & (straight <= 1.5)))
    along_surface = np.where(on_upper[top], np.inf, straight[top])
    estimate, top_points, heat = profile_input(vertices, landmark, top, along_surface)

    geodesic = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "geodesic")
    euclidean = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "euclidean")
    assert geodesic.vertex_indices.tolist() == [landmark]
    assert euclidean.vertex_indices.tolist() != [landmark]


def test_patch_distances_follow_the_surface_never_cut_across_and_never_join_separate_pieces() -> None:
    # The heat method alone would give the upper sheet a finite constant distance from a lower source.
    vertices, faces, n_lower = two_sheets(gap=0.6)
    surface = _Surface.build(vertices, faces)
    source = int(np.flatnonzero((vertices[:n_lower, 0] == 0) & (vertices[:n_lower, 1] == 0))[0])
    candidates = surface.candidates(vertices[source], 3 * SIGMA)
    squared, kept = _geodesic_squared_distances(
        surface,
        _incidence(surface.faces, len(vertices)),
        vertices[source],
        vertices[[source]],
        candidates,
        SIGMA,
    )
    lower = kept < n_lower
    assert (~lower).any() and np.isinf(squared[~lower]).all()
    straight = np.linalg.norm(vertices[kept[lower]] - vertices[source], axis=1)
    assert np.all(np.sqrt(squared[lower, 0]) >= straight)
    np.testing.assert_allclose(np.sqrt(squared[lower, 0]), straight, atol=0.25)


def test_degenerate_faces_and_loose_vertices_change_nothing() -> None:
    vertices, faces = plane(half_width=6)
    landmark = int(np.flatnonzero((vertices[:, 0] == -2) & (vertices[:, 1] == 1))[0])
    distance = np.linalg.norm(vertices - vertices[landmark], axis=1)
    top = np.flatnonzero((distance > 0) & (distance < 2.5))
    estimate, top_points, heat = profile_input(vertices, landmark, top, distance[top])

    # A loose vertex right at the estimate, a collinear (zero-area) face and faces with repeated corners.
    n = len(vertices)
    extra = np.array([estimate[0], [20.0, 0, 0], [21.0, 0, 0], [22.0, 0, 0]])
    dirty_vertices = np.concatenate([vertices, extra])
    bad_faces = np.array([[n + 1, n + 2, n + 3], [0, 0, 1], [landmark, landmark, landmark], [n, n, 5]])
    dirty_faces = np.concatenate([faces, bad_faces])
    for method in REFINE_METHODS:
        clean = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, method)
        dirty = refine_landmarks(dirty_vertices, dirty_faces, estimate, top_points, heat, SIGMA, method)
        np.testing.assert_array_equal(dirty.vertex_indices, clean.vertex_indices)
        np.testing.assert_allclose(dirty.points, clean.points)


@pytest.mark.parametrize("method", ["euclidean", "geodesic"])
def test_an_estimate_far_from_every_vertex_still_gets_candidates(method: str) -> None:
    vertices, faces = plane()
    landmark = int(np.flatnonzero((vertices[:, 0] == -4) & (vertices[:, 1] == 3))[0])
    distance = np.linalg.norm(vertices - vertices[landmark], axis=1)
    top = np.flatnonzero(distance < 2.5)
    _, top_points, heat = profile_input(vertices, landmark, top, distance[top])
    estimate = vertices[[landmark]] + np.array([0.2, 0.1, 50.0])  # nothing within 3 sigma: 16 nearest
    result = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, method)
    assert result.vertex_indices.tolist() == [landmark]


def test_geodesic_on_a_patch_too_small_to_solve_falls_back_to_euclidean_distances() -> None:
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    estimate, top_points, heat = (
        np.array([[0.9, 0.8, 0.3]]),
        vertices[None, [1, 2, 3]],
        np.array([[0.8, 0.8, 1.0]]),
    )
    geodesic = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "geodesic")
    euclidean = refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "euclidean")
    assert geodesic.method == "geodesic"
    np.testing.assert_array_equal(geodesic.vertex_indices, euclidean.vertex_indices)


def test_point_clouds_fall_back_to_euclidean_and_say_so() -> None:
    vertices, faces = plane()
    landmark = int(np.flatnonzero((vertices[:, 0] == 0) & (vertices[:, 1] == 0))[0])
    distance = np.linalg.norm(vertices - vertices[landmark], axis=1)
    top = np.flatnonzero((distance > 0) & (distance < 2.5))
    estimate, top_points, heat = profile_input(vertices, landmark, top, distance[top])
    for method in ("snap", "geodesic", "euclidean"):
        result = refine_landmarks(vertices, None, estimate, top_points, heat, SIGMA, method)
        assert result.method == "euclidean"
        assert result.vertex_indices.tolist() == [landmark]
    kept = refine_landmarks(vertices, None, estimate, top_points, heat, SIGMA, "none")
    assert kept.method == "none"
    np.testing.assert_array_equal(kept.points, estimate)
    assert kept.vertex_indices.tolist() == [landmark]


def test_predicted_heat_is_clipped_to_zero_one() -> None:
    vertices, faces = plane()
    landmark = int(np.flatnonzero((vertices[:, 0] == 3) & (vertices[:, 1] == -1))[0])
    distance = np.linalg.norm(vertices - vertices[landmark], axis=1)
    top = np.flatnonzero(distance < 2.5)
    estimate, top_points, heat = profile_input(vertices, landmark, top, distance[top])
    stretched = (heat - 0.5) * 3 + 0.5  # the same ranking, pushed beyond [0, 1] at both ends
    assert stretched.min() < 0 and stretched.max() > 1
    for method in ("euclidean", "geodesic"):
        loose = refine_landmarks(vertices, faces, estimate, top_points, stretched, SIGMA, method)
        clipped = refine_landmarks(
            vertices, faces, estimate, top_points, np.clip(stretched, 0, 1), SIGMA, method
        )
        np.testing.assert_array_equal(loose.vertex_indices, clipped.vertex_indices)


def test_an_unknown_method_or_bad_shapes_raise() -> None:
    vertices, faces = plane(half_width=2)
    estimate, top_points, heat = np.zeros((1, 3)), np.zeros((1, 2, 3)), np.ones((1, 2))
    with pytest.raises(ValueError, match="unknown refine method"):
        refine_landmarks(vertices, faces, estimate, top_points, heat, SIGMA, "nearest")
    with pytest.raises(ValueError, match="top_heat"):
        refine_landmarks(vertices, faces, estimate, top_points, np.ones((1, 3)), SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        refine_landmarks(vertices, faces, estimate, top_points, heat, 0.0)
