"""3D scan collections: FaceScape TU, Headspace and generic folders, loading, and subject splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegraph.datasets.scans import (
    ScanRecord,
    facescape_records,
    folder_records,
    headspace_records,
    load_scan,
    read_vertex_indices,
    split_by_subject,
)
from facegraph.errors import InputError
from facegraph.io.landmarks import write_landmarks
from facegraph.io.meshes import write_mesh
from facegraph.types import Landmarks, Mesh
from tests.conftest import shared


def grid_mesh(n: int = 10, offset: float = 0.0) -> Mesh:
    """An n x n vertex grid in the z = offset plane, two triangles per cell."""
    x, y = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64))
    vertices = np.stack([x.ravel(), y.ravel(), np.full(n * n, offset)], axis=1)
    cells = np.array([(r * n + c) for r in range(n - 1) for c in range(n - 1)])
    faces = np.concatenate(
        [np.stack([cells, cells + 1, cells + n], 1), np.stack([cells + 1, cells + n + 1, cells + n], 1)]
    )
    return Mesh(vertices, faces)


def write_scan(
    path: Path, landmark_suffix: str | None = None, seed: int = 0, n_points: int = 68
) -> np.ndarray:
    """A grid mesh at ``path`` and, optionally, random 3D landmarks of the same stem; returns them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mesh(path, grid_mesh(offset=seed))
    points = np.random.default_rng(seed).uniform(-50, 50, (n_points, 3))
    if landmark_suffix is not None:
        scheme = "ibug68" if n_points == 68 else "custom"
        write_landmarks(path.with_suffix(landmark_suffix), Landmarks(points, scheme=scheme))
    return points


INDICES = np.arange(68, dtype=np.int64) + 10


def write_facescape(root: Path, indices: np.ndarray = INDICES) -> None:
    """Two subjects of flat layout and one as released (models_reg/), plus landmark_indices.npz."""
    for subject, name in [
        ("122", "1_neutral"),
        ("122", "2_smile"),
        ("7", "3_mouth_stretch"),
        ("7", "1_neutral"),
    ]:
        write_scan(root / subject / f"{name}.obj")
    write_scan(root / "20" / "models_reg" / "1_neutral.obj")
    (root / "20" / "models_reg" / "1_neutral.jpg").write_bytes(b"")
    (root / "notes").mkdir()
    np.savez(root / "landmark_indices.npz", v10=indices, v16=indices + 1)


# --- FaceScape ---------------------------------------------------------------------------------------


def test_facescape_lists_tu_models_by_subject_number_with_shared_indices(tmp_path: Path) -> None:
    write_facescape(tmp_path)
    records = facescape_records(tmp_path)
    names = [(r.subject, r.mesh_path.name) for r in records]
    assert names == [
        ("7", "1_neutral.obj"),
        ("7", "3_mouth_stretch.obj"),
        ("20", "1_neutral.obj"),
        ("122", "1_neutral.obj"),
        ("122", "2_smile.obj"),
    ]
    assert records[2].mesh_path == tmp_path / "20" / "models_reg" / "1_neutral.obj"
    for record in records:
        assert record.landmarks is None
        np.testing.assert_array_equal(record.vertex_indices, INDICES)
    mesh, landmarks = load_scan(records[0])
    assert landmarks.shape == (68, 3) and landmarks.dtype == np.float64
    np.testing.assert_allclose(landmarks, mesh.vertices[INDICES])


@pytest.mark.parametrize("form", ["npz_only_key", "txt", "csv", "array"])
def test_facescape_corrected_indices_override_the_default(tmp_path: Path, form: str) -> None:
    write_facescape(tmp_path)
    corrected = INDICES[::-1] + 5
    source: Path | np.ndarray
    if form == "npz_only_key":
        source = tmp_path / "fixed.npz"
        np.savez(source, jaw_fixed=corrected)
    elif form == "txt":
        source = tmp_path / "fixed.txt"
        source.write_text("\n".join(str(i) for i in corrected) + "\n")
    elif form == "csv":
        source = tmp_path / "fixed.csv"
        source.write_text(",".join(str(i) for i in corrected))
    else:
        source = corrected
    records = facescape_records(tmp_path, indices=source)
    np.testing.assert_array_equal(records[0].vertex_indices, corrected)
    mesh, landmarks = load_scan(records[0])
    np.testing.assert_allclose(landmarks, mesh.vertices[corrected])


