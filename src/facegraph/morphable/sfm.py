"""The Surrey Face Model (SFM) shape PCA model from the eos project, read without eos or cereal.

``sfm_shape_3448.bin`` is a cereal binary archive (little-endian) of eos's ``MorphableModel``:

- ``uint32`` class version of ``MorphableModel`` (1-4; the public SFM file is version 1);
- the shape ``PcaModel``: ``mean`` (3V x 1), ``orthonormal_pca_basis`` (3V x K), ``eigenvalues`` (K x 1),
  each an Eigen float matrix written as ``int32`` rows, ``int32`` cols and rows * cols ``float32``
  in column-major order, then ``triangle_list`` as a ``uint64`` count and count x 3 ``int32``
  (0-based vertex indices);
- the colour ``PcaModel`` in the same layout (empty in the shape-only SFM);
- version 1 ends with ``texture_coordinates``: a ``uint64`` count and count x 2 ``float64``. Later versions
  insert an expression model and landmark definitions before it; those sections are not read, so only
  version-1 files are checked to end exactly where the archive does.

``expression_blendshapes_3448.bin`` is a cereal binary ``std::vector<Blendshape>``: a ``uint64`` count,
then for each a name (``uint64`` length and UTF-8 bytes) and its deformation (an Eigen float matrix,
3V x 1), added to a shape as ``shape + weight * deformation``.

Vertices are interleaved ``x0, y0, z0, x1, ...``, in millimetres, in a right-handed frame with x toward
the subject's left (the viewer's right), y up and z toward the viewer. Eigenvalues are variances in mm^2.
"""

from __future__ import annotations

import struct
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegraph.errors import InputError

