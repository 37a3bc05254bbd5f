"""Reading and writing face meshes and point clouds (OBJ, PLY, STL, OFF) through trimesh.

Files are loaded with ``process=False`` (and, for OBJ, trimesh's ``maintain_order``), so vertices keep
the file's order and count (landmark indices on a mesh stay valid) and nothing is merged or repaired.
STL stores each triangle's corners separately, so an STL mesh has three vertices per face.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import trimesh

from facegraph.errors import InputError
from facegraph.formats import MESH_SUFFIXES
from facegraph.io.atomic import write_atomic
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.types import Mesh


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals; vertices in no (non-degenerate) face get a zero normal."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    # The cross product's length is twice the triangle's area, which gives the area weighting.
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    acc = np.zeros_like(v)
    for corner in range(3):
        for axis in range(3):
            acc[:, axis] += np.bincount(f[:, corner], weights=face_n[:, axis], minlength=len(v))
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    return np.divide(acc, length, out=np.zeros_like(acc), where=length > 0)


def _pieces(loaded: object) -> list[object]:
    """The geometries of a load result, with a Scene's node transforms applied."""
    if isinstance(loaded, trimesh.Scene):
        return list(loaded.dump()) if loaded.geometry else []
    return [loaded]


# Lines a plain OBJ may hold besides its vertex and face runs (nothing in them changes the geometry).
PLAIN_OBJ_TAGS = (b"#", b"mtllib ", b"usemtl ", b"s ", b"o ", b"g ")
TEXTURE_LINES = re.compile(rb"\nvt [^\n]*")  # texture coordinates, often interleaved with the faces


def _tag_run(text: bytes, tag: bytes) -> tuple[int, int] | None:
    """Where the lines of ``text`` (which starts with a newline) that begin with ``tag`` lie, as
    ``text[start:end]`` (each line with its leading newline), if they form one unbroken run; None if
    there are none or other lines come between them."""
    start = text.find(b"\n" + tag)
    if start < 0:
        return None
    end = text.find(b"\n", text.rfind(b"\n" + tag) + 1)
    end = len(text) if end < 0 else end
    if text.count(b"\n" + tag, start, end) != text.count(b"\n", start, end):
        return None
    return start, end


def _numbers(run: bytes, tag: bytes, dtype: type) -> np.ndarray:
    """The numbers of a run of tagged lines, in order."""
    return np.fromstring(run.replace(b"\n" + tag, b" "), dtype=dtype, sep=" ")


def _read_plain_obj(path: Path) -> Mesh | None:
    """A plain OBJ read without trimesh's general parser (much faster on a typical scan), giving
    the vertices and faces trimesh gives; None for any other OBJ, which trimesh then reads.

    Plain: one unbroken run of ``v x y z`` lines (the same number of columns on each; colours are
    ignored), one of triangles ``f`` in one corner format (``a``, ``a/b``, ``a/b/c`` or ``a//c``, positive
    indices), single spaces, no vertex normals, and otherwise only texture coordinates (anywhere) and
    the lines of ``PLAIN_OBJ_TAGS``.
    """
    data = path.read_bytes()
    if b"\r" in data or b"\t" in data or b"  " in data:
        return None
    text = b"\n" + data.rstrip(b"\n")
    if b"\nvt " in text:
        text = TEXTURE_LINES.sub(b"", text)
    while b"\n\n" in text:
        text = text.replace(b"\n\n", b"\n")
    vertex_span, face_span = _tag_run(text, b"v "), _tag_run(text, b"f ")
    if vertex_span is None or face_span is None:
        return None
    (v0, v1), (f0, f1) = sorted([vertex_span, face_span])
    rest = (text[:v0] + text[v1:f0] + text[f1:]).split(b"\n")[1:]
    if not all(line.startswith(PLAIN_OBJ_TAGS) for line in rest):
        return None
    vertex_run, face_run = text[slice(*vertex_span)], text[slice(*face_span)]
    n_vertices, n_faces = vertex_run.count(b"\n"), face_run.count(b"\n")
    columns = vertex_run.count(b" ") // n_vertices
    first_corner = face_run[3 : face_run.find(b" ", 3)]
    slashes = first_corner.count(b"/")
    per_corner = slashes + 1 - first_corner.count(b"//")
    if (
        columns < 3
        or vertex_run.count(b" ") != columns * n_vertices
        or face_run.count(b" ") != 3 * n_faces
        or face_run.count(b"/") != 3 * n_faces * slashes
    ):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fromstring warns when text is left unread
        coordinates = _numbers(vertex_run, b"v ", np.float64)
        indices = _numbers(face_run.replace(b"//", b" ").replace(b"/", b" "), b"f ", np.int64)
    if len(coordinates) != columns * n_vertices or len(indices) != 3 * n_faces * per_corner:
        return None
    faces = indices.reshape(n_faces, 3, per_corner)[:, :, 0] - 1
    if faces.min() < 0 or faces.max() >= n_vertices:
        return None
    return Mesh(coordinates.reshape(n_vertices, columns)[:, :3], faces)


