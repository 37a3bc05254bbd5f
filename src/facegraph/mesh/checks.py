"""Checking a scan before landmarking it: finite vertices, usable faces, and plausible units.

Problems the landmarker cannot work around raise InputError; the ones it can (outlying vertices,
degenerate faces, a mesh with no usable faces, several pieces) are handled as documented and reported
as notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facegraph.errors import InputError
from facegraph.mesh.sampling import face_normals_and_areas
from facegraph.types import Mesh

MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001, "inch": 25.4}
# A face or a head, in millimetres, is between these sizes across (the bounding-box diagonal of its
# vertices other than the outlying ones).
PLAUSIBLE_MM = (60.0, 2500.0)
MIN_POINTS = 100
# A stray vertex (a scanner's flying point, one left at the origin of a scan far from it) must not
# decide the scan's size or where the face is searched for. Outlying vertices are those more than
# OUTLIER_FACTOR times as far from the median vertex as OUTLIER_QUANTILE of all vertices are: unlike a
# bounding box, that distance ignores where the few farthest vertices lie, and the factor leaves ample
# room for the sparse extremities of real scans (shoulders, the back of a head).
OUTLIER_QUANTILE = 0.99
OUTLIER_FACTOR = 4.0


@dataclass
class CheckedScan:
    """A scan ready for the landmarker: faces None for a point cloud; ``units`` the ones it is in."""

    vertices: np.ndarray
    faces: np.ndarray | None
    units: str
    outliers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def searched(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The vertices and faces the landmarker searches, without the outlying vertices, and the index
        in ``vertices`` of each vertex kept (so that found vertex indices can be mapped back)."""
        if len(self.outliers) == 0:
            return self.vertices, self.faces, np.arange(len(self.vertices))
        kept = np.ones(len(self.vertices), dtype=bool)
        kept[self.outliers] = False
        index = np.flatnonzero(kept)
        if self.faces is None:
            return self.vertices[index], None, index
        new_index = np.cumsum(kept) - 1  # no kept face uses an outlying vertex
        return self.vertices[index], new_index[self.faces], index


def outlying_vertices(vertices: np.ndarray) -> np.ndarray:
    """Indices (sorted) of the vertices far outside the bulk of the scan (see ``OUTLIER_FACTOR``)."""
    distances = np.linalg.norm(vertices - np.median(vertices, axis=0), axis=1)
    limit = OUTLIER_FACTOR * np.quantile(distances, OUTLIER_QUANTILE)
    return np.flatnonzero(distances > limit) if limit > 0 else np.zeros(0, dtype=np.int64)


def describe_outliers(outliers: np.ndarray) -> str:
    """How many outlying vertices there are and which, e.g. "2 outlying vertices (indices 6393, 6394)"."""
    shown = ", ".join(str(int(i)) for i in outliers[:3]) + (", ..." if len(outliers) > 3 else "")
    if len(outliers) == 1:
        return f"1 outlying vertex (index {shown})"
    return f"{len(outliers)} outlying vertices (indices {shown})"


def guess_units(diagonal: float) -> str | None:
    """The unit in which a face of this bounding-box diagonal has a plausible size, if exactly one does."""
    fits = [unit for unit, mm in MM_PER_UNIT.items() if PLAUSIBLE_MM[0] <= diagonal * mm <= PLAUSIBLE_MM[1]]
    return "mm" if "mm" in fits else (fits[0] if len(fits) == 1 else None)


def settle_units(vertices: np.ndarray, units: str | None, outliers: np.ndarray) -> str:
    """The scan's units: ``units`` when given and plausible, else the ones its size says; the size is
    the bounding-box diagonal of the vertices other than the outlying ones."""
    kept = np.delete(vertices, outliers, axis=0) if len(outliers) else vertices
    diagonal = float(np.linalg.norm(np.ptp(kept, axis=0)))
    left_out = f"; that size leaves out {describe_outliers(outliers)}" if len(outliers) else ""
    if units is None:
        units = guess_units(diagonal)
        if units is None or units != "mm":
            hint = f"in {units}? " if units else ""
            raise InputError(
                f"is {diagonal:.4g} units across, not a plausible face size in millimetres ({hint}"
                f"pass --units {units or 'mm|cm|m|um|inch'} to say which units it is in){left_out}"
            )
    elif units not in MM_PER_UNIT:
        raise InputError(f"unknown units {units!r} (known: {', '.join(MM_PER_UNIT)})")
    elif not PLAUSIBLE_MM[0] <= diagonal * MM_PER_UNIT[units] <= PLAUSIBLE_MM[1]:
        size = diagonal * MM_PER_UNIT[units]
        raise InputError(
            f"in {units} the scan would be {size:.4g} mm across: not a face or a head (check --units)"
            f"{left_out}"
        )
    return units


def count_pieces(vertices: np.ndarray, faces: np.ndarray) -> int:
    """How many connected pieces the faces form, vertices at the same position counted as one (STL
    stores each triangle's corners separately, so a one-piece STL would otherwise count as many)."""
    pieces = _components(faces, len(vertices))
    if pieces > 1:
        _, welded = np.unique(vertices, axis=0, return_inverse=True)
        pieces = _components(welded.reshape(-1)[faces], int(welded.max()) + 1)
    return pieces


def _components(faces: np.ndarray, n_vertices: int) -> int:
    """How many connected pieces the faces form (vertices in no face not counted)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_vertices,) * 2)
    _, labels = connected_components(graph, directed=False)
    return len(np.unique(labels[faces]))


def check_scan(mesh: Mesh, units: str | None = None) -> tuple[CheckedScan, list[str]]:
    """Validate a scan, drop degenerate faces, set outlying vertices aside, and settle its units;
    returns the scan and notes."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    notes: list[str] = []
    if len(vertices) < MIN_POINTS:
        raise InputError(f"has {len(vertices)} vertices: too few for a face scan (at least {MIN_POINTS})")
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        raise InputError(f"vertex {int(np.flatnonzero(~finite)[0])} has a NaN or infinite coordinate")
    outliers = outlying_vertices(vertices)
    units = settle_units(vertices, units, outliers)
    faces = mesh.faces
    if faces is not None:
        faces = np.asarray(faces, dtype=np.int64)
    if len(outliers):
        note = f"ignored {describe_outliers(outliers)} far from the rest of the scan"
        if faces is not None:
            touching = np.isin(faces, outliers).any(axis=1)
            faces = faces[~touching]
            dropped = int(touching.sum())
            note += f", and the {dropped} {'face' if dropped == 1 else 'faces'} using them" if dropped else ""
        notes.append(note)
    if faces is not None:
        _, areas = face_normals_and_areas(vertices, faces)
        usable = areas > 0
        if not usable.all():
            notes.append(f"ignored {int((~usable).sum())} degenerate faces (zero area or repeated corners)")
            faces = faces[usable]
        if len(faces) == 0:
            notes.append("no usable faces: treated as a point cloud")
            faces = None
    if faces is not None:
        pieces = count_pieces(vertices, faces)
        if pieces > 1:
            notes.append(f"the mesh has {pieces} separate pieces; all were searched for the face")
    return CheckedScan(vertices, faces, units, outliers), notes