N_IBUG_LANDMARKS = 68
_KNOWN_VERSIONS = range(1, 5)
_ORTHONORMAL_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class PcaShapeModel:
    """A linear shape model: ``mean + basis @ (coefficients * sqrt(eigenvalues))``.

    ``basis`` is orthonormal (its columns are unit eigenvectors), so coefficients are in standard-deviation
    units: a coefficient of 1 moves the shape one standard deviation along that component.
    """

    mean: np.ndarray
    basis: np.ndarray
    eigenvalues: np.ndarray
    triangles: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        basis = np.asarray(self.basis, dtype=np.float64)
        eigenvalues = np.asarray(self.eigenvalues, dtype=np.float64).reshape(-1)
        triangles = np.asarray(self.triangles, dtype=np.int64)
        if mean.ndim != 2 or mean.shape[1] != 3:
            raise ValueError(f"mean must be (V, 3), got {mean.shape}")
        if basis.shape != (3 * len(mean), len(eigenvalues)):
            raise ValueError(f"basis must be ({3 * len(mean)}, {len(eigenvalues)}), got {basis.shape}")
        if triangles.ndim != 2 or triangles.shape[1] != 3:
            raise ValueError(f"triangles must be (F, 3), got {triangles.shape}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "eigenvalues", eigenvalues)
        object.__setattr__(self, "triangles", triangles)

    def sample(self, coefficients: np.ndarray) -> np.ndarray:
        """(V, 3) vertices for coefficients in standard deviations; missing trailing ones count as 0."""
        coefficients = np.asarray(coefficients, dtype=np.float64)
        n_components = len(self.eigenvalues)
        if coefficients.ndim != 1 or len(coefficients) > n_components:
            raise ValueError(f"expected at most {n_components} coefficients, got shape {coefficients.shape}")
        used = len(coefficients)
        offset = self.basis[:, :used] @ (coefficients * np.sqrt(self.eigenvalues[:used]))
        return self.mean + offset.reshape(-1, 3)

    def random(
        self, rng: np.random.Generator, n_components: int | None = None, scale: float = 1.0
    ) -> np.ndarray:
        """(V, 3) vertices of a random face: the first ``n_components`` coefficients ~ N(0, scale^2)."""
        count = len(self.eigenvalues) if n_components is None else n_components
        return self.sample(rng.normal(0.0, scale, size=count))


class _Archive:
    """Sequential little-endian reads from an in-memory cereal binary archive; truncation is an InputError."""

    def __init__(self, data: bytes, path: Path, kind: str) -> None:
        self.data = data
        self.path = path
        self.kind = kind  # what the file should be, for messages: "eos model", "eos blendshapes"
        self.offset = 0

    def take(self, n_bytes: int, what: str) -> int:
        """Consumes ``n_bytes`` and returns where they start."""
        start = self.offset
        if n_bytes > len(self.data) - start:
            raise InputError(
                f"truncated {self.kind}: {what} needs {n_bytes} bytes at offset {start}, "
                f"{len(self.data) - start} left",
                self.path,
            )
        self.offset += n_bytes
        return start

    def scalar(self, fmt: str, what: str) -> int:
        return struct.unpack_from(fmt, self.data, self.take(struct.calcsize(fmt), what))[0]

    def eigen_matrix(self, what: str) -> np.ndarray:
        """An Eigen float matrix: int32 rows, int32 cols, column-major float32 data."""
        rows, cols = self.scalar("<i", what), self.scalar("<i", what)
        if rows < 0 or cols < 0:
            raise InputError(f"not an eos model: {what} has size {rows} x {cols}", self.path)
        start = self.take(4 * rows * cols, what)
        data = np.frombuffer(self.data, dtype="<f4", count=rows * cols, offset=start)
        return data.reshape(cols, rows).T.astype(np.float64)

    def int3_list(self, what: str) -> np.ndarray:
        count = self.scalar("<Q", what)
        start = self.take(12 * count, what)
        flat = np.frombuffer(self.data, dtype="<i4", count=3 * count, offset=start)
        return flat.reshape(-1, 3).astype(np.int64)

    def skip_pca_model(self, what: str) -> None:
        for field in ("mean", "basis", "eigenvalues"):
            self.eigen_matrix(f"{what} {field}")
        self.int3_list(f"{what} triangles")


def _orthonormal(basis: np.ndarray) -> bool:
    gram = basis.T @ basis
    return bool(np.abs(gram - np.eye(len(gram))).max() < _ORTHONORMAL_TOLERANCE)


def _shape_model(archive: _Archive) -> PcaShapeModel:
    """Reads and checks the shape PcaModel; a basis stored rescaled by sqrt(eigenvalues) is normalised."""
    path = archive.path
    mean = archive.eigen_matrix("shape mean")
    basis = archive.eigen_matrix("shape basis")
    eigenvalues = archive.eigen_matrix("shape eigenvalues")
    triangles = archive.int3_list("shape triangles")
    if mean.shape[1] != 1 or len(mean) == 0 or len(mean) % 3:
        raise InputError(f"not an eos model: shape mean is {mean.shape}, expected (3V, 1)", path)
    n_components = basis.shape[1]
    if basis.shape[0] != len(mean) or n_components == 0 or eigenvalues.shape != (n_components, 1):
        raise InputError(
            f"not an eos model: basis {basis.shape} and eigenvalues {eigenvalues.shape} "
            f"do not fit a mean of {len(mean)}",
            path,
        )
    eigenvalues = eigenvalues[:, 0]
    if not np.all(np.isfinite(eigenvalues) & (eigenvalues > 0)):
        raise InputError("not an eos model: shape eigenvalues must be positive", path)
    n_vertices = len(mean) // 3
    if len(triangles) == 0 or triangles.min() < 0 or triangles.max() >= n_vertices:
        raise InputError(f"not an eos model: shape triangles must index 0..{n_vertices - 1}", path)
    if not _orthonormal(basis):
        basis = basis / np.sqrt(eigenvalues)
        if not _orthonormal(basis):
            raise InputError("not an eos model: shape basis is neither orthonormal nor rescaled", path)
    return PcaShapeModel(mean.reshape(-1, 3), basis, eigenvalues, triangles)


def _open_archive(path: str | Path, kind: str) -> _Archive:
    """The file's bytes as an archive of ``kind``; an unreadable file is an InputError naming it."""
    path = Path(path)
    try:
        return _Archive(path.read_bytes(), path, kind)
    except OSError as exc:
        raise InputError(f"cannot read {kind} ({exc.strerror or exc})", path) from None


def load_sfm(path: str | Path) -> PcaShapeModel:
    """The shape model of an eos ``MorphableModel`` file such as ``sfm_shape_3448.bin``.

    InputError (naming the file) when it is missing, truncated or not an eos cereal binary model.
    """
    archive = _open_archive(path, "eos model")
    path, data = archive.path, archive.data
    version = archive.scalar("<I", "version")
    if version not in _KNOWN_VERSIONS:
        raise InputError(f"not an eos model: MorphableModel version {version}, expected 1 to 4", path)
    model = _shape_model(archive)
    archive.skip_pca_model("colour model")
    if version == 1:
        count = archive.scalar("<Q", "texture coordinates")
        archive.take(16 * count, "texture coordinates")
        if archive.offset != len(data):
            trailing = len(data) - archive.offset
            raise InputError(f"not an eos model: {trailing} unexpected trailing bytes", path)
    return model


MAX_BLENDSHAPE_NAME = 256  # bytes: a longer name means the file is not a blendshape archive


def load_sfm_blendshapes(path: str | Path, n_vertices: int) -> dict[str, np.ndarray]:
    """Expression blendshapes (name -> (V, 3) deformation in mm) of an eos file such as
    ``expression_blendshapes_3448.bin``, for a model of ``n_vertices`` vertices.

    InputError (naming the file) when it is missing, truncated, not a blendshape archive, or made for a
    model of another size.
    """
    archive = _open_archive(path, "eos blendshapes")
    path, data = archive.path, archive.data
    blendshapes = {}
    for i in range(archive.scalar("<Q", "blendshape count")):
        length = archive.scalar("<Q", f"blendshape {i} name")
        if length > MAX_BLENDSHAPE_NAME:
            raise InputError(f"not an eos blendshape file: blendshape {i} has a {length}-byte name", path)
        start = archive.take(length, f"blendshape {i} name")
        try:
            name = data[start : start + length].decode()
        except UnicodeDecodeError:
            raise InputError(f"not an eos blendshape file: blendshape {i}'s name is not text", path) from None
        if name in blendshapes:
            raise InputError(f"not an eos blendshape file: two blendshapes are named {name!r}", path)
        deformation = archive.eigen_matrix(f"blendshape {name!r}")
        if not np.isfinite(deformation).all():
            raise InputError(f"blendshape {name!r} has NaN or infinite values", path)
        if deformation.shape != (3 * n_vertices, 1):
            raise InputError(
                f"blendshape {name!r} is {deformation.shape}, expected ({3 * n_vertices}, 1) for a"
                f" {n_vertices}-vertex model",
                path,
            )
        blendshapes[name] = deformation.reshape(-1, 3)
    if archive.offset != len(data):
        raise InputError(f"not an eos blendshape file: {len(data) - archive.offset} trailing bytes", path)
    return blendshapes


def read_ibug_mapping(path: str | Path) -> dict[int, int]:
    """0-based iBUG-68 landmark index -> model vertex index, from eos's TOML ``[landmark_mappings]``.

    The file numbers iBUG landmarks from 1 (as the iBUG annotations do); they are shifted to 0-based here
    to index 68-point arrays directly.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            table = tomllib.load(file).get("landmark_mappings")
    except OSError as exc:
        raise InputError(f"cannot read landmark mapping ({exc.strerror or exc})", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not a TOML landmark mapping ({exc})", path) from None
    if not isinstance(table, dict) or not table:
        raise InputError("no [landmark_mappings] table", path)
    mapping = {}
    for key, vertex in table.items():
        if not (key.isascii() and key.isdigit()) or not 1 <= int(key) <= N_IBUG_LANDMARKS:
            raise InputError(f"landmark {key!r} is not an iBUG number 1..{N_IBUG_LANDMARKS}", path)
        if isinstance(vertex, bool) or not isinstance(vertex, int) or vertex < 0:
            raise InputError(f"landmark {key} maps to {vertex!r}, not a vertex index", path)
        mapping[int(key) - 1] = vertex
    return mapping
