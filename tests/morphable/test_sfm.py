import json
import struct
from pathlib import Path

import numpy as np
import pytest

from facegraph.errors import InputError
from facegraph.morphable.sfm import PcaShapeModel, load_sfm, load_sfm_blendshapes, read_ibug_mapping
from tests.conftest import shared

SFM = "sfm/sfm_shape_3448.bin"


def _eigen(matrix: np.ndarray) -> bytes:
    """An Eigen float matrix as eos writes it: int32 rows, int32 cols, column-major float32."""
    matrix = np.asarray(matrix, dtype="<f4")
    return struct.pack("<ii", *matrix.shape) + matrix.tobytes(order="F")


def _pca(mean: np.ndarray, basis: np.ndarray, eigenvalues: np.ndarray, triangles: np.ndarray) -> bytes:
    return (
        _eigen(mean.reshape(-1, 1))
        + _eigen(basis)
        + _eigen(eigenvalues.reshape(-1, 1))
        + struct.pack("<Q", len(triangles))
        + np.asarray(triangles, dtype="<i4").tobytes()
    )


def _synthetic(n_vertices: int = 8, n_components: int = 3, seed: int = 0) -> PcaShapeModel:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(3 * n_vertices, n_components)))
    return PcaShapeModel(
        rng.normal(size=(n_vertices, 3)),
        basis,
        np.array([9.0, 4.0, 1.0])[:n_components],
        np.array([[0, 1, 2], [2, 1, n_vertices - 1]]),
    )


def _archive(model: PcaShapeModel, rescaled: bool = False, version: int = 1) -> bytes:
    """A version-1 eos MorphableModel archive: shape model, empty colour model, per-vertex uv."""
    basis = model.basis * np.sqrt(model.eigenvalues) if rescaled else model.basis
    empty = np.zeros(0)
    uv = np.zeros((len(model.mean), 2), dtype="<f8")
    return (
        struct.pack("<I", version)
        + _pca(model.mean, basis, model.eigenvalues, model.triangles)
        + _pca(empty, np.zeros((0, 0)), empty, np.zeros((0, 3)))
        + struct.pack("<Q", len(uv))
        + uv.tobytes()
    )


