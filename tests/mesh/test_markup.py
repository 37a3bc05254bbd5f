"""The 68-point markup's rules: inner lips where they meet when the lips meet, contours evenly spaced."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import trimesh

from facegraph.mesh.markup import LIPS_TOUCH_MM, MARKUP_RULES, apply_markup_rules

RNG = np.random.default_rng(11)
INNER_LIPS = [61, 62, 63, 65, 66, 67]


def grid(slot: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A flat 1 mm grid over [-40, 40] mm in the z = 0 plane; ``slot`` cuts a mouth opening out of it,
    |x| < 20, |y| < 4 mm."""
    xs = np.arange(-40.0, 41.0)
    x, y = np.meshgrid(xs, xs)
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    n = len(xs)
    cells = [
        (i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1)
        for i in range(n - 1)
        for j in range(n - 1)
    ]
    faces = np.array([face for a, b, c, d in cells for face in ((a, b, c), (b, d, c))])
    if slot:
        centres = vertices[faces].mean(axis=1)
        faces = faces[~((np.abs(centres[:, 0]) < 20) & (np.abs(centres[:, 1]) < 4))]
    return vertices, faces


def mouth(gap: float, depth: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """68 points whose inner mouth corners are (-18, 0, 0) (60) and (18, 0, 0) (64) and whose inner lips
    are ``gap`` mm apart in y, their pairs' halfway points at x = -6, 2 and 11 (not the quarter points)
    and ``depth`` mm off the z = 0 plane (right to left); the other points are random."""
    points = np.concatenate([RNG.uniform(-30, 30, (68, 2)), np.zeros((68, 1))], axis=1)
    points[60], points[64] = [-18.0, 0.0, 0.0], [18.0, 0.0, 0.0]
    up, down = gap / 2, -gap / 2
    points[[61, 62, 63]] = [[-5.0, up, depth[0]], [3.0, up, depth[1]], [12.0, up, depth[2]]]
    points[[67, 66, 65]] = [[-7.0, down, depth[0]], [1.0, down, depth[1]], [10.0, down, depth[2]]]
    return points


def test_inner_lips_of_a_closed_mouth_meet_between_the_inner_corners():
    vertices, faces = grid()
    points = mouth(gap=6.0)
    moved, notes = apply_markup_rules(points, ("closed-mouth",), vertices, faces)
    np.testing.assert_allclose(moved[[61, 67]], [[-9.0, 0.0, 0.0]] * 2, atol=1e-9)  # nearest corner 60
    np.testing.assert_allclose(moved[[62, 66]], [[0.0, 0.0, 0.0]] * 2, atol=1e-9)
    np.testing.assert_allclose(moved[[63, 65]], [[9.0, 0.0, 0.0]] * 2, atol=1e-9)  # nearest corner 64
    others = [i for i in range(68) if i not in INNER_LIPS]
    np.testing.assert_array_equal(moved[others], points[others])
    assert notes == ["the lips meet: inner lip points put where they meet, between the inner corners"]


def test_the_meeting_points_lie_on_a_curved_surface_not_on_the_line_inside_it():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=80.0)

    def on_sphere(x_angle: float, y_angle: float) -> np.ndarray:
        return 80.0 * np.array(
            [np.sin(x_angle) * np.cos(y_angle), np.sin(y_angle), np.cos(x_angle) * np.cos(y_angle)]
        )

    points = RNG.normal(0.0, 30.0, (68, 3))
    points[60], points[64] = on_sphere(-0.3, 0.0), on_sphere(0.3, 0.0)
    for (upper, lower), x_angle in zip(((61, 67), (62, 66), (63, 65)), (-0.15, 0.0, 0.15), strict=True):
        points[upper], points[lower] = on_sphere(x_angle, 0.02), on_sphere(x_angle, -0.02)  # 3.2 mm apart
    moved, _ = apply_markup_rules(points, ("closed-mouth",), sphere.vertices, sphere.faces)
    np.testing.assert_allclose(np.linalg.norm(moved[INNER_LIPS], axis=1), 80.0, atol=0.05)  # facets
    for index, fraction in ((61, 0.25), (62, 0.5), (63, 0.75)):
        chord = points[60] + fraction * (points[64] - points[60])  # up to 3.6 mm inside the sphere
        np.testing.assert_allclose(moved[index], 80.0 * chord / np.linalg.norm(chord), atol=0.2)


def test_an_open_mouth_keeps_its_inner_lips():
    vertices, faces = grid(slot=True)  # the points halfway between the lips lie in the opening
    points = mouth(gap=6.0)
    moved, notes = apply_markup_rules(points, ("closed-mouth",), vertices, faces)
    np.testing.assert_array_equal(moved, points)
    assert notes == []


@pytest.mark.parametrize(
    ("depth", "closed"),
    [
        ((0.0, LIPS_TOUCH_MM - 0.1, 0.0), True),
        ((0.0, LIPS_TOUCH_MM + 0.1, 0.0), False),  # one pair's halfway point off the surface is enough
        ((LIPS_TOUCH_MM + 0.1, 0.0, 0.0), False),
    ],
)
def test_the_lips_meet_only_if_every_halfway_point_is_near_the_surface(depth, closed):
    vertices, faces = grid()
    points = mouth(gap=6.0, depth=depth)
    moved, _ = apply_markup_rules(points, ("closed-mouth",), vertices, faces)
    assert np.allclose(moved[61], moved[67]) is closed


