"""Inputs at the edges of what facegraph takes: stray vertices far from a scan, STL's loose corners,
mesh files of random bytes, cut short or in another text encoding, and photos big enough for Pillow to
suspect a decompression bomb.

(The readers' cases live here beside the landmarker's, in one module: pytest's default import mode does
not allow two test modules of the same name.)
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.io import read_mesh, write_mesh
from facegraph.io.images import read_image
from facegraph.mesh.checks import check_scan
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.types import Mesh

STRAY = np.array([[1e6, 0.0, 0.0]])  # one vertex a kilometre from a scan in millimetres
FORMATS = (".obj", ".ply", ".stl", ".off")


@pytest.fixture(scope="module")
def james() -> Mesh:
    return read_mesh(sample_path("james.obj"), normals=False)


@pytest.fixture(scope="module")
def landmarker() -> MeshLandmarker:
    return MeshLandmarker()


def with_stray(mesh: Mesh, first: bool = False) -> Mesh:
    """The scan with STRAY added as a vertex no face uses, after the others or before them."""
    if not first:
        return Mesh(np.vstack([mesh.vertices, STRAY]), mesh.faces)
    return Mesh(np.vstack([STRAY, mesh.vertices]), None if mesh.faces is None else mesh.faces + 1)


def test_no_vertex_of_the_sample_scan_is_an_outlier(james: Mesh) -> None:
    from facegraph.mesh.checks import outlying_vertices

    assert len(outlying_vertices(james.vertices)) == 0
    _, notes = check_scan(james)
    assert not any("outlying" in note for note in notes)


def test_a_stray_vertex_does_not_decide_the_units_and_is_named(james: Mesh) -> None:
    scan, notes = check_scan(with_stray(james))
    assert scan.units == "mm"
    assert [note for note in notes if "outlying" in note] == [
        "ignored 1 outlying vertex (index 6393) far from the rest of the scan"
    ]


def test_unit_advice_names_the_outlying_vertices(james: Mesh) -> None:
    metres = Mesh(np.vstack([james.vertices / 1000, STRAY, STRAY + 1]), james.faces)
    with pytest.raises(InputError, match="--units m ") as guessed:
        check_scan(metres)
    assert "2 outlying vertices (indices 6393, 6394)" in str(guessed.value)
    with pytest.raises(InputError, match="check --units") as given:
        check_scan(metres, units="mm")
    assert "2 outlying vertices (indices 6393, 6394)" in str(given.value)


def with_stray_triangle(mesh: Mesh) -> Mesh:
    """The scan with a small triangle added around STRAY (as an STL holds a stray vertex)."""
    n = len(mesh.vertices)
    corners = STRAY + np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    return Mesh(np.vstack([mesh.vertices, corners]), np.vstack([mesh.faces, [[n, n + 1, n + 2]]]))


def test_faces_of_outlying_vertices_are_dropped_and_counted(james: Mesh) -> None:
    scan, notes = check_scan(with_stray_triangle(james))
    n = len(james.vertices)
    assert len(scan.faces) == len(james.faces)
    assert notes[0] == (
        f"ignored 3 outlying vertices (indices {n}, {n + 1}, {n + 2}) far from the rest of the scan, "
        "and the 1 face using them"
    )


@pytest.mark.parametrize("kind", ["mesh", "cloud", "stray triangle"])
def test_landmarks_with_stray_vertices_match_those_without(
    james: Mesh, landmarker: MeshLandmarker, kind: str
) -> None:
    scan = Mesh(james.vertices) if kind == "cloud" else james
    expected = landmarker(scan)
    if kind == "stray triangle":
        variants, shifts = [with_stray_triangle(scan)], [0]
    else:
        variants, shifts = [with_stray(scan), with_stray(scan, first=True)], [0, 1]
    for variant, shift in zip(variants, shifts, strict=True):
        found = landmarker(variant)
        assert np.abs(found.points - expected.points).max() < 1.0  # mm
        np.testing.assert_array_equal(found.vertex_indices, expected.vertex_indices + shift)
        assert any("outlying" in note for note in found.notes)


def spheres(count: int) -> trimesh.Trimesh:
    """``count`` separate spheres of radius 60 mm side by side: a mesh of that many pieces."""
    pieces = [trimesh.creation.icosphere(subdivisions=3, radius=60.0) for _ in range(count)]
    for i, piece in enumerate(pieces):
        piece.apply_translation([150.0 * i, 0.0, 0.0])
    return trimesh.util.concatenate(pieces)


@pytest.mark.parametrize("count", [1, 2])
def test_an_stl_is_counted_in_pieces_not_triangles(tmp_path: Path, count: int) -> None:
    write_mesh(tmp_path / "spheres.stl", Mesh(spheres(count).vertices, spheres(count).faces))
    mesh = read_mesh(tmp_path / "spheres.stl", normals=False)
    assert len(mesh.vertices) == 3 * len(mesh.faces)  # STL's corners, kept apart by the reader
    _, notes = check_scan(mesh)
    pieces = [note for note in notes if "separate pieces" in note]
    if count == 1:
        assert pieces == []
    else:
        assert pieces == ["the mesh has 2 separate pieces; all were searched for the face"]


@pytest.fixture
def no_charset_normalizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """As where charset_normalizer is not installed (trimesh imports it to guess a text's encoding)."""
    monkeypatch.setitem(sys.modules, "charset_normalizer", None)


def sample_scan(suffix: str, ascii_text: bool = False) -> bytes:
    """The sample scan as trimesh writes it in a format (binary PLY and STL unless ``ascii_text``)."""
    mesh = read_mesh(sample_path("james.obj"), normals=False)
    geometry = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    if suffix == ".ply":
        return geometry.export(file_type="ply", encoding="ascii" if ascii_text else "binary")
    if suffix == ".stl":
        return (
            geometry.export(file_type="stl_ascii").encode()
            if ascii_text
            else geometry.export(file_type="stl")
        )
    return geometry.export(file_type=suffix[1:]).encode()


def read_error(path: Path) -> str:
    """The one-line problem read_mesh reports for a file, which must name it."""
    with pytest.raises(InputError) as info:
        read_mesh(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return info.value.problem


@pytest.mark.usefixtures("no_charset_normalizer")
def test_random_bytes_as_obj_say_it_is_not_a_text_obj_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.obj"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert read_error(path) == "not a readable mesh (not a text OBJ file: it holds binary data)"


@pytest.mark.usefixtures("no_charset_normalizer")
@pytest.mark.parametrize("suffix", FORMATS)
def test_random_bytes_and_empty_files_give_one_plain_line(tmp_path: Path, suffix: str) -> None:
    noise = tmp_path / f"noise{suffix}"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    problem = read_error(noise)
    assert "charset" not in problem and "unpack" not in problem
    assert {".ply": "not a PLY file", ".stl": "binary STL"}.get(suffix, "not a text") in problem
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    assert read_error(tmp_path / f"empty{suffix}") == "the file is empty"


@pytest.mark.usefixtures("no_charset_normalizer")
@pytest.mark.parametrize("suffix", [*FORMATS, ".ply (ascii)", ".stl (ascii)"])
@pytest.mark.parametrize("kept", [0.001, 0.02, 0.5, 0.999])
def test_a_cut_short_scan_is_refused_not_misread(tmp_path: Path, suffix: str, kept: float) -> None:
    data = sample_scan(suffix[:4], ascii_text="ascii" in suffix)
    cut = int(len(data) * kept)
    if suffix == ".obj":  # cut inside a vertex line (cut between lines, an OBJ is a smaller scan)
        cut = data.index(b"\nv ", int(data.index(b"\nf ") * kept)) + 6
    path = tmp_path / f"cut{suffix[:4]}"
    path.write_bytes(data[:cut])
    problem = read_error(path)
    assert problem.startswith("not a readable mesh (")
    assert "truncated" in problem or "PLY is unexpected length" in problem, problem


def test_a_ply_cut_inside_its_header_says_so(tmp_path: Path) -> None:
    data = sample_scan(".ply")
    (tmp_path / "cut.ply").write_bytes(data[: data.index(b"end_header") + 3])
    assert read_error(tmp_path / "cut.ply") == (
        "not a readable mesh (the PLY header has no end_header line: truncated?)"
    )


@pytest.mark.usefixtures("no_charset_normalizer")
def test_text_in_another_encoding_is_read_without_guessing_it(tmp_path: Path) -> None:
    expected = read_mesh(sample_path("james.obj"), normals=False)
    text = "# scanné à Zürich\r\n".encode("latin-1") + sample_path("james.obj").read_bytes().replace(
        b"\n", b"\r\n"
    )
    (tmp_path / "latin1.obj").write_bytes(text)
    (tmp_path / "latin1.off").write_bytes(b"# \xe9\n" + sample_scan(".off"))
    (tmp_path / "latin1.stl").write_bytes(
        sample_scan(".stl", ascii_text=True).replace(b"solid", b"solid \xe9", 1)
    )
    for name in ("latin1.obj", "latin1.off"):
        mesh = read_mesh(tmp_path / name, normals=False)
        np.testing.assert_allclose(mesh.vertices, expected.vertices)
        np.testing.assert_array_equal(mesh.faces, expected.faces)
    assert len(read_mesh(tmp_path / "latin1.stl").faces) == len(expected.faces)


def test_the_command_line_says_one_line_for_random_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "x.obj"
    path.write_bytes(np.random.default_rng(2).bytes(4096))
    assert main(["mesh", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"facegraph: error: {path}: not a readable mesh (not a text OBJ file: it holds binary data)"
    ]


def test_a_100_megapixel_photo_is_read_without_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (10_000, 10_000), (120, 90, 60)).save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb = read_image(path)
    assert [str(w.message) for w in caught] == []
    assert rgb.shape == (10_000, 10_000, 3) and (rgb[::1000, ::1000] == (120, 90, 60)).all()


def test_past_pillows_limit_a_photo_is_refused_in_megapixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2_000_000)  # refused above twice that
    Image.new("L", (2000, 1500)).save(tmp_path / "below.png")
    Image.new("L", (2500, 2000)).save(tmp_path / "above.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(tmp_path / "below.png").shape == (1500, 2000, 3)
    assert caught == []
    with pytest.raises(InputError) as info:
        read_image(tmp_path / "above.png")
    assert (
        info.value.problem
        == "the image is too large to read safely (5 megapixels; the limit is 4 megapixels)"
    )
