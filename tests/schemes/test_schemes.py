"""Landmark schemes: flip orders, conversions, correspondences and normalisation distances."""

from __future__ import annotations

import numpy as np
import pytest

from facegraph.schemes import (
    AFLW21_IBUG68_PAIRS,
    Scheme,
    convert,
    correspondence,
    eye_centres,
    flip,
    get_scheme,
    list_conversions,
    list_schemes,
    normalisation_distance,
)
from facegraph.types import Landmarks

SIZES = {"ibug68": 68, "ibug51": 51, "wflw98": 98, "aflw21": 21, "five": 5}


def random_landmarks(scheme: str, dim: int = 2, seed: int = 0) -> Landmarks:
    rng = np.random.default_rng(seed)
    n = SIZES[scheme]
    return Landmarks(
        points=rng.uniform(0, 200, size=(n, dim)),
        scheme=scheme,
        visible=rng.random(n) > 0.2,
        confidence=rng.random(n),
    )


def pairs_to_order(n: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    order = list(range(n))
    for a, b in pairs:
        order[a], order[b] = b, a
    return tuple(order)


def test_registry_lists_every_scheme_with_its_size() -> None:
    assert set(list_schemes()) == set(SIZES)
    for name, n in SIZES.items():
        scheme = get_scheme(name)
        assert scheme.name == name
        assert scheme.n_points == n
        assert scheme.description


def test_unknown_scheme_error_lists_the_known_names() -> None:
    with pytest.raises(KeyError) as info:
        get_scheme("ibug69")
    message = str(info.value)
    assert "ibug69" in message
    assert all(name in message for name in SIZES)


@pytest.mark.parametrize("name", list(SIZES))
def test_flip_order_is_an_involution(name: str) -> None:
    order = get_scheme(name).flip_order
    assert sorted(order) == list(range(SIZES[name]))
    assert all(order[order[i]] == i for i in range(len(order)))


def test_scheme_rejects_a_flip_order_that_is_not_its_own_inverse() -> None:
    with pytest.raises(ValueError, match="inverse"):
        Scheme("bad", 3, (1, 2, 0), {})
    with pytest.raises(ValueError, match="within"):
        Scheme("bad", 2, (1, 0), {"pupils": (0, 2)})


def test_scheme_is_immutable() -> None:
    scheme = get_scheme("ibug68")
    with pytest.raises(AttributeError):
        scheme.n_points = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        scheme.normalisation["pupils"] = (0, 1)  # type: ignore[index]


def test_ibug68_flip_order_is_the_standard_one() -> None:
    pairs = [(i, 16 - i) for i in range(8)] + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    pairs += [(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    order = get_scheme("ibug68").flip_order
    assert order == pairs_to_order(68, pairs)
    assert [i for i in range(68) if order[i] == i] == [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]


def test_wflw98_flip_order() -> None:
    pairs = [(i, 32 - i) for i in range(16)]
    pairs += [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]
    pairs += [(55, 59), (56, 58)]
    pairs += [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
    pairs += [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95), (96, 97)]
    order = get_scheme("wflw98").flip_order
    assert order == pairs_to_order(98, pairs)
    assert [i for i in range(98) if order[i] == i] == [16, 51, 52, 53, 54, 57, 79, 85, 90, 94]


def test_aflw21_and_five_flip_orders() -> None:
    aflw = get_scheme("aflw21").flip_order
    assert aflw == (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20)
    assert get_scheme("five").flip_order == (1, 0, 2, 4, 3)


def test_ibug51_is_the_inner_part_of_ibug68() -> None:
    inner = get_scheme("ibug68").flip_order[17:]
    assert get_scheme("ibug51").flip_order == tuple(j - 17 for j in inner)


def test_flip_mirrors_x_and_renumbers() -> None:
    points = np.zeros((68, 3))
    points[36] = (10.0, 20.0, 5.0)  # outer corner of the image-left eye
    lm = Landmarks(points, "ibug68", visible=np.arange(68) != 36, confidence=np.linspace(0, 1, 68))
    flipped = flip(lm, image_width=100)
    # it becomes the outer corner of the image-right eye, at x = 100 - 1 - 10; y and z stay
    np.testing.assert_array_equal(flipped.points[45], [89.0, 20.0, 5.0])
    assert not flipped.visible[45] and flipped.visible[36]
    assert flipped.confidence[45] == pytest.approx(36 / 67)
    assert flipped.scheme == "ibug68"


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("dim", [2, 3])
def test_flip_twice_is_the_identity(name: str, dim: int) -> None:
    lm = random_landmarks(name, dim)
    back = flip(flip(lm, 321.0), 321.0)
    np.testing.assert_allclose(back.points, lm.points)
    np.testing.assert_array_equal(back.visible, lm.visible)
    np.testing.assert_array_equal(back.confidence, lm.confidence)


def test_flip_keeps_a_missing_confidence_missing() -> None:
    lm = Landmarks(np.ones((5, 2)), "five")
    assert flip(lm, 10).confidence is None


def assert_same(a: Landmarks, b: Landmarks) -> None:
    assert a.scheme == b.scheme
    np.testing.assert_allclose(a.points, b.points)  # NaN in the same places counts as equal
    np.testing.assert_array_equal(a.visible, b.visible)
    np.testing.assert_allclose(a.confidence, b.confidence)


@pytest.mark.parametrize(("source", "target"), list_conversions())
def test_conversion_commutes_with_flip(source: str, target: str) -> None:
    """Cross-checks both schemes' flip orders against the index map between them."""
    lm = random_landmarks(source, dim=3)
    assert_same(convert(flip(lm, 256.0), target), flip(convert(lm, target), 256.0))


@pytest.mark.parametrize(("source", "target"), list_conversions())
def test_correspondence_commutes_with_flip(source: str, target: str) -> None:
    flip_a, flip_b = get_scheme(source).flip_order, get_scheme(target).flip_order
    pairs = correspondence(source, target)
    assert pairs
    assert {(flip_a[i], flip_b[j]) for i, j in pairs} == set(pairs)


def test_wflw98_to_ibug68_map() -> None:
    points = np.arange(98, dtype=float)[:, None].repeat(2, axis=1)
    out = convert(Landmarks(points, "wflw98"), "ibug68")
    expected = [*range(0, 33, 2), 33, 34, 35, 36, 37, 42, 43, 44, 45, 46, *range(51, 60)]
    expected += [60, 61, 63, 64, 65, 67, 68, 69, 71, 72, 73, 75, *range(76, 96)]
    assert len(expected) == 68
    np.testing.assert_array_equal(out.points[:, 0], expected)
    assert out.visible.all()
    assert out.confidence is None
    # anatomical spot checks: chin, eye corners, nose tip, mouth corners
    assert [out.points[i, 0] for i in (8, 36, 39, 42, 45, 30, 48, 54)] == [16, 60, 64, 68, 72, 54, 76, 82]


def test_ibug68_to_ibug51_is_the_slice() -> None:
    lm = random_landmarks("ibug68", dim=3)
    out = convert(lm, "ibug51")
    np.testing.assert_array_equal(out.points, lm.points[17:])
    np.testing.assert_array_equal(out.visible, lm.visible[17:])
    np.testing.assert_array_equal(out.confidence, lm.confidence[17:])
    wflw = random_landmarks("wflw98")
    assert_same(convert(convert(wflw, "ibug68"), "ibug51"), convert(wflw, "ibug51"))


def test_ibug68_to_five_by_hand() -> None:
    points = np.zeros((68, 2))
    points[36:42] = [[0, 0], [2, -1], [4, -1], [6, 0], [4, 1], [2, 1]]  # mean (3, 0)
    points[42:48] = [[10, 0], [12, -1], [14, -1], [16, 0], [14, 1], [12, 1]]  # mean (13, 0)
    points[30] = (8, 6)
    points[48] = (4, 10)
    points[54] = (12, 10)
    visible = np.ones(68, dtype=bool)
    visible[44] = False
    confidence = np.full(68, 0.9)
    confidence[40] = 0.3
    out = convert(Landmarks(points, "ibug68", visible, confidence), "five")
    np.testing.assert_allclose(out.points, [[3, 0], [13, 0], [8, 6], [4, 10], [12, 10]])
    # an eye centre is visible only if its whole ring is, and as confident as its least sure point
    np.testing.assert_array_equal(out.visible, [True, False, True, True, True])
    np.testing.assert_allclose(out.confidence, [0.3, 0.9, 0.9, 0.9, 0.9])


def test_wflw98_to_five_directly_and_through_ibug68_agree() -> None:
    lm = random_landmarks("wflw98")
    direct = convert(lm, "five")
    np.testing.assert_array_equal(direct.points, lm.points[[96, 97, 54, 76, 82]])
    via68 = convert(convert(lm, "ibug68"), "five")
    # nose tip and mouth corners are the same points either way
    np.testing.assert_array_equal(direct.points[2:], via68.points[2:])
    # the eye centres agree once the pupils sit at the mean of the ring points iBUG keeps
    points = lm.points.copy()
    points[96] = points[[60, 61, 63, 64, 65, 67]].mean(axis=0)
    points[97] = points[[68, 69, 71, 72, 73, 75]].mean(axis=0)
    fixed = Landmarks(points, "wflw98")
    np.testing.assert_allclose(
        convert(fixed, "five").points, convert(convert(fixed, "ibug68"), "five").points
    )
    np.testing.assert_allclose(
        eye_centres(points, "wflw98"), eye_centres(convert(fixed, "ibug68").points, "ibug68")
    )


def test_aflw21_ibug68_correspondence() -> None:
    pairs = correspondence("aflw21", "ibug68")
    assert pairs == sorted(AFLW21_IBUG68_PAIRS)
    assert dict(pairs) == {
        0: 17, 1: 19, 2: 21, 3: 22, 4: 24, 5: 26,
        6: 36, 8: 39, 9: 42, 11: 45,
        14: 30, 17: 48, 19: 54, 20: 8,
    }  # fmt: skip
    assert correspondence("ibug68", "aflw21") == sorted((j, i) for i, j in pairs)


def test_ibug68_to_aflw21_fills_only_corresponding_points() -> None:
    lm = random_landmarks("ibug68", dim=3)
    out = convert(lm, "aflw21")
    have = [a for a, _ in AFLW21_IBUG68_PAIRS]
    missing = sorted(set(range(21)) - set(have))
    assert missing == [7, 10, 12, 13, 15, 16, 18]
    assert np.isnan(out.points[missing]).all()
    assert not out.visible[missing].any()
    assert (out.confidence[missing] == 0).all()
    for a, i in AFLW21_IBUG68_PAIRS:
        np.testing.assert_array_equal(out.points[a], lm.points[i])
        assert out.visible[a] == lm.visible[i]


def test_aflw21_ibug68_round_trip() -> None:
    lm = random_landmarks("aflw21")
    to68 = convert(lm, "ibug68")
    assert to68.visible.sum() == (lm.visible[[a for a, _ in AFLW21_IBUG68_PAIRS]]).sum()
    assert np.isnan(to68.points).any(axis=1).sum() == 68 - len(AFLW21_IBUG68_PAIRS)
    back = convert(to68, "aflw21")
    kept = [a for a, _ in AFLW21_IBUG68_PAIRS]
    np.testing.assert_array_equal(back.points[kept], lm.points[kept])
    np.testing.assert_array_equal(back.visible[kept], lm.visible[kept])
    # wflw98 -> aflw21 goes through the same correspondence
    w = random_landmarks("wflw98")
    assert_same(convert(w, "aflw21"), convert(convert(w, "ibug68"), "aflw21"))


def test_aflw21_to_five() -> None:
    lm = random_landmarks("aflw21")
    np.testing.assert_array_equal(convert(lm, "five").points, lm.points[[7, 10, 14, 17, 19]])


def test_convert_to_the_same_scheme_copies() -> None:
    lm = random_landmarks("five")
    out = convert(lm, "five")
    assert_same(out, lm)
    out.points[0, 0] = -1
    assert lm.points[0, 0] != -1


def test_convert_errors() -> None:
    with pytest.raises(KeyError, match="known schemes"):
        convert(random_landmarks("ibug68"), "nope")
    with pytest.raises(KeyError, match="known schemes"):
        convert(Landmarks(np.zeros((4, 2)), "nope"), "five")
    with pytest.raises(ValueError, match="no conversion from five to ibug68"):
        convert(random_landmarks("five"), "ibug68")
    with pytest.raises(ValueError, match="no conversion"):
        correspondence("five", "ibug51")
    with pytest.raises(ValueError, match=r"\(68, 2 or 3\)"):
        convert(Landmarks(np.zeros((98, 2)), "ibug68"), "five")


def test_normalisation_distances_ibug68_by_hand() -> None:
    points = np.zeros((68, 3))
    points[:, 2] = np.arange(68)  # depth must not count
    ring = np.array([[-3, 0], [-1, -1], [1, -1], [3, 0], [1, 1], [-1, 1]], dtype=float)  # mean (0, 0)
    points[36:42, :2] = ring + (10, 20)
    points[42:48, :2] = ring + (40, 60)
    # outer corners (7, 20) and (43, 60); inner corners (13, 20) and (37, 60)
    assert normalisation_distance(points, "ibug68", "outer_eye_corners") == pytest.approx(np.hypot(36, 40))
    assert normalisation_distance(points, "ibug68", "inner_eye_corners") == pytest.approx(np.hypot(24, 40))
    assert normalisation_distance(points, "ibug68", "pupils") == pytest.approx(50.0)
    assert normalisation_distance(points[:, :2], "ibug68", "pupils") == pytest.approx(50.0)
    np.testing.assert_allclose(eye_centres(points, "ibug68")[:, :2], [[10, 20], [40, 60]])


def test_normalisation_distance_simple_example() -> None:
    points = np.zeros((68, 2))
    points[36] = (10, 20)
    points[45] = (40, 60)
    assert normalisation_distance(points, "ibug68", "outer_eye_corners") == pytest.approx(50.0)


def test_normalisation_distances_agree_across_conversions() -> None:
    lm = random_landmarks("ibug68", dim=3)
    for kind in ("outer_eye_corners", "inner_eye_corners", "pupils"):
        d68 = normalisation_distance(lm.points, "ibug68", kind)
        assert normalisation_distance(convert(lm, "ibug51").points, "ibug51", kind) == pytest.approx(d68)
    five = convert(lm, "five").points
    assert normalisation_distance(five, "five", "pupils") == pytest.approx(
        normalisation_distance(lm.points, "ibug68", "pupils")
    )
    aflw = convert(lm, "aflw21").points
    assert normalisation_distance(aflw, "aflw21", "outer_eye_corners") == pytest.approx(
        normalisation_distance(lm.points, "ibug68", "outer_eye_corners")
    )
    w = random_landmarks("wflw98").points
    w68 = convert(Landmarks(w, "wflw98"), "ibug68").points
    assert normalisation_distance(w, "wflw98", "outer_eye_corners") == pytest.approx(
        normalisation_distance(w68, "ibug68", "outer_eye_corners")
    )
    assert normalisation_distance(w, "wflw98", "pupils") == pytest.approx(
        float(np.linalg.norm(w[96] - w[97]))
    )


def test_normalisation_pairs() -> None:
    assert get_scheme("ibug68").normalisation["outer_eye_corners"] == (36, 45)
    assert get_scheme("ibug68").normalisation["inner_eye_corners"] == (39, 42)
    assert get_scheme("ibug68").normalisation["pupils"] == (tuple(range(36, 42)), tuple(range(42, 48)))
    assert get_scheme("wflw98").normalisation["outer_eye_corners"] == (60, 72)
    assert get_scheme("wflw98").normalisation["pupils"] == (96, 97)
    assert get_scheme("aflw21").normalisation["outer_eye_corners"] == (6, 11)
    assert get_scheme("aflw21").normalisation["pupils"] == (7, 10)
    assert get_scheme("five").normalisation["pupils"] == (0, 1)


def test_normalisation_distance_errors() -> None:
    with pytest.raises(ValueError, match="no 'outer_eye_corners'"):
        normalisation_distance(np.zeros((5, 2)), "five", "outer_eye_corners")
    with pytest.raises(ValueError, match="no 'ears'"):
        normalisation_distance(np.zeros((68, 2)), "ibug68", "ears")
    with pytest.raises(ValueError, match=r"\(68, 2 or 3\)"):
        normalisation_distance(np.zeros((67, 2)), "ibug68", "pupils")
    with pytest.raises(KeyError):
        normalisation_distance(np.zeros((68, 2)), "68", "pupils")
