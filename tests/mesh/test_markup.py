"""The 68-point markup's rules: inner lips on the lip line when the lips meet, contours evenly spaced."""

from __future__ import annotations

import numpy as np
import pytest

from facegraph.mesh.markup import (
    EVEN_CONTOURS,
    INNER_LIP_PAIRS,
    MARKUP_RULES,
    apply_markup_rules,
    lips_touch,
)

RNG = np.random.default_rng(11)


def grid(slot: bool) -> tuple[np.ndarray, np.ndarray]:
    """A flat 1 mm grid over [-40, 40] mm in the z = 0 plane; ``slot`` cuts a mouth opening out of it,
    |x| < 20, |y| < 4 mm."""
    xs = np.arange(-40.0, 41.0)
    x, y = np.meshgrid(xs, xs)
    vertices = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    n = len(xs)
    corners = np.array(
        [[i * n + j, i * n + j + 1, (i + 1) * n + j] for i in range(n - 1) for j in range(n - 1)]
    )
    opposite = np.array(
        [[i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j] for i in range(n - 1) for j in range(n - 1)]
    )
    faces = np.concatenate([corners, opposite])
    if slot:
        centres = vertices[faces].mean(axis=1)
        faces = faces[~((np.abs(centres[:, 0]) < 20) & (np.abs(centres[:, 1]) < 4))]
    return vertices, faces


def mouth(gap: float) -> np.ndarray:
    """68 points in the z = 0 plane whose inner lips are ``gap`` mm apart, with inner corners (-18, 0)
    and (18, 0); the other points are random."""
    points = np.concatenate([RNG.uniform(-30, 30, (68, 2)), np.zeros((68, 1))], axis=1)
    points[60], points[64] = [-18.0, 0.0, 0.0], [18.0, 0.0, 0.0]
    for (upper, lower), x in zip(INNER_LIP_PAIRS, (-9.0, 0.0, 9.0), strict=True):
        points[upper], points[lower] = [x + 1.0, gap / 2, 0.0], [x - 1.0, -gap / 2, 0.0]
    return points


def test_inner_lips_meet_on_the_line_between_the_inner_corners_when_the_lips_touch():
    vertices, faces = grid(slot=False)
    points = mouth(gap=6.0)
    assert lips_touch(points, vertices, faces)
    moved, notes = apply_markup_rules(points, ("closed-mouth",), vertices, faces)
    for (upper, lower), x in zip(INNER_LIP_PAIRS, (-9.0, 0.0, 9.0), strict=True):
        np.testing.assert_allclose(moved[upper], [x, 0.0, 0.0])
        np.testing.assert_allclose(moved[lower], [x, 0.0, 0.0])
    others = [i for i in range(68) if i not in np.ravel(INNER_LIP_PAIRS)]
    np.testing.assert_array_equal(moved[others], points[others])
    assert notes == ["the lips meet: inner lip points put on the line between the inner mouth corners"]


def test_an_open_mouth_keeps_its_inner_lips():
    vertices, faces = grid(slot=True)  # the points halfway between the lips lie in the opening
    points = mouth(gap=6.0)
    assert not lips_touch(points, vertices, faces)
    moved, notes = apply_markup_rules(points, ("closed-mouth",), vertices, faces)
    np.testing.assert_array_equal(moved, points)
    assert notes == []


def test_a_point_cloud_is_read_by_its_nearest_points():
    vertices, faces = grid(slot=True)
    kept = np.unique(faces)
    assert not lips_touch(mouth(6.0), vertices[kept], None)
    assert lips_touch(mouth(6.0), grid(slot=False)[0], None)


def test_even_spacing_slides_points_along_each_contour_and_keeps_their_offset_across_it():
    points = RNG.normal(0.0, 30.0, (68, 3))
    vertices, faces = grid(slot=False)
    moved, notes = apply_markup_rules(points, ("even-spacing",), vertices, faces)
    touched = set()
    for first, between, last in EVEN_CONTOURS:
        chord = points[last] - points[first]
        direction = chord / np.linalg.norm(chord)
        for i, index in enumerate(between, start=1):
            before, after = points[index] - points[first], moved[index] - points[first]
            assert after @ direction == pytest.approx(np.linalg.norm(chord) * i / (len(between) + 1))
            np.testing.assert_allclose(
                after - (after @ direction) * direction, before - (before @ direction) * direction, atol=1e-9
            )
            touched.add(index)
    untouched = [i for i in range(68) if i not in touched]
    np.testing.assert_array_equal(moved[untouched], points[untouched])  # ends, jaw, brows, inner lips
    assert {28, 29, 33, 37, 47, 51, 57} <= touched and not touched & {17, 19, 21, 22, 61, 66}
    assert len(notes) == 1 and "evenly" in notes[0]


def test_the_input_is_not_modified_and_unknown_rules_are_refused():
    points = mouth(gap=6.0)
    before = points.copy()
    vertices, faces = grid(slot=False)
    apply_markup_rules(points, MARKUP_RULES, vertices, faces)
    np.testing.assert_array_equal(points, before)
    with pytest.raises(ValueError, match="unknown markup rules"):
        apply_markup_rules(points, ("closed-eyes",), vertices, faces)
