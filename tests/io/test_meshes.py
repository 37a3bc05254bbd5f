"""read_mesh loads OBJ/PLY/STL/OFF as they are, point clouds without faces, and rejects bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from facegraph.errors import InputError
from facegraph.io import read_mesh, vertex_normals, write_mesh, write_points_ply
from facegraph.types import Mesh

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

TETRA_V = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])  # outward-facing


def _triangles(vertices: np.ndarray, faces: np.ndarray) -> set[tuple[tuple[float, ...], ...]]:
    """Each face as its corner coordinates, from the lowest corner on (index-free, winding kept)."""
    out = set()
    for face in faces:
        corners = [tuple(np.round(vertices[i], 9)) for i in face]
        k = corners.index(min(corners))
        out.add(tuple(corners[k:] + corners[:k]))
    return out


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off"])
def test_reads_files_written_by_trimesh(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tetra{suffix}"
    trimesh.Trimesh(TETRA_V, TETRA_F, process=False).export(path)
    mesh = read_mesh(path)
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    assert _triangles(mesh.vertices, mesh.faces) == _triangles(TETRA_V, TETRA_F)
    if suffix != ".stl":  # STL stores corners per face, so only the geometry is comparable
        np.testing.assert_allclose(mesh.vertices, TETRA_V)
        np.testing.assert_array_equal(mesh.faces, TETRA_F)
    assert mesh.normals.shape == mesh.vertices.shape


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off"])
def test_write_mesh_round_trip(tmp_path: Path, suffix: str) -> None:
    mesh = Mesh(TETRA_V.copy(), TETRA_F.copy())
    write_mesh(tmp_path / f"out{suffix}", mesh)
    back = read_mesh(tmp_path / f"out{suffix}")
    assert _triangles(back.vertices, back.faces) == _triangles(TETRA_V, TETRA_F)
    np.testing.assert_array_equal(mesh.vertices, TETRA_V)
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]


def test_point_clouds_have_no_faces(tmp_path: Path) -> None:
    trimesh.PointCloud(TETRA_V).export(tmp_path / "cloud.ply")
    cloud = read_mesh(tmp_path / "cloud.ply")
    assert cloud.faces is None and cloud.normals is None and cloud.is_point_cloud
    np.testing.assert_allclose(cloud.vertices, TETRA_V)

    landmarks = np.random.default_rng(0).normal(size=(68, 3))
    write_points_ply(tmp_path / "landmarks.ply", landmarks)
    assert (tmp_path / "landmarks.ply").read_bytes().startswith(b"ply\nformat ascii")
    back = read_mesh(tmp_path / "landmarks.ply")
    assert back.faces is None
    np.testing.assert_allclose(back.vertices, landmarks)


def test_vertex_normals_point_outward_with_unit_length() -> None:
    normals = vertex_normals(TETRA_V, TETRA_F)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    outward = TETRA_V - TETRA_V.mean(axis=0)
    assert (np.sum(normals * outward, axis=1) > 0).all()
    # The origin corner touches three equal right triangles, so its normal is the diagonal.
    np.testing.assert_allclose(normals[0], -np.ones(3) / np.sqrt(3))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.obj", b"", "empty"),
        ("words.obj", b"hello\nthis is not a mesh\n", "no mesh"),
        ("garbage.ply", b"\x00\x01\x02garbage", "not a readable mesh"),
        ("garbage.stl", b"solid x\nfacet nonsense\n", "mesh"),
        ("nan.obj", b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "vertex 0"),
        ("index.off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "mesh"),
        ("mesh.fbx", b"whatever", "supported"),
    ],
)
def test_bad_files_raise_input_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_mesh(tmp_path / name)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_bad_output_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_mesh(tmp_path / "absent.obj")
    with pytest.raises(InputError, match="point cloud"):
        write_mesh(tmp_path / "cloud.stl", Mesh(TETRA_V))
    with pytest.raises(InputError, match="supported"):
        write_mesh(tmp_path / "mesh.glb", Mesh(TETRA_V, TETRA_F))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} is absent")
def test_real_textured_obj_keeps_the_file_vertices() -> None:
    mesh = read_mesh(DATA / "menpo3d" / "james.obj")
    assert mesh.vertices.shape == (6393, 3)
    assert mesh.faces.shape[1] == 3 and mesh.faces.max() < 6393


def _trimesh_reading(path: Path) -> trimesh.Trimesh:
    return trimesh.load(path, process=False, force=None, maintain_order=True, skip_materials=True)


PLAIN_OBJS = {
    "bare, an unused vertex": (
        b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nv 5 5 5\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
    ),
    "textured, interleaved": (
        b"# made by hand\nmtllib a.mtl\n\nv 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nusemtl skin\nvt 0 0\nvt 1 0\n"
        b"vt 0 1\nf 1/1 3/3 2/2\nvt 0.5 0.5\nf 1/1 2/2 4/4\nf 1/1 4/4 3/3\nf 2/2 3/3 4/4\n"
    ),
    "coloured, object and group lines": (
        b"o head\ng face\ns off\nv 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nv 0 0 1 1 1 1\n"
        b"vt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\nf 1/1 3/3 2/2\nf 1/1 2/2 4/4\nf 1/1 4/4 3/3\nf 2/2 3/3 4/4"
    ),
    "v//vn indices": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1//1 3//1 2//1\nf 1//1 2//1 4//1\n",
}
OTHER_OBJS = {
    "quads": b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nf 1 2 3 4\nf 1 2 5\n",
    "relative indices": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf -4 -2 -3\nf -4 -3 -1\n",
    "file normals": b"v 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\nvn 0 0 1\nvn 0 0 1\nf 1//1 2//2 3//3\n",
    "two objects": b"o a\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\no b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf 4 5 6\n",
    "double spaces and CRLF": b"v  0 0 0\r\nv 1 0 0\r\nv 0 1 0\r\nv 0 0 1\r\nf 1 3 2\r\nf 1  2 4\r\n",
}


@pytest.mark.parametrize("name", PLAIN_OBJS)
def test_plain_obj_is_read_without_trimesh_as_trimesh_reads_it(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scan.obj"
    path.write_bytes(PLAIN_OBJS[name])
    expected = _trimesh_reading(path)
    monkeypatch.setattr(trimesh, "load", lambda *args, **kwargs: pytest.fail("trimesh parsed a plain OBJ"))
    mesh = read_mesh(path)
    np.testing.assert_array_equal(mesh.vertices, expected.vertices)
    np.testing.assert_array_equal(mesh.faces, expected.faces)
    np.testing.assert_allclose(mesh.normals, expected.vertex_normals)
    assert read_mesh(path, normals=False).normals is None


@pytest.mark.parametrize("name", OTHER_OBJS)
def test_other_obj_goes_to_trimesh_and_reads_as_before(tmp_path: Path, name: str) -> None:
    path = tmp_path / "scan.obj"
    path.write_bytes(OTHER_OBJS[name])
    pieces = _trimesh_reading(path)
    pieces = list(pieces.dump()) if isinstance(pieces, trimesh.Scene) else [pieces]
    expected = pieces[0] if len(pieces) == 1 else trimesh.util.concatenate(pieces)
    mesh = read_mesh(path)
    np.testing.assert_array_equal(mesh.vertices, expected.vertices)
    np.testing.assert_array_equal(mesh.faces, expected.faces)
    np.testing.assert_allclose(mesh.normals, expected.vertex_normals)


def test_textured_obj_keeps_an_unused_last_vertex(tmp_path: Path) -> None:
    """trimesh drops unused vertices at the end of a textured OBJ; the file's count is kept, so vertex
    indices into it (landmark files) stay valid."""
    path = tmp_path / "scan.obj"
    path.write_bytes(PLAIN_OBJS["textured, interleaved"].replace(b"usemtl", b"v 5 5 5\nusemtl"))
    assert len(_trimesh_reading(path).vertices) == 4
    mesh = read_mesh(path)
    assert len(mesh.vertices) == 5 and mesh.faces.max() == 3
