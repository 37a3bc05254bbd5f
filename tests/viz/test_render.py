"""The shaded mesh overlay: depth between and within faces, the untouched photo, and the lighting."""

from __future__ import annotations

import numpy as np

from facegraph.viz.render import render_meshes


def quad(x0: float, y0: float, x1: float, y1: float, z: float | tuple[float, float] = 0.0) -> tuple:
    """A rectangle of two triangles in photo pixels; a pair of z tilts it along x (left, right)."""
    left, right = (z, z) if np.isscalar(z) else z
    vertices = np.array([[x0, y0, left], [x1, y0, right], [x1, y1, right], [x0, y1, left]], np.float64)
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def grey(value: int, shape: tuple[int, int] = (60, 80)) -> np.ndarray:
    return np.full((*shape, 3), value, np.uint8)


def test_the_nearer_surface_of_a_face_hides_the_farther_one() -> None:
    photo = grey(0)
    near, far = quad(10, 10, 50, 40, z=20.0), quad(30, 20, 70, 50, z=5.0)
    bright = render_meshes(photo, [near], alpha=1.0)[25, 40]
    # One face: the far quad, tilted, so that its shade differs from the flat near one.
    vertices = np.concatenate([near[0], far[0] + [0, 0, 0]])
    vertices[4:, 2] = [0.0, 10.0, 10.0, 0.0]
    triangles = np.concatenate([near[1], far[1] + 4])
    for order in (triangles, triangles[::-1]):
        out = render_meshes(photo, [(vertices, order)], alpha=1.0)
        np.testing.assert_array_equal(out[35, 40], bright)  # the overlap: the near quad's flat shade
        assert not np.array_equal(out[45, 65], bright)  # the far quad where it is alone


def test_a_larger_face_hides_a_smaller_one_whatever_their_own_depths() -> None:
    photo = grey(0)
    large = quad(5, 5, 55, 45, z=(0.0, 30.0))  # tilted: a distinct shade
    small = quad(40, 30, 70, 55, z=50.0)  # flat, and with larger z: only its own frame
    alone = render_meshes(photo, [large], alpha=1.0)
    for meshes in ([large, small], [small, large]):
        out = render_meshes(photo, meshes, alpha=1.0)
        np.testing.assert_array_equal(out[40, 50], alone[40, 50])
        assert not np.array_equal(out[50, 65], photo[50, 65])


def test_pixels_no_mesh_covers_are_the_photo_unchanged() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = render_meshes(photo, [quad(10.2, 10.2, 30.7, 40.7, z=3.0)], alpha=0.6)
    covered = np.zeros(photo.shape[:2], bool)
    covered[11:41, 11:31] = True  # pixel centres inside the quad
    np.testing.assert_array_equal(out[~covered], photo[~covered])
    assert (out[covered] != photo[covered]).any(axis=1).all()
    np.testing.assert_array_equal(render_meshes(photo, []), photo)


def test_a_surface_facing_the_viewer_is_brighter_than_one_turned_away() -> None:
    photo = grey(0)
    facing = render_meshes(photo, [quad(10, 10, 50, 50, z=0.0)], alpha=1.0)[30, 30]
    turned = render_meshes(photo, [quad(10, 10, 50, 50, z=(0.0, 60.0))], alpha=1.0)[30, 30]
    assert facing.astype(int).sum() > turned.astype(int).sum() > 0


def test_a_dense_mesh_is_drawn_whole_without_gaps() -> None:
    """A 100 x 100 vertex grid of small triangles (the dense face's scale): every pixel inside it drawn."""
    ys, xs = np.mgrid[0:100, 0:100].astype(float)
    vertices = np.stack([xs.ravel() * 0.7 + 20.3, ys.ravel() * 0.7 + 10.1, np.zeros(xs.size)], axis=1)
    ids = np.arange(10000).reshape(100, 100)
    a, b, c, d = ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel(), ids[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    out = render_meshes(grey(0, (100, 120)), [(vertices, triangles)], alpha=1.0)
    inside = out[11:79, 21:89]
    assert (inside.sum(axis=2) > 0).all() and (inside == inside[0, 0]).all()