def test_facescape_without_index_file_names_it(tmp_path: Path) -> None:
    write_scan(tmp_path / "1" / "1_neutral.obj")
    with pytest.raises(InputError) as caught:
        facescape_records(tmp_path)
    assert caught.value.path == tmp_path / "landmark_indices.npz"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("short.txt", "1 2 3"),
        ("negative.txt", " ".join(["-1"] + ["2"] * 67)),
        ("words.csv", "a,b,c"),
    ],
)
def test_bad_index_files_raise_naming_the_file(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        read_vertex_indices(path)
    assert caught.value.path == path


def test_index_archives_need_v10_or_a_single_integer_array(tmp_path: Path) -> None:
    two = tmp_path / "two.npz"
    np.savez(two, a=INDICES, b=INDICES)
    floats = tmp_path / "floats.npz"
    np.savez(floats, v10=INDICES.astype(np.float64))
    for path in (two, floats):
        with pytest.raises(InputError) as caught:
            read_vertex_indices(path)
        assert caught.value.path == path
    with pytest.raises(InputError, match="68"):
        read_vertex_indices(np.arange(67))


def test_out_of_range_vertex_index_raises_naming_the_mesh(tmp_path: Path) -> None:
    mesh_path = tmp_path / "1" / "1_neutral.obj"
    write_scan(mesh_path)  # 100 vertices
    indices = INDICES.copy()
    indices[5] = 100
    record = ScanRecord(mesh_path, "1", None, indices)
    with pytest.raises(InputError, match="landmark 5 is vertex 100") as caught:
        load_scan(record)
    assert caught.value.path == mesh_path


def test_real_facescape_landmark_indices_load() -> None:
    indices = read_vertex_indices(shared("facescape/landmark_indices.npz"))
    assert indices.shape == (68,) and indices.dtype == np.int64
    assert len(np.unique(indices)) == 68 and indices.min() >= 0


# --- Headspace ---------------------------------------------------------------------------------------


def test_headspace_reads_landmarks_beside_the_mesh_or_none(tmp_path: Path) -> None:
    root = tmp_path / "headspace"
    beside = write_scan(root / "00001" / "00001_a.obj", ".pp", seed=1)
    write_scan(root / "00002" / "00002_a.obj")  # no landmark file
    (root / "00002" / "00002_a.bmp").write_bytes(b"")
    records = headspace_records(root)
    assert [(r.subject, r.mesh_path.name) for r in records] == [
        ("00001", "00001_a.obj"),
        ("00002", "00002_a.obj"),
    ]
    np.testing.assert_allclose(records[0].landmarks, beside)
    assert records[1].landmarks is None and records[1].vertex_indices is None
    mesh, landmarks = load_scan(records[1])
    assert len(mesh.vertices) == 100 and landmarks is None


def test_headspace_reads_landmarks_from_a_separate_folder(tmp_path: Path) -> None:
    root = tmp_path / "headspace"
    write_scan(root / "00001" / "00001_a.obj")
    labels = tmp_path / "labels"
    points = write_scan(labels / "00001" / "00001_a.obj", ".ljson", seed=3)
    (labels / "00001" / "00001_a.obj").unlink()
    records = headspace_records(root, landmarks_dir=labels)
    np.testing.assert_allclose(records[0].landmarks, points)
    _, landmarks = load_scan(records[0])
    np.testing.assert_allclose(landmarks, points)


def test_headspace_wrong_point_count_raises_naming_the_landmark_file(tmp_path: Path) -> None:
    write_scan(tmp_path / "00001" / "00001_a.obj", ".pp", n_points=70)
    with pytest.raises(InputError, match="70 points") as caught:
        headspace_records(tmp_path)
    assert caught.value.path == tmp_path / "00001" / "00001_a.pp"


# --- generic folder ----------------------------------------------------------------------------------


def test_folder_subjects_come_from_subfolders_or_the_stem_prefix(tmp_path: Path) -> None:
    flat = write_scan(tmp_path / "s01_smile.ply", ".json", seed=1)
    write_scan(tmp_path / "s01_neutral.off")
    nested = write_scan(tmp_path / "s02" / "neutral.obj", ".pp", seed=2)
    write_scan(tmp_path / "deep" / "s03" / "scan.stl", ".ljson", seed=3)
    records = {r.mesh_path.relative_to(tmp_path).as_posix(): r for r in folder_records(tmp_path)}
    assert {k: r.subject for k, r in records.items()} == {
        "s01_smile.ply": "s01",
        "s01_neutral.off": "s01",
        "s02/neutral.obj": "s02",
        "deep/s03/scan.stl": "deep/s03",
    }
    np.testing.assert_allclose(records["s01_smile.ply"].landmarks, flat)
    np.testing.assert_allclose(records["s02/neutral.obj"].landmarks, nested)
    assert records["s01_neutral.off"].landmarks is None
    assert [r.mesh_path.name for r in folder_records(tmp_path, recursive=False)] == [
        "s01_neutral.off",
        "s01_smile.ply",
    ]


def test_folder_invisible_points_become_nan(tmp_path: Path) -> None:
    mesh_path = tmp_path / "a_1.obj"
    write_scan(mesh_path)
    points = np.random.default_rng(0).uniform(-1, 1, (68, 3))
    visible = np.ones(68, dtype=bool)
    visible[[3, 40]] = False
    write_landmarks(mesh_path.with_suffix(".pp"), Landmarks(points, visible=visible))
    landmarks = folder_records(tmp_path)[0].landmarks
    assert np.isnan(landmarks[[3, 40]]).all()
    np.testing.assert_allclose(landmarks[visible], points[visible])


def test_folder_rejects_2d_and_ambiguous_landmark_files(tmp_path: Path) -> None:
    mesh_path = tmp_path / "a.obj"
    write_scan(mesh_path)
    write_landmarks(tmp_path / "a.json", Landmarks(np.zeros((68, 2))))
    with pytest.raises(InputError, match="2D") as caught:
        folder_records(tmp_path)
    assert caught.value.path == tmp_path / "a.json"
    write_landmarks(tmp_path / "a.pp", Landmarks(np.zeros((68, 3))))
    with pytest.raises(InputError, match="several") as caught:
        folder_records(tmp_path)
    assert caught.value.path == mesh_path


@pytest.mark.parametrize("reader", [facescape_records, headspace_records, folder_records])
def test_missing_or_empty_roots_raise_naming_the_root(tmp_path: Path, reader) -> None:
    with pytest.raises(InputError, match="not found") as caught:
        reader(tmp_path / "absent")
    assert caught.value.path == tmp_path / "absent"
    (tmp_path / "empty" / "1").mkdir(parents=True)
    np.savez(tmp_path / "empty" / "landmark_indices.npz", v10=INDICES)
    with pytest.raises(InputError, match="no ") as caught:
        reader(tmp_path / "empty")
    assert caught.value.path == tmp_path / "empty"


# --- subject splits ----------------------------------------------------------------------------------


def records_of(subjects: int, scans_each: int = 3) -> list[ScanRecord]:
    return [ScanRecord(Path(f"{s}/{k}.obj"), f"s{s}") for s in range(subjects) for k in range(scans_each)]


@pytest.mark.parametrize("subjects", [1, 2, 3, 7, 50])
def test_split_keeps_each_subject_on_one_side_and_covers_all(subjects: int) -> None:
    records = records_of(subjects)
    sides = split_by_subject(records)
    subject_sets = [{r.subject for r in side} for side in sides]
    assert not (
        subject_sets[0] & subject_sets[1]
        or subject_sets[0] & subject_sets[2]
        or subject_sets[1] & subject_sets[2]
    )
    assert sorted(map(id, sides[0] + sides[1] + sides[2])) == sorted(map(id, records))
    assert sides[0], "training is never empty"
    if subjects >= 3:
        assert sides[1] and sides[2]


def test_split_sizes_follow_fractions_and_are_deterministic() -> None:
    records = records_of(100, scans_each=2)
    sides = split_by_subject(records, (0.7, 0.2, 0.1), seed=4)
    assert [len({r.subject for r in side}) for side in sides] == [70, 20, 10]
    assert split_by_subject(records, (0.7, 0.2, 0.1), seed=4) == sides
    assert split_by_subject(records[::-1], (0.7, 0.2, 0.1), seed=4)[2] == sides[2][::-1]
    assert split_by_subject(records, (0.7, 0.2, 0.1), seed=5) != sides


def test_split_with_three_subjects_gives_one_to_each_side_and_allows_evaluation_only() -> None:
    sides = split_by_subject(records_of(3))
    assert [len({r.subject for r in side}) for side in sides] == [1, 1, 1]
    train, val, test = split_by_subject(records_of(3), (0, 0, 1))
    assert not train and not val and len(test) == 9
    with pytest.raises(InputError):
        split_by_subject(records_of(3), (0.5, -0.1, 0.6))
