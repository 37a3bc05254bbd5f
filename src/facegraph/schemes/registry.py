"""Landmark schemes: their point counts, mirror orders, normalisation anchors and conversions.

Every index here is 0-based. "Right" and "left" in comments mean the subject's own side, so the
subject's right eye appears on the image's left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from facegraph.types import Landmarks

# A normalisation anchor is one point index, or a group of indices whose mean is the anchor point
# (iBUG 68 has no pupil points, so its pupils are the means of the eye rings).
Anchor = int | tuple[int, ...]

# A point map from a source scheme to a target scheme: for each target point, the source indices
# whose mean gives it; an empty group means the target point has no counterpart in the source.
PointMap = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Scheme:
    """A landmark scheme.

    flip_order[i] is the index of point i's mirror partner under a horizontal flip (itself for points
    on the midline). normalisation names pairs of anchors, e.g. ``{"outer_eye_corners": (36, 45)}``;
    an anchor given as a tuple of indices stands for the mean of those points.
    """

    name: str
    n_points: int
    flip_order: tuple[int, ...]
    normalisation: Mapping[str, tuple[Anchor, Anchor]] = field(hash=False)
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "normalisation", MappingProxyType(dict(self.normalisation)))
        if len(self.flip_order) != self.n_points:
            raise ValueError(
                f"{self.name}: flip order has {len(self.flip_order)} entries, not {self.n_points}"
            )
        if sorted(self.flip_order) != list(range(self.n_points)):
            raise ValueError(f"{self.name}: flip order is not a permutation of 0..{self.n_points - 1}")
        if any(self.flip_order[j] != i for i, j in enumerate(self.flip_order)):
            raise ValueError(f"{self.name}: flip order is not its own inverse")
        for kind, pair in self.normalisation.items():
            if len(pair) != 2 or any(not 0 <= i < self.n_points for a in pair for i in _indices(a)):
                raise ValueError(f"{self.name}: normalisation {kind!r} must be two anchors within the scheme")


def _indices(anchor: Anchor) -> tuple[int, ...]:
    return (anchor,) if isinstance(anchor, int) else tuple(anchor)


def _flip_order(n: int, pairs: Iterable[tuple[int, int]]) -> tuple[int, ...]:
    """The flip order of n points given the mirror pairs; points in no pair lie on the midline."""
    order = list(range(n))
    for a, b in pairs:
        if order[a] != a or order[b] != b:
            raise ValueError(f"point {a} or {b} is in two mirror pairs")
        order[a], order[b] = b, a
    return tuple(order)


_IBUG68_PAIRS = [
    *((i, 16 - i) for i in range(8)),  # jaw
    *((17 + i, 26 - i) for i in range(5)),  # eyebrows, outer to inner
    (31, 35), (32, 34),  # nostrils
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lip
    (60, 64), (61, 63), (65, 67),  # inner lip
]  # fmt: skip

_WFLW98_PAIRS = [
    *((i, 32 - i) for i in range(16)),  # contour
    *((33 + i, 46 - i) for i in range(5)),  # eyebrow upper edges, outer corner to inner corner
    *((38 + i, 50 - i) for i in range(4)),  # eyebrow lower edges
    (55, 59), (56, 58),  # nostrils
    *((60 + i, 72 - i) for i in range(5)),  # eye corners and upper lids
    *((65 + i, 75 - i) for i in range(3)),  # lower lids
    (76, 82), (77, 81), (78, 80), (83, 87), (84, 86),  # outer lip
    (88, 92), (89, 91), (93, 95),  # inner lip
    (96, 97),  # pupils
]  # fmt: skip

_AFLW21_PAIRS = [
    (0, 5), (1, 4), (2, 3),  # eyebrows: outer, centre, inner
    (6, 11), (7, 10), (8, 9),  # eyes: outer corner, centre, inner corner
    (12, 16), (13, 15),  # ear lobes, nose wings
    (17, 19),  # mouth corners
]  # fmt: skip

_IBUG68_FLIP = _flip_order(68, _IBUG68_PAIRS)

_SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            name="ibug68",
            n_points=68,
            flip_order=_IBUG68_FLIP,
            normalisation={
                "outer_eye_corners": (36, 45),
                "inner_eye_corners": (39, 42),
                "pupils": (tuple(range(36, 42)), tuple(range(42, 48))),
            },
            description="iBUG / 300-W 68 points: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, "
            "outer lip 48-59, inner lip 60-67.",
        ),
        Scheme(
            name="ibug51",
            n_points=51,
            flip_order=tuple(j - 17 for j in _IBUG68_FLIP[17:]),
            normalisation={
                "outer_eye_corners": (19, 28),
                "inner_eye_corners": (22, 25),
                "pupils": (tuple(range(19, 25)), tuple(range(25, 31))),
            },
            description="The 51 inner iBUG points (iBUG 68 indices 17-67, without the jaw line).",
        ),
        Scheme(
            name="wflw98",
            n_points=98,
            flip_order=_flip_order(98, _WFLW98_PAIRS),
            normalisation={
                "outer_eye_corners": (60, 72),
                "inner_eye_corners": (64, 68),
                "pupils": (96, 97),
            },
            description="WFLW 98 points: contour 0-32, brows 33-50, nose 51-59, eyes 60-75, "
            "mouth 76-95, pupils 96-97.",
        ),
        Scheme(
            name="aflw21",
            n_points=21,
            flip_order=_flip_order(21, _AFLW21_PAIRS),
            normalisation={
                "outer_eye_corners": (6, 11),
                "inner_eye_corners": (8, 9),
                "pupils": (7, 10),
            },
            description="AFLW 21 points (AFLW2000-3D pts21): brows 0-5, eyes 6-11, ear lobes 12/16, "
            "nose wings 13/15, nose tip 14, mouth corners 17/19, mouth centre 18, chin 20.",
        ),
        Scheme(
            name="five",
            n_points=5,
            flip_order=(1, 0, 2, 4, 3),
            normalisation={"pupils": (0, 1)},
            description="Five detector points (RetinaFace / MTCNN order): eye centres, nose tip, "
            "mouth corners, the point on the image's left first in each pair.",
        ),
    )
}


def list_schemes() -> list[str]:
    """Names of the registered schemes."""
    return list(_SCHEMES)


def get_scheme(name: str) -> Scheme:
    """The scheme called ``name``; KeyError naming the known schemes if there is none."""
    try:
        return _SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown landmark scheme {name!r}; known schemes: {', '.join(_SCHEMES)}") from None


def _resolve(scheme: str | Scheme) -> Scheme:
    return scheme if isinstance(scheme, Scheme) else get_scheme(scheme)


def _check_points(points: np.ndarray, scheme: Scheme) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or len(points) != scheme.n_points or points.shape[1] not in (2, 3):
        raise ValueError(f"{scheme.name} points must be ({scheme.n_points}, 2 or 3), got {points.shape}")
    return points


def normalisation_points(points: np.ndarray, scheme: str | Scheme, kind: str) -> np.ndarray:
    """The two anchor points (2, D) of normalisation ``kind``, anchors given as groups averaged."""
    s = _resolve(scheme)
    points = _check_points(points, s)
    if kind not in s.normalisation:
        raise ValueError(f"{s.name} has no {kind!r} normalisation; it has: {', '.join(s.normalisation)}")
    return np.stack([points[list(_indices(a))].mean(axis=0) for a in s.normalisation[kind]])


def eye_centres(points: np.ndarray, scheme: str | Scheme) -> np.ndarray:
    """The two eye centres (2, D), image-left eye first: the pupils, or the eye-ring means where the
    scheme has no pupil points."""
    return normalisation_points(points, scheme, "pupils")


def normalisation_distance(points: np.ndarray, scheme: str | Scheme, kind: str) -> float:
    """Distance between the two anchors of ``kind`` ("outer_eye_corners" gives the inter-ocular
    distance, "pupils" the inter-pupil distance) that NME divides by.

    Only x and y are used, even for (N, 3) points: NME is measured in the photo plane.
    """
    a, b = normalisation_points(points, scheme, kind)[:, :2]
    return float(np.linalg.norm(a - b))


def flip(landmarks: Landmarks, image_width: float) -> Landmarks:
    """Mirror landmarks for an image flipped left-right: x' = width - 1 - x (pixel-centre coordinates),
    points renumbered by the scheme's flip order so that e.g. the image-left eye stays first.

    Any z coordinate is kept as is.
    """
    s = get_scheme(landmarks.scheme)
    points = _check_points(landmarks.points, s)
    order = list(s.flip_order)
    mirrored = points[order].copy()
    mirrored[:, 0] = image_width - 1 - mirrored[:, 0]
    return Landmarks(
        points=mirrored,
        scheme=s.name,
        visible=landmarks.visible[order],
        confidence=None if landmarks.confidence is None else landmarks.confidence[order],
    )


def _singletons(indices: Iterable[int]) -> PointMap:
    return tuple((i,) for i in indices)


def _from_pairs(n_target: int, pairs: Iterable[tuple[int, int]]) -> PointMap:
    """A point map filling target points from (source, target) index pairs; the rest have none."""
    groups: list[tuple[int, ...]] = [()] * n_target
    for source, target in pairs:
        groups[target] = (source,)
    return tuple(groups)


def _compose(first: PointMap, second: PointMap) -> PointMap:
    """The map doing ``first`` then ``second``; ``first`` must take each point from at most one source
    point (a mean of means is not one point map). A target is missing if any point it needs is."""
    if any(len(g) > 1 for g in first):
        raise ValueError("the first map of a composition must be one-to-one")
    return tuple(() if any(not first[i] for i in g) else tuple(first[i][0] for i in g) for g in second)


# WFLW 98 -> iBUG 68: every other contour point, the brows' upper edges, the whole nose, the eye
# corners and the lid points either side of each lid's middle, the whole mouth.
_WFLW98_TO_IBUG68 = _singletons(
    [
        *range(0, 33, 2),
        33, 34, 35, 36, 37, 42, 43, 44, 45, 46,
        *range(51, 60),
        60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75,
        *range(76, 96),
    ]
)  # fmt: skip

# AFLW 21 -> iBUG 68 where both mark the same anatomical point. Left out: the eye centres 7/10 (no
# iBUG point; the eye-ring mean is not the same point), the ear lobes 12/16 and the mouth centre 18
# (no iBUG counterpart), and the nose wings 13/15: they are the alar points on the side of the nose,
# whereas iBUG 31/35 sit on the bottom edge of the nostrils, a few millimetres lower and inward.
AFLW21_IBUG68_PAIRS: tuple[tuple[int, int], ...] = (
    (0, 17), (1, 19), (2, 21), (3, 22), (4, 24), (5, 26),  # eyebrows
    (6, 36), (8, 39), (9, 42), (11, 45),  # eye corners
    (14, 30),  # nose tip
    (17, 48), (19, 54),  # mouth corners
    (20, 8),  # chin
)  # fmt: skip

_IBUG68_TO_AFLW21 = _from_pairs(21, ((i, a) for a, i in AFLW21_IBUG68_PAIRS))

_CONVERSIONS: dict[tuple[str, str], PointMap] = {
    ("wflw98", "ibug68"): _WFLW98_TO_IBUG68,
    ("ibug68", "ibug51"): _singletons(range(17, 68)),
    ("ibug68", "five"): (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,)),
    ("wflw98", "five"): _singletons([96, 97, 54, 76, 82]),
    ("aflw21", "five"): _singletons([7, 10, 14, 17, 19]),
    ("ibug68", "aflw21"): _IBUG68_TO_AFLW21,
    ("aflw21", "ibug68"): _from_pairs(68, AFLW21_IBUG68_PAIRS),
}
_CONVERSIONS[("wflw98", "ibug51")] = _compose(_WFLW98_TO_IBUG68, _CONVERSIONS[("ibug68", "ibug51")])
_CONVERSIONS[("wflw98", "aflw21")] = _compose(_WFLW98_TO_IBUG68, _IBUG68_TO_AFLW21)


def list_conversions() -> list[tuple[str, str]]:
    """The (source, target) scheme pairs that ``convert`` supports, besides a scheme to itself."""
    return list(_CONVERSIONS)


def _point_map(source: str, target: str) -> PointMap:
    n_source = get_scheme(source).n_points
    get_scheme(target)
    if source == target:
        return _singletons(range(n_source))
    try:
        return _CONVERSIONS[(source, target)]
    except KeyError:
        supported = ", ".join(f"{a}->{b}" for a, b in _CONVERSIONS)
        raise ValueError(f"no conversion from {source} to {target}; supported: {supported}") from None


def convert(landmarks: Landmarks, target: str) -> Landmarks:
    """Landmarks re-expressed in the ``target`` scheme.

    A target point derived from several source points (an eye centre from an eye ring) is their mean,
    visible only if all of them are, with their lowest confidence. Target points with no source
    counterpart are NaN, not visible, with confidence 0.
    """
    source = get_scheme(landmarks.scheme)
    points = _check_points(landmarks.points, source)
    groups = _point_map(source.name, target)
    out = np.full((len(groups), points.shape[1]), np.nan)
    visible = np.zeros(len(groups), dtype=bool)
    confidence = None if landmarks.confidence is None else np.zeros(len(groups))
    for t, group in enumerate(groups):
        if not group:
            continue
        idx = list(group)
        out[t] = points[idx].mean(axis=0)
        visible[t] = landmarks.visible[idx].all()
        if confidence is not None:
            confidence[t] = landmarks.confidence[idx].min()
    return Landmarks(points=out, scheme=target, visible=visible, confidence=confidence)


def correspondence(a: str, b: str) -> list[tuple[int, int]]:
    """(index in ``a``, index in ``b``) pairs of points that are the same anatomical point in both
    schemes, sorted by the index in ``a``. Derived points (e.g. eye centres from eye rings) are not
    included: only one-to-one matches, as a projected-landmark loss needs.
    """
    if a != b and (a, b) not in _CONVERSIONS and (b, a) in _CONVERSIONS:
        return sorted((t, g[0]) for t, g in enumerate(_point_map(b, a)) if len(g) == 1)
    return sorted((g[0], t) for t, g in enumerate(_point_map(a, b)) if len(g) == 1)
