"""Checking a scan before landmarking it: finite vertices, usable faces, and plausible units.

Problems the landmarker cannot work around raise InputError; the ones it can (degenerate faces, a
mesh with no usable faces, several pieces) are handled as documented and reported as notes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facegraph.errors import InputError
from facegraph.mesh.sampling import face_normals_and_areas
from facegraph.types import Mesh

MM_PER_UNIT = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001, "inch": 25.4}
# A face or a head, in millimetres, is between these sizes across (bounding-box diagonal).
PLAUSIBLE_MM = (60.0, 2500.0)
MIN_POINTS = 100


@dataclass
class CheckedScan:
    """A scan ready for the landmarker: faces None for a point cloud; ``units`` the ones it is in."""

    vertices: np.ndarray
    faces: np.ndarray | None
    units: str


def guess_units(diagonal: float) -> str | None:
    """The unit in which a face of this bounding-box diagonal has a plausible size, if exactly one does."""
    fits = [unit for unit, mm in MM_PER_UNIT.items() if PLAUSIBLE_MM[0] <= diagonal * mm <= PLAUSIBLE_MM[1]]
    return "mm" if "mm" in fits else (fits[0] if len(fits) == 1 else None)


def check_scan(mesh: Mesh, units: str | None = None) -> tuple[CheckedScan, list[str]]:
    """Validate a scan, drop degenerate faces, and settle its units; returns the scan and notes."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    notes: list[str] = []
    if len(vertices) < MIN_POINTS:
        raise InputError(f"has {len(vertices)} vertices: too few for a face scan (at least {MIN_POINTS})")
    finite = np.isfinite(vertices).all(axis=1)
    if not finite.all():
        raise InputError(f"vertex {int(np.flatnonzero(~finite)[0])} has a NaN or infinite coordinate")
    diagonal = float(np.linalg.norm(np.ptp(vertices, axis=0)))
    if units is None:
        units = guess_units(diagonal)
        if units is None or units != "mm":
            hint = f"in {units}? " if units else ""
            raise InputError(
                f"is {diagonal:.4g} units across, not a plausible face size in millimetres ({hint}"
                f"pass --units {units or 'mm|cm|m|um|inch'} to say which units it is in)"
            )
    elif units not in MM_PER_UNIT:
        raise InputError(f"unknown units {units!r} (known: {', '.join(MM_PER_UNIT)})")
    elif not PLAUSIBLE_MM[0] <= diagonal * MM_PER_UNIT[units] <= PLAUSIBLE_MM[1]:
        size = diagonal * MM_PER_UNIT[units]
        raise InputError(
            f"in {units} the scan would be {size:.4g} mm across: not a face or a head (check --units)"
        )
    faces = mesh.faces
    if faces is not None:
        faces = np.asarray(faces, dtype=np.int64)
        _, areas = face_normals_and_areas(vertices, faces)
        usable = areas > 0
        if not usable.all():
            notes.append(f"ignored {int((~usable).sum())} degenerate faces (zero area or repeated corners)")
            faces = faces[usable]
        if len(faces) == 0:
            notes.append("no usable faces: treated as a point cloud")
            faces = None
    if faces is not None:
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2)
        used = np.zeros(len(vertices), dtype=bool)
        used[faces] = True
        _, labels = connected_components(graph, directed=False)
        pieces = len(np.unique(labels[used]))
        if pieces > 1:
            notes.append(f"the mesh has {pieces} separate pieces; all were searched for the face")
    return CheckedScan(vertices, faces, units), notes