def _write(tmp_path: Path, data: bytes, name: str = "model.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = [line.split() for line in path.read_text().splitlines()]
    vertices = np.array([[float(v) for v in row[1:4]] for row in rows if row and row[0] == "v"])
    faces = np.array([[int(v.split("/")[0]) for v in row[1:4]] for row in rows if row and row[0] == "f"])
    return vertices, faces


def test_synthetic_archive_round_trips(tmp_path):
    model = _synthetic()
    loaded = load_sfm(_write(tmp_path, _archive(model)))
    assert loaded.mean == pytest.approx(model.mean, abs=1e-6)
    assert loaded.basis == pytest.approx(model.basis, abs=1e-6)
    assert loaded.eigenvalues == pytest.approx(model.eigenvalues)
    assert np.array_equal(loaded.triangles, model.triangles)
    assert loaded.triangles.dtype == np.int64


def test_a_rescaled_basis_is_normalised_so_samples_agree(tmp_path):
    model = _synthetic()
    orthonormal = load_sfm(_write(tmp_path, _archive(model), "a.bin"))
    rescaled = load_sfm(_write(tmp_path, _archive(model, rescaled=True), "b.bin"))
    assert rescaled.basis == pytest.approx(orthonormal.basis, abs=1e-5)
    coefficients = np.array([1.0, -2.0, 0.5])
    assert rescaled.sample(coefficients) == pytest.approx(orthonormal.sample(coefficients), abs=1e-5)


def test_sample_is_mean_plus_basis_times_standard_deviations():
    model = _synthetic()
    coefficients = np.array([1.0, -2.0, 0.5])
    expected = model.mean.reshape(-1) + model.basis @ (coefficients * np.sqrt(model.eigenvalues))
    assert model.sample(coefficients) == pytest.approx(expected.reshape(-1, 3))
    assert model.sample(coefficients[:1]) == pytest.approx(model.sample(np.array([1.0, 0.0, 0.0])))
    assert model.sample(np.zeros(0)) == pytest.approx(model.mean)
    with pytest.raises(ValueError, match="at most 3"):
        model.sample(np.zeros(4))


def test_random_uses_the_requested_components_and_scale():
    model = _synthetic()
    first_only = model.random(np.random.default_rng(1), n_components=1)
    offset = (first_only - model.mean).reshape(-1)
    assert offset == pytest.approx(model.basis[:, 0] * (model.basis[:, 0] @ offset))
    assert model.random(np.random.default_rng(2), scale=0.0) == pytest.approx(model.mean)
    assert model.random(np.random.default_rng(3)) == pytest.approx(model.random(np.random.default_rng(3)))


def test_a_truncated_copy_is_an_input_error_naming_the_file(tmp_path):
    data = _archive(_synthetic())
    for cut in (2, 20, len(data) - 1):
        path = _write(tmp_path, data[:cut], f"cut{cut}.bin")
        with pytest.raises(InputError, match="truncated") as caught:
            load_sfm(path)
        assert caught.value.path == path
        assert "\n" not in str(caught.value)


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read") as caught:
        load_sfm(tmp_path / "absent.bin")
    assert str(tmp_path / "absent.bin") in str(caught.value)


def test_other_formats_are_input_errors(tmp_path):
    model = _synthetic()
    with pytest.raises(InputError, match="version 0"):
        load_sfm(_write(tmp_path, _archive(model, version=0), "old.bin"))
    with pytest.raises(InputError, match="trailing"):
        load_sfm(_write(tmp_path, _archive(model) + b"\0" * 4, "long.bin"))
    skewed = PcaShapeModel(model.mean, model.basis * 3.0, model.eigenvalues, model.triangles)
    with pytest.raises(InputError, match="neither orthonormal nor rescaled"):
        load_sfm(_write(tmp_path, _archive(skewed), "skewed.bin"))
    with pytest.raises(InputError):
        load_sfm(_write(tmp_path, b"# just some text\n" * 8, "text.bin"))


def test_mapping_is_zero_based_and_bad_files_are_input_errors(tmp_path):
    good = _write(tmp_path, b"[landmark_mappings]\n 1 = 7  # contour\n68 = 3\n", "good.txt")
    assert read_ibug_mapping(good) == {0: 7, 67: 3}
    bad = {
        "syntax.txt": b"[landmark_mappings\n1 = 2\n",
        "table.txt": b"[other]\n1 = 2\n",
        "key.txt": b"[landmark_mappings]\n69 = 2\n",
        "value.txt": b"[landmark_mappings]\n1 = -2\n",
    }
    for name, text in bad.items():
        with pytest.raises(InputError) as caught:
            read_ibug_mapping(_write(tmp_path, text, name))
        assert caught.value.path == tmp_path / name
    with pytest.raises(InputError, match="cannot read"):
        read_ibug_mapping(tmp_path / "absent.txt")


@pytest.fixture(scope="module")
def sfm() -> PcaShapeModel:
    return load_sfm(shared(SFM))


def test_real_model_sizes_and_orthonormal_basis(sfm):
    assert sfm.mean.shape == (3448, 3)
    assert sfm.basis.shape == (3 * 3448, 63)
    assert sfm.basis.T @ sfm.basis == pytest.approx(np.eye(63), abs=1e-5)
    assert np.all(np.diff(sfm.eigenvalues) <= 0)
    assert sfm.triangles.shape == (6736, 3)
    assert sfm.triangles.min() == 0 and sfm.triangles.max() == 3447


def test_real_mean_starts_with_the_reference_mesh_vertices(sfm):
    """sfm_reference.obj is the 845-vertex template the model was built from, not the 3448-vertex mean:
    the mean's first 845 vertices are those template vertices, in order, a few millimetres away."""
    vertices, faces = _obj(shared("sfm/sfm_reference.obj"))
    assert vertices.shape == (845, 3) and faces.min() == 1 and faces.max() == 845
    distance = np.linalg.norm(sfm.mean[:845] - vertices, axis=1)
    assert np.sqrt(np.mean(distance**2)) < 3.0 and distance.max() < 8.0
    shuffled = np.linalg.norm(sfm.mean[:845] - np.roll(vertices, 1, axis=0), axis=1)
    assert np.median(shuffled) > 5 * np.median(distance)


def test_real_triangles_match_the_edge_topology_file(sfm):
    """Every edge of sfm_3448_edge_topology.json (1-based) lies in its adjacent triangles (0 = none)."""
    topology = json.loads(shared("sfm/sfm_3448_edge_topology.json").read_text())["edge_topology"]
    faces = np.array([[pair["value0"], pair["value1"]] for pair in topology["adjacent_faces"]])
    edges = np.array([[pair["value0"], pair["value1"]] for pair in topology["adjacent_vertices"]]) - 1
    assert len(edges) == 10184
    for side in (0, 1):
        present = faces[:, side] > 0
        triangles = sfm.triangles[faces[present, side] - 1]
        for end in (0, 1):
            assert np.all((triangles == edges[present, end][:, None]).any(axis=1))


def test_real_mapping_and_canonical_frame(sfm):
    mapping = read_ibug_mapping(shared("sfm/ibug_to_sfm.txt"))
    assert len(mapping) == 50
    assert set(mapping) <= set(range(68)) and max(mapping.values()) < len(sfm.mean)
    assert mapping[30] == 114 and mapping[36] == 177 and mapping[45] == 610
    nose, right_eye, left_eye, chin = (sfm.mean[mapping[i]] for i in (30, 36, 45, 8))
    assert right_eye[0] < -40 and left_eye[0] > 40, "the subject's right eye is at negative x"
    assert nose[2] > right_eye[2] + 30 and nose[2] > left_eye[2] + 30, "z points toward the viewer"
    assert right_eye[1] > nose[1] > chin[1], "y points up"
    assert 140 < np.ptp(sfm.mean[:, 0]) < 160, "millimetres: a face about 15 cm wide"


def test_real_random_face_differs_from_the_mean_but_stays_face_sized(sfm):
    face = sfm.random(np.random.default_rng(0))
    offset = np.linalg.norm(face - sfm.mean, axis=1)
    assert 1.0 < np.sqrt(np.mean(offset**2)) < 30.0
    assert np.ptp(face, axis=0) == pytest.approx(np.ptp(sfm.mean, axis=0), rel=0.25)


def _blendshapes(shapes: dict[str, np.ndarray]) -> bytes:
    """A blendshape archive as eos writes it: count, then each name and deformation (3V x 1)."""
    data = struct.pack("<Q", len(shapes))
    for name, deformation in shapes.items():
        data += struct.pack("<Q", len(name.encode())) + name.encode() + _eigen(deformation.reshape(-1, 1))
    return data


def test_blendshapes_read_by_name_as_vertex_deformations(tmp_path):
    shapes = {"smile": np.arange(24.0).reshape(8, 3), "frown": -np.ones((8, 3))}
    loaded = load_sfm_blendshapes(_write(tmp_path, _blendshapes(shapes)), n_vertices=8)
    assert list(loaded) == ["smile", "frown"]
    for name, deformation in shapes.items():
        np.testing.assert_array_equal(loaded[name], deformation)


@pytest.mark.parametrize(
    ("shapes", "cut", "n_vertices", "problem"),
    [
        ({"smile": np.zeros((8, 3))}, 10, 8, "truncated eos blendshapes"),
        ({"smile": np.zeros((8, 3))}, None, 9, "expected \\(27, 1\\) for a 9-vertex model"),
        ({"smile": np.full((8, 3), np.nan)}, None, 8, "blendshape 'smile' has NaN or infinite values"),
        ({"x" * 300: np.zeros((8, 3))}, None, 8, "has a 300-byte name"),
    ],
)
def test_bad_blendshape_files_are_input_errors_naming_the_file(tmp_path, shapes, cut, n_vertices, problem):
    data = _blendshapes(shapes)
    path = _write(tmp_path, data[:cut] if cut else data)
    with pytest.raises(InputError, match=problem) as caught:
        load_sfm_blendshapes(path, n_vertices)
    assert caught.value.path == path


def test_trailing_bytes_and_repeated_names_are_not_a_blendshape_file(tmp_path):
    one = _blendshapes({"smile": np.zeros((8, 3))})
    repeated = struct.pack("<Q", 2) + one[8:] + one[8:]
    for data, problem in ((one + b"\0", "1 trailing bytes"), (repeated, "two blendshapes are named 'smile'")):
        path = _write(tmp_path, data)
        with pytest.raises(InputError, match=problem) as caught:
            load_sfm_blendshapes(path, 8)
        assert caught.value.path == path


def test_real_blendshapes_open_the_mouth_for_surprise(sfm):
    blendshapes = load_sfm_blendshapes(shared("sfm/expression_blendshapes_3448.bin"), len(sfm.mean))
    assert list(blendshapes) == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    mapping = read_ibug_mapping(shared("sfm/ibug_to_sfm.txt"))
    upper, lower = mapping[62], mapping[66]  # the inner lips' middle points

    def gap(deformation: np.ndarray) -> float:
        vertices = sfm.mean + deformation
        return float(np.linalg.norm(vertices[upper] - vertices[lower]))

    assert gap(np.zeros_like(sfm.mean)) < 1.0 < 10.0 < gap(blendshapes["surprise"])