@pytest.mark.parametrize("faces", [None, np.array([[0, 0, 1], [2, 3, 3]])])  # no faces; none with an area
def test_a_point_cloud_keeps_its_inner_lips_and_says_why(faces):
    vertices, _ = grid()
    points = mouth(gap=6.0)
    moved, notes = apply_markup_rules(points, ("closed-mouth",), vertices, faces)
    np.testing.assert_array_equal(moved, points)
    assert notes == ["a point cloud cannot show whether the lips meet: inner lips left as estimated"]


# (point, the end it counts from, the other end, its fraction of the way), written out by hand
EVEN_SPACING = [
    (28, 27, 30, 1 / 3), (29, 27, 30, 2 / 3),
    (32, 31, 35, 1 / 4), (33, 31, 35, 1 / 2), (34, 31, 35, 3 / 4),
    (37, 36, 39, 1 / 3), (38, 36, 39, 2 / 3), (40, 39, 36, 1 / 3), (41, 39, 36, 2 / 3),
    (43, 42, 45, 1 / 3), (44, 42, 45, 2 / 3), (46, 45, 42, 1 / 3), (47, 45, 42, 2 / 3),
    (49, 48, 54, 1 / 6), (50, 48, 54, 2 / 6), (51, 48, 54, 3 / 6), (52, 48, 54, 4 / 6), (53, 48, 54, 5 / 6),
    (55, 54, 48, 1 / 6), (56, 54, 48, 2 / 6), (57, 54, 48, 3 / 6), (58, 54, 48, 4 / 6), (59, 54, 48, 5 / 6),
]  # fmt: skip


def test_even_spacing_slides_points_along_each_contour_and_keeps_their_offset_across_it():
    points = RNG.normal(0.0, 30.0, (68, 3))
    vertices, faces = grid()
    moved, notes = apply_markup_rules(points, ("even-spacing",), vertices, faces)
    for index, start, end, fraction in EVEN_SPACING:
        chord = points[end] - points[start]
        direction = chord / np.linalg.norm(chord)
        before, after = points[index] - points[start], moved[index] - points[start]
        assert after @ direction == pytest.approx(fraction * np.linalg.norm(chord)), index
        np.testing.assert_allclose(
            after - (after @ direction) * direction, before - (before @ direction) * direction, atol=1e-9
        )
    untouched = [i for i in range(68) if i not in [row[0] for row in EVEN_SPACING]]
    np.testing.assert_array_equal(moved[untouched], points[untouched])  # ends, jaw, brows, inner lips
    assert notes == ["nose bridge, nostril, eyelid and outer lip points spaced evenly between their ends"]


def test_a_contour_whose_ends_coincide_is_left_alone():
    points = RNG.normal(0.0, 30.0, (68, 3))
    points[30] = points[27]
    vertices, faces = grid()
    moved, _ = apply_markup_rules(points, ("even-spacing",), vertices, faces)
    np.testing.assert_array_equal(moved[[28, 29]], points[[28, 29]])
    assert np.isfinite(moved).all()


def test_the_input_is_not_modified_and_unknown_rules_are_refused():
    points = mouth(gap=6.0)
    before = points.copy()
    vertices, faces = grid()
    apply_markup_rules(points, MARKUP_RULES, vertices, faces)
    np.testing.assert_array_equal(points, before)
    with pytest.raises(ValueError, match="unknown markup rules"):
        apply_markup_rules(points, ("closed-eyes",), vertices, faces)


def test_the_landmarker_spaces_the_contours_evenly_after_the_offsets(tmp_path):
    """The landmarker with the even-spacing rule against EVEN_SPACING's hand-written fractions (not
    against apply_markup_rules), on the stand-in head of the landmarker tests."""
    from facegraph.mesh import ConventionOffsets, MeshLandmarker
    from tests.mesh.test_landmarker import head, tiny_weights

    landmarker = MeshLandmarker(tiny_weights(tmp_path / "tiny.safetensors"))
    mesh = head()
    offsets = ConventionOffsets(np.random.default_rng(5).normal(0.0, 4.0, (68, 3)), np.full(68, 4))
    plain = landmarker(mesh, refine="none", offsets=offsets).points
    ruled = landmarker(mesh, refine="none", offsets=replace(offsets, rules=("even-spacing",))).points
    for index, start, end, fraction in EVEN_SPACING:
        chord = plain[end] - plain[start]
        direction = chord / np.linalg.norm(chord)
        before = plain[index] - plain[start]
        across = before - (before @ direction) * direction  # the offset across the line is kept
        expected = plain[start] + fraction * chord + across
        np.testing.assert_allclose(ruled[index], expected, atol=1e-6, err_msg=str(index))
    untouched = [i for i in range(68) if i not in [row[0] for row in EVEN_SPACING]]
    np.testing.assert_allclose(ruled[untouched], plain[untouched], atol=1e-9)
