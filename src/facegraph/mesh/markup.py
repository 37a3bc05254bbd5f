"""Rules of the 68-point iBUG markup that a constant per-landmark offset cannot express.

The annotators of the 68-point markup (Multi-PIE, 300-W, menpo) follow rules that the Basel Face
Model's landmark vertices, and so the network, follow only on average:

- ``closed-mouth``: when the lips meet, the upper inner lip points (61-63) and the lower ones (67-65)
  coincide where the lips meet. The rule puts each pair at the surface point closest to a quarter, a
  half and three quarters of the way from the inner mouth corner 60 to 64 (the straight line between the
  corners runs inside the lips). On a closed mouth the network puts them on the lips' faces, millimetres
  apart on the Surrey Face Model. Whether the lips meet is read from the scan: the point halfway between
  each upper and lower inner lip estimate must lie within ``LIPS_TOUCH_MM`` of the surface, which on an
  open mouth it does only while the lips are less than about twice that apart. A point cloud has no
  surface to tell by, and keeps its inner lips.
- ``even-spacing``: the points between the two ends of a contour are spaced evenly along the line
  joining the ends, whatever the face's proportions: the nose bridge (28, 29 from 27 to 30), the
  nostrils (32-34 from 31 to 35), each eyelid (37, 38 from corner 36 to 39, and so on) and each outer
  lip (49-53 and 55-59 between the mouth corners). Only the position along that line changes; how far a
  point lies off it (an eyelid's curve, the cupid's bow) stays as estimated. SPIGA's 3D mean face, an
  average of human annotations, is spaced nearly evenly on each of these contours. The brows, evenly
  spaced in the markup too, are left out: on the calibration scans moving them did worse.

Both run after a convention's offsets have moved the end points, before the refinement.
"""

from __future__ import annotations

import numpy as np

from facegraph.mesh.refine import closest_surface_points

MARKUP_RULES = ("closed-mouth", "even-spacing")
LIPS_TOUCH_MM = 2.0  # chosen on Surrey Face Model scans with expressions; nearby values did as well
# (upper, lower) inner lip pairs from the subject's right to left; the pairs meet on a closed mouth
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
INNER_MOUTH_CORNERS = (60, 64)  # the subject's right, left
EVEN_CONTOURS = (  # (first end, the points between in order, last end)
    (27, (28, 29), 30),
    (31, (32, 33, 34), 35),
    (36, (37, 38), 39),
    (39, (40, 41), 36),
    (42, (43, 44), 45),
    (45, (46, 47), 42),
    (48, (49, 50, 51, 52, 53), 54),
    (54, (55, 56, 57, 58, 59), 48),
)


def validate_rules(rules: tuple[str, ...]) -> None:
    """Raise ValueError naming any rule that is not one of ``MARKUP_RULES``."""
    unknown = sorted(set(rules) - set(MARKUP_RULES))
    if unknown:
        raise ValueError(f"unknown markup rules {unknown}: expected some of {', '.join(MARKUP_RULES)}")


def _spread(start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced strictly between ``start`` and ``end``."""
    fractions = np.arange(1, n + 1)[:, None] / (n + 1)
    return start + fractions * (end - start)


def _close_mouth(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray | None) -> str | None:
    """Put the inner lip pairs on the surface between the inner corners (in place) if the lips meet;
    the note to give, if any."""
    halfway = np.array([(points[upper] + points[lower]) / 2 for upper, lower in INNER_LIP_PAIRS])
    right, left = INNER_MOUTH_CORNERS
    line = _spread(points[right], points[left], len(INNER_LIP_PAIRS))
    closest = (
        None if faces is None else closest_surface_points(vertices, faces, np.concatenate([halfway, line]))
    )
    if closest is None:
        return "a point cloud cannot show whether the lips meet: inner lips left as estimated"
    if not np.linalg.norm(closest[: len(halfway)] - halfway, axis=1).max() < LIPS_TOUCH_MM:
        return None
    for (upper, lower), point in zip(INNER_LIP_PAIRS, closest[len(halfway) :], strict=True):
        points[upper] = points[lower] = point
    return "the lips meet: inner lip points put where they meet, between the inner corners"


def _space_evenly(points: np.ndarray, first: int, between: tuple[int, ...], last: int) -> None:
    """Slide the ``between`` points along the line from ``first`` to ``last`` (in place) until they are
    evenly spaced along it, keeping each one's offset across the line."""
    chord = points[last] - points[first]
    length = float(np.linalg.norm(chord))
    if length == 0.0:
        return
    direction = chord / length
    for i, index in enumerate(between, start=1):
        along = (points[index] - points[first]) @ direction
        points[index] += (length * i / (len(between) + 1) - along) * direction


def apply_markup_rules(
    points: np.ndarray, rules: tuple[str, ...], vertices: np.ndarray, faces: np.ndarray | None
) -> tuple[np.ndarray, list[str]]:
    """The 68 points (mm, as the vertices) with the named rules applied, and a note on each rule's
    outcome; ``faces`` None is a point cloud."""
    validate_rules(rules)
    moved = np.array(points, dtype=np.float64)
    notes: list[str] = []
    if "closed-mouth" in rules:
        note = _close_mouth(moved, vertices, faces)
        if note:
            notes.append(note)
    if "even-spacing" in rules:
        for first, between, last in EVEN_CONTOURS:
            _space_evenly(moved, first, between, last)
        notes.append("nose bridge, nostril, eyelid and outer lip points spaced evenly between their ends")
    return moved, notes