def read_mesh(path: str | Path, normals: bool = True) -> Mesh:
    """Read a mesh or point cloud (OBJ, PLY, STL, OFF); a multi-part file becomes one mesh.

    ``normals=False`` leaves a mesh's vertex normals out (None), for callers that do not use them: the
    landmarker samples the surface's own face normals, and computing vertex normals is a sizeable part
    of the time it takes to read a scan.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a file", path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"unknown mesh format {path.suffix!r} (supported: {', '.join(MESH_SUFFIXES)})", path)
    if path.stat().st_size == 0:
        raise InputError("the file is empty", path)
    if path.suffix.lower() == ".obj":
        plain = _read_plain_obj(path)
        if plain is not None:
            _check_vertices(plain.vertices, path)
            if normals:
                computed = trimesh.Trimesh(plain.vertices, plain.faces, process=False).vertex_normals
                plain.normals = np.asarray(computed, dtype=np.float64)
            return plain
    # For OBJ, keep the file's vertex list as it is: by default trimesh splits vertices along texture
    # seams, which changes their count and order (james.obj: 6,393 vertices in the file, 6,680 after).
    options = {"maintain_order": True, "skip_materials": True} if path.suffix.lower() == ".obj" else {}
    source = _trimesh_source(path)
    try:
        loaded = trimesh.load(source, file_type=path.suffix.lower()[1:], process=False, force=None, **options)
    except Exception as exc:  # trimesh's parsers raise many kinds of error on a bad file
        text = str(exc).strip().splitlines()
        raise InputError(f"not a readable mesh ({text[0] if text else type(exc).__name__})", path) from exc
    pieces = _pieces(loaded)
    meshes = [g for g in pieces if isinstance(g, trimesh.Trimesh)]
    clouds = [g for g in pieces if isinstance(g, trimesh.PointCloud)]
    if meshes and clouds:
        raise InputError("mixes triangle meshes and point clouds", path)
    if not meshes and not clouds:
        raise InputError("contains no mesh or point cloud (empty, or not a mesh file)", path)
    if clouds:
        vertices = np.concatenate([_xyz(c.vertices, path) for c in clouds])
        _check_vertices(vertices, path)
        return Mesh(vertices)
    single = meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)
    vertices = _xyz(single.vertices, path)
    faces = np.asarray(single.faces, dtype=np.int64).reshape(-1, 3)
    _check_vertices(vertices, path)
    if len(faces) == 0:
        return Mesh(vertices)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError("a face refers to a vertex that does not exist", path)
    # trimesh returns the file's normals when it has them, otherwise it computes them from the faces.
    return Mesh(vertices, faces, np.asarray(single.vertex_normals, dtype=np.float64) if normals else None)


def _check_vertices(vertices: np.ndarray, path: Path) -> None:
    if len(vertices) == 0:
        raise InputError("has no vertices", path)
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        raise InputError(f"vertex {int(np.flatnonzero(~finite)[0])} has a NaN or infinite coordinate", path)


def _xyz(vertices: object, path: Path) -> np.ndarray:
    """A geometry's vertices as (N, 3) float64. trimesh reads an OBJ cut off inside a vertex line as
    two coordinates per vertex, which regrouped in threes would be a scrambled scan."""
    array = np.asarray(vertices, dtype=np.float64)
    if array.size and (array.ndim != 2 or array.shape[1] != 3):
        raise InputError(
            "not a readable mesh (its vertices do not have three coordinates each: truncated?)", path
        )
    return array.reshape(-1, 3)


# Bytes no text mesh file holds: control characters other than whitespace and the DOS end-of-file mark.
NOT_TEXT = re.compile(rb"[\x00-\x08\x0e-\x19\x1b-\x1f]")
TEXT_FORMATS = {".obj": "OBJ", ".off": "OFF", ".stl": "STL"}
STL_HEADER = 84  # bytes: an 80-byte title, then the triangle count
STL_TRIANGLE = 50  # bytes per triangle in a binary STL
PLY_HEADER_LIMIT = 1 << 20  # bytes searched for a PLY header's end


def _trimesh_source(path: Path) -> Path | io.BytesIO:
    """What trimesh should read: the file (PLY, binary STL), or the text already read, as UTF-8.

    First refuses, in plain words, what trimesh reports obscurely or not at all: binary data in a text
    format, a binary STL cut short, a PLY without its header, a text PLY or OFF with fewer lines than
    its header counts, a text STL without its end. Text that is not UTF-8 is decoded here as Latin-1
    (only ASCII carries meaning in these formats): trimesh would guess its encoding with
    charset_normalizer, which may not be installed.
    """
    suffix = path.suffix.lower()
    if suffix == ".ply":
        _check_ply(path)
        return path
    if suffix == ".stl" and _is_binary_stl(path):
        return path
    data = path.read_bytes()
    if NOT_TEXT.search(data):
        raise InputError(f"not a readable mesh ({_binary_data_problem(suffix, data)})", path)
    if suffix == ".off":
        _check_off_counts(data, path)
    if suffix == ".stl":
        _check_stl_text(data, path)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("latin-1").encode("utf-8")
    return io.BytesIO(data)  # the bytes already read: trimesh need not read the file again


def _is_binary_stl(path: Path) -> bool:
    """Whether an STL file is binary: as long as the triangle count in its header says."""
    with path.open("rb") as file:
        header = file.read(STL_HEADER)
    count = int.from_bytes(header[80:], "little")
    return len(header) == STL_HEADER and path.stat().st_size == STL_HEADER + STL_TRIANGLE * count


def _binary_data_problem(suffix: str, data: bytes) -> str:
    """What is wrong with a file of a text format (or an STL of neither kind) that holds binary data."""
    if suffix != ".stl":
        return f"not a text {TEXT_FORMATS[suffix]} file: it holds binary data"
    if len(data) < STL_HEADER:
        return "not an STL file: binary data, too short for a binary STL"
    count = int.from_bytes(data[80:STL_HEADER], "little")
    size = STL_HEADER + STL_TRIANGLE * count
    return (
        f"a binary STL of {count:,} triangles, as its header says, is {size:,} bytes, but the file has "
        f"{len(data):,}: truncated, or not an STL file"
    )


def _check_ply(path: Path) -> None:
    """Refuse a file that does not start as a PLY file does, whose header has no end, or (in ASCII)
    with fewer lines than its header counts elements."""
    with path.open("rb") as file:
        head = file.read(PLY_HEADER_LIMIT)
    if b"ply" not in head.split(b"\n", 1)[0]:  # the magic line trimesh checks
        raise InputError("not a readable mesh (not a PLY file: it does not begin with 'ply')", path)
    end = re.search(rb"end_header[ \t\r]*(\n|\Z)", head)
    if end is None:
        raise InputError("not a readable mesh (the PLY header has no end_header line: truncated?)", path)
    if not re.search(rb"^format +ascii", head[: end.end()], re.M):
        return
    elements = re.findall(rb"^element +(\S+) +(\d+)", head[: end.end()], re.M)
    counted = ", ".join(f"{int(n):,} {name.decode('latin-1')}" for name, n in elements)
    body = path.read_bytes()[end.end() :]
    _check_line_count(body, sum(int(n) for _, n in elements), f"elements ({counted})", path)


def _check_line_count(body: bytes, needed: int, counted: str, path: Path) -> None:
    """Refuse a text body with fewer non-blank lines than its header counts items, one a line (the file
    was cut short): trimesh drops missing faces without a word and fails obscurely on missing vertices."""
    lines = sum(1 for line in body.split(b"\n") if line.strip())
    if lines < needed:
        raise InputError(
            f"not a readable mesh (its header counts {counted}, but it has {lines:,} lines for them: "
            "truncated?)",
            path,
        )


def _check_off_counts(data: bytes, path: Path) -> None:
    """Refuse an OFF file without its header, or with fewer lines than the header counts vertices and
    faces. The header is found as trimesh finds it, at the first ``OFF`` or ``COFF``."""
    parts = re.split(rb"C?OFF", re.sub(rb"#[^\n]*", b"", data), maxsplit=1)
    if len(parts) < 2:
        raise InputError("not a readable mesh (not an OFF file: it has no OFF header)", path)
    counts_line, _, body = parts[1].lstrip().partition(b"\n")
    counts = counts_line.split()[:2]
    if len(counts) < 2 or not all(count.isdigit() for count in counts):
        raise InputError("not a readable mesh (the OFF header has no vertex and face counts)", path)
    n_vertices, n_faces = int(counts[0]), int(counts[1])
    _check_line_count(body, n_vertices + n_faces, f"{n_vertices:,} vertices and {n_faces:,} faces", path)


def _check_stl_text(data: bytes, path: Path) -> None:
    """Refuse a text STL without an ``endsolid`` line (cut short, or not an STL file): trimesh reads
    only complete solids, and would report none."""
    if not re.search(rb"endsolid", data, re.IGNORECASE):
        raise InputError("not a readable mesh (a text STL without its 'endsolid' line: truncated?)", path)


def _export_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InputError(f"unknown mesh format {path.suffix!r} (supported: {', '.join(MESH_SUFFIXES)})", path)
    return suffix[1:]


def write_mesh(path: str | Path, mesh: Mesh) -> None:
    """Write a mesh (OBJ, PLY, STL, OFF) or a point cloud (PLY, OBJ, OFF) atomically.

    trimesh writes PLY and STL coordinates as float32 and OBJ with 8 decimals, the formats' usual
    precision; use :func:`write_points_ply` for landmark points that must round-trip exactly.
    """
    path = Path(path)
    kind = _export_suffix(path)
    if mesh.faces is None:
        if kind == "stl":
            raise InputError("STL cannot hold a point cloud; use .ply", path)
        if kind == "off":  # trimesh's OFF exporter needs faces
            rows = "\n".join(" ".join(repr(float(v)) for v in p) for p in mesh.vertices)
            write_atomic(path, f"OFF\n{len(mesh.vertices)} 0 0\n{rows}\n")
            return
        geometry = trimesh.PointCloud(mesh.vertices.copy(), colors=mesh.colors)
    else:
        geometry = trimesh.Trimesh(
            vertices=mesh.vertices.copy(),
            faces=mesh.faces.copy(),
            vertex_normals=None if mesh.normals is None else mesh.normals.copy(),
            vertex_colors=mesh.colors,
            process=False,
        )
    write_atomic(path, _with_mark(geometry.export(file_type=kind), kind))


def _with_mark(data: str | bytes, kind: str) -> str | bytes:
    """The exported file with facegraph's generator mark, in the formats that hold comments."""
    if kind == "obj":
        return f"# {GENERATOR_KEY} {GENERATOR}\n{data}"
    if kind == "ply":
        header_end = data.index(b"\n", data.index(b"format ")) + 1
        return data[:header_end] + f"comment {GENERATOR_KEY} {GENERATOR}\n".encode() + data[header_end:]
    return data


def write_points_ply(path: str | Path, points: np.ndarray) -> None:
    """Write (N, 3) points, e.g. 3D landmarks, as an ASCII PLY point cloud with double coordinates.

    Written directly rather than through trimesh, whose PLY export rounds to float32.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"write_points_ply expects (N, 3) points, got {pts.shape}")
    header = ["ply", "format ascii 1.0", f"comment {GENERATOR_KEY} {GENERATOR}", f"element vertex {len(pts)}"]
    header += [f"property double {axis}" for axis in "xyz"] + ["end_header"]
    rows = [" ".join(repr(float(v)) for v in p) for p in pts]
    write_atomic(Path(path), "\n".join(header + rows) + "\n")
