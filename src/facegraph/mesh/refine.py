"""Stage-2 landmark refinement: move each stage-1 estimate onto the original mesh.

Stage 1 predicts, for each landmark, a heat value at points sampled from the surface, trained toward
``exp(-d^2 / (2 sigma^2))`` of each point's distance ``d`` to the landmark, and estimates the landmark
from the hottest points. Stage 2 puts that estimate on the mesh itself, by one of:

- ``none``: keep the estimate (its nearest vertex is still reported);
- ``snap``: the closest point on the surface (on a triangle, not only at a vertex);
- ``euclidean``: the vertex near the estimate whose Gaussian heat profile, seen from the hottest
  sampled points, best matches (least squares) the predicted heat at those points;
- ``geodesic``: the same match with distances measured along the surface (heat method on a local
  patch), which is what the heat was defined by where the face folds (lips, nostrils, eye corners).

A point cloud (no faces) has no surface to snap to or walk on: ``snap`` and ``geodesic`` then run
``euclidean``, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import potpourri3d as pp3d
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from facegraph.types import REFINE_METHODS

N_NEAREST = 16  # candidate vertices when none lies within the search radius
MIN_PATCH_FACES = 4  # smaller geodesic patches fall back to euclidean distances
NEGLIGIBLE_SIGMAS = 4.0  # a point this many sigma away has heat exp(-8) < 4e-4: its exact distance is moot
SNAP_PAIRS = 1_000_000  # (estimate, face) pairs tested at once: bounds the memory snapping takes
DEGENERATE_AREA = 1e-12  # twice a face's area, relative to the squared bounding-box diagonal


@dataclass(frozen=True)
class RefineResult:
    """Refined landmarks: ``points`` (L, 3), the index of the mesh vertex each is at or nearest to,
    and the method actually used (``euclidean`` when ``snap``/``geodesic`` met a point cloud)."""

    points: np.ndarray
    vertex_indices: np.ndarray
    method: str


@dataclass(frozen=True)
class _Surface:
    """The mesh as refinement sees it: non-degenerate faces only, and only the vertices they use."""

    vertices: np.ndarray  # (V, 3) float64, every input vertex (indices stay the caller's)
    faces: np.ndarray | None  # (F, 3) int64 faces with three distinct corners and non-zero area
    used: np.ndarray  # (U,) indices of the vertices on those faces; every vertex for a point cloud
    tree: cKDTree  # over vertices[used]

    @classmethod
    def build(cls, vertices: np.ndarray, faces: np.ndarray | None) -> _Surface:
        kept = None if faces is None else _clean_faces(vertices, faces)
        if kept is not None and len(kept) == 0:
            kept = None
        used = (
            np.arange(len(vertices), dtype=np.int64)
            if kept is None
            else np.flatnonzero(np.bincount(kept.ravel(), minlength=len(vertices)))
        )
        return cls(vertices, kept, used, cKDTree(vertices[used]))

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """Index of the surface vertex nearest to each point."""
        _, local = self.tree.query(points)
        return self.used[np.asarray(local, dtype=np.int64)]

    def near(self, point: np.ndarray, radius: float) -> np.ndarray:
        """Indices of the surface vertices within ``radius`` of a point (sorted)."""
        return np.sort(self.used[np.asarray(self.tree.query_ball_point(point, radius), dtype=np.int64)])

    def candidates(self, point: np.ndarray, radius: float) -> np.ndarray:
        """Vertices within ``radius`` of a point, else its ``N_NEAREST`` nearest ones."""
        found = self.near(point, radius)
        if len(found):
            return found
        _, local = self.tree.query(point, k=min(N_NEAREST, len(self.used)))
        return self.used[np.atleast_1d(np.asarray(local, dtype=np.int64))]


def _clean_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """The faces with three distinct in-range corners and non-zero area (others would break a solver
    or divide by zero in the closest-point test, and add nothing to the surface)."""
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"face indices must lie in [0, {len(vertices)})")
    distinct = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[distinct]
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    doubled_area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
    diagonal = np.linalg.norm(np.ptp(vertices, axis=0)) if len(vertices) else 0.0
    return faces[doubled_area > DEGENERATE_AREA * diagonal**2]


def _incidence(faces: np.ndarray, n_vertices: int) -> sparse.csr_matrix:
    """Vertex-by-face incidence: row ``v`` lists the faces touching vertex ``v``."""
    rows = faces.ravel()
    cols = np.repeat(np.arange(len(faces)), 3)
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_vertices, len(faces))
    )


def _along(start: np.ndarray, direction: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """``start + direction * projection / |direction|^2`` row by row: a foot on an edge's line."""
    return start + direction * (projection / np.einsum("ij,ij->i", direction, direction))[:, None]


def closest_points_on_triangles(
    points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """Closest point to ``points[i]`` on triangle ``(a[i], b[i], c[i])``, all (n, 3).

    Ericson's Voronoi-region test (Real-Time Collision Detection, 5.1.5), vectorised: every region's
    answer is computed and ``np.select`` keeps the first region that holds, as the scalar test's
    early returns do. Triangles must have non-zero area, which keeps every denominator positive.
    """
    ab, ac, bc = b - a, c - a, c - b
    ap, bp, cp = points - a, points - b, points - c
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    total = va + vb + vc  # |ab x ac|^2
    inside = a + ab * (vb / total)[:, None] + ac * (vc / total)[:, None]
    regions = [
        ((d1 <= 0) & (d2 <= 0), a),  # vertex A
        ((d3 >= 0) & (d4 <= d3), b),  # vertex B
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), _along(a, ab, d1)),  # edge AB
        ((d6 >= 0) & (d5 <= d6), c),  # vertex C
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), _along(a, ac, d2)),  # edge AC
        ((va <= 0) & (d4 >= d3) & (d5 >= d6), _along(b, bc, d4 - d3)),  # edge BC
    ]
    return np.select([mask[:, None] for mask, _ in regions], [answer for _, answer in regions], inside)


def _faces_touching(
    incidence: sparse.csr_matrix, vertex_lists: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """For each list of vertices, the faces touching any of them, as (owner, face) pairs sorted by
    owner, then face."""
    starts, stops = incidence.indptr[:-1], incidence.indptr[1:]
    owners, faces = [], []
    for owner, vertices in enumerate(vertex_lists):
        lengths = stops[vertices] - starts[vertices]
        begin = np.repeat(starts[vertices] - np.cumsum(lengths) + lengths, lengths)
        faces.append(np.unique(incidence.indices[begin + np.arange(lengths.sum())]))
        owners.append(np.full(len(faces[-1]), owner, dtype=np.int64))
    return np.concatenate(owners), np.concatenate(faces)


def _snap(surface: _Surface, estimates: np.ndarray) -> np.ndarray:
    """The closest surface point to each estimate.

    The closest point is no farther than the nearest vertex (distance ``r``), and every corner of the
    triangle holding it lies within ``r`` plus that triangle's longest edge, so searching the faces
    touching vertices within ``r`` + the mesh's longest edge is exact, and local on a fine mesh. Of
    those, only faces whose bounding sphere (about the centroid) comes within ``r`` can hold it, and
    only they are tested. All estimates are searched at once, in chunks of at most ``SNAP_PAIRS``
    (estimate, face) pairs; ties go to the lowest face index.
    """
    vertices, faces = surface.vertices, surface.faces
    incidence = _incidence(faces, len(vertices))
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    longest_edge = np.sqrt(
        max(
            ((a - b) ** 2).sum(axis=1).max(),
            ((b - c) ** 2).sum(axis=1).max(),
            ((c - a) ** 2).sum(axis=1).max(),
        )
    )
    nearest_distance, _ = surface.tree.query(estimates)
    nearby = surface.tree.query_ball_point(estimates, nearest_distance + longest_edge)
    vertex_lists = [surface.used[np.asarray(found, dtype=np.int64)] for found in nearby]
    owners, touching = _faces_touching(incidence, vertex_lists)
    snapped = np.empty_like(estimates)
    bounds = np.searchsorted(owners, np.arange(len(estimates) + 1))
    first = 0
    while first < len(estimates):
        last = max(first + 1, int(np.searchsorted(bounds, bounds[first] + SNAP_PAIRS, side="right")) - 1)
        last = min(last, len(estimates))
        owner, face = owners[bounds[first] : bounds[last]], touching[bounds[first] : bounds[last]]
        corners = vertices[faces[face]]
        centroid = corners.mean(axis=1)
        sphere = np.linalg.norm(corners - centroid[:, None], axis=2).max(axis=1)
        reach = nearest_distance[owner]
        near = np.linalg.norm(estimates[owner] - centroid, axis=1) - sphere <= reach + 1e-9 * (1 + reach)
        owner, face, corners = owner[near], face[near], corners[near]
        on_faces = closest_points_on_triangles(estimates[owner], corners[:, 0], corners[:, 1], corners[:, 2])
        squared = ((on_faces - estimates[owner]) ** 2).sum(axis=1)
        order = np.lexsort((face, squared, owner))
        best = order[np.flatnonzero(np.concatenate([[True], owner[order][1:] != owner[order][:-1]]))]
        snapped[owner[best]] = on_faces[best]
        first = last
    return snapped


def _best_profile(
    candidates: np.ndarray, squared_distances: np.ndarray, heat: np.ndarray, sigma: float
) -> int:
    """The candidate whose Gaussian heat at the top points (rows of ``squared_distances``, (C, t))
    is closest in mean squared error to the predicted ``heat`` (t,)."""
    profiles = np.exp(-squared_distances / (2.0 * sigma**2))
    return int(candidates[np.argmin(((profiles - heat) ** 2).mean(axis=1))])


def _reindex(faces: np.ndarray, n_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """The vertices a set of faces uses (sorted) and the faces renumbered into that list."""
    used = np.zeros(n_vertices, dtype=bool)
    used[faces.ravel()] = True
    kept = np.flatnonzero(used)
    renumber = np.empty(n_vertices, dtype=np.int64)
    renumber[kept] = np.arange(len(kept))
    return kept, renumber[faces]


def _geodesic_squared_distances(
    surface: _Surface,
    incidence: sparse.csr_matrix,
    estimate: np.ndarray,
    top_points: np.ndarray,
    candidates: np.ndarray,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Squared surface distances (C', t) from the candidates that lie on a local patch to the top
    points, with those candidates; None when the patch cannot give them (too small, solver failure,
    non-finite distances, no candidate sharing a connected piece with a top point).

    Only distances up to ``NEGLIGIBLE_SIGMAS`` sigma matter (longer ones give the profile less heat
    than it can resolve), and a path of length ``g`` between points at distances ``a`` and ``b`` from
    the estimate stays within ``(a + b + g) / 2`` of it: the patch is the faces whose corners all lie
    that far from the estimate, and top points too far from every candidate to matter are left out
    (zero heat). Each top point stands at its nearest patch vertex. Pieces of the patch that do not
    touch (e.g. upper and lower lip) are solved separately and are infinitely far apart: the heat
    method alone would give them finite, meaningless distances.
    """
    vertices = surface.vertices
    found = _local_patch(surface, incidence, estimate, top_points, candidates, NEGLIGIBLE_SIGMAS * sigma)
    if found is None:
        return None
    patch, reachable = found
    kept, local_faces = _reindex(patch, len(vertices))

    position = np.minimum(np.searchsorted(kept, candidates), len(kept) - 1)
    on_patch = kept[position] == candidates
    candidates, local_candidates = candidates[on_patch], position[on_patch]
    if len(candidates) == 0:
        return None
    patch_vertices = vertices[kept]
    sources = np.argmin(((top_points[:, None, :] - patch_vertices[None]) ** 2).sum(axis=2), axis=1)
    sources[~reachable] = -1  # matches no vertex below, so their distances stay infinite
    distances = _heat_distances(patch_vertices, local_faces, sources, reachable, local_candidates)
    if distances is None or np.isinf(distances).all():
        return None
    # A surface path is never shorter than the straight line. The heat method's distances run a little
    # short over the short ranges used here; this bound removes much of that error.
    straight = ((vertices[candidates][:, None, :] - top_points[None]) ** 2).sum(axis=2)
    return np.maximum(distances.T**2, straight), candidates


def _local_patch(
    surface: _Surface,
    incidence: sparse.csr_matrix,
    estimate: np.ndarray,
    top_points: np.ndarray,
    candidates: np.ndarray,
    cutoff: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The patch about an estimate: its faces (F', 3) in the mesh's vertex numbers, and which top points
    (t,) can reach a candidate within ``cutoff``; None when no top point can or the patch is too small.
    See ``_geodesic_squared_distances`` for why the patch reaches as far as it does."""
    vertices, faces = surface.vertices, surface.faces
    candidate_extent = np.linalg.norm(vertices[candidates] - estimate, axis=1).max()
    source_extent = np.linalg.norm(top_points - estimate, axis=1)
    reachable = source_extent <= candidate_extent + cutoff
    if not reachable.any():
        return None
    reach = max(candidate_extent, (candidate_extent + source_extent[reachable].max() + cutoff) / 2)
    ball = surface.near(estimate, reach)
    inside = np.zeros(len(vertices), dtype=bool)
    inside[ball] = True
    touching = np.zeros(len(faces), dtype=bool)
    touching[incidence[ball].indices] = True
    patch = faces[touching]
    patch = patch[inside[patch].all(axis=1)]
    if len(patch) < MIN_PATCH_FACES:
        return None
    return patch, reachable


def _heat_distances(
    patch_vertices: np.ndarray,
    local_faces: np.ndarray,
    sources: np.ndarray,
    reachable: np.ndarray,
    local_candidates: np.ndarray,
) -> np.ndarray | None:
    """Surface distances (t, C') on a patch from each reachable top point's vertex ``sources`` to the
    candidates, by the heat method on each connected piece of the patch separately (infinite between
    pieces and from unreachable top points); None when a piece is too small or the solver fails."""
    n_vertices = len(patch_vertices)
    edges = sparse.coo_matrix(
        (np.ones(local_faces.size), (local_faces.ravel(), np.roll(local_faces, 1, axis=1).ravel())),
        shape=(n_vertices, n_vertices),
    )
    n_pieces, piece = connected_components(edges, directed=False)
    distances = np.full((len(sources), len(local_candidates)), np.inf)
    source_piece = np.where(reachable, piece[sources], -1)
    for label in np.unique(source_piece[reachable]):
        in_piece = piece[local_candidates] == label
        if not in_piece.any():
            continue
        if n_pieces == 1:
            members, piece_faces = np.arange(n_vertices), local_faces
        else:
            members, piece_faces = _reindex(local_faces[piece[local_faces[:, 0]] == label], n_vertices)
        if len(piece_faces) < MIN_PATCH_FACES:
            return None
        try:
            solver = pp3d.MeshHeatMethodDistanceSolver(patch_vertices[members], piece_faces)
            for source in np.unique(sources[source_piece == label]):
                from_source = solver.compute_distance(int(np.searchsorted(members, source)))
                reached = from_source[np.searchsorted(members, local_candidates[in_piece])]
                if not np.isfinite(reached).all():
                    return None
                distances[np.ix_(sources == source, in_piece)] = reached
        except (RuntimeError, ValueError):
            return None
    return distances


def closest_surface_points(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The closest point (P, 3) of the mesh's surface to each point (on a triangle, not only at a
    vertex); None when no face has three distinct corners and an area (the mesh is a point cloud)."""
    surface = _Surface.build(np.asarray(vertices, dtype=np.float64), faces)
    if surface.faces is None:
        return None
    return _snap(surface, np.asarray(points, dtype=np.float64))


def refine_landmarks(
    vertices: np.ndarray,
    faces: np.ndarray | None,
    estimates: np.ndarray,
    top_points: np.ndarray,
    top_heat: np.ndarray,
    sigma: float,
    method: str = "geodesic",
    radius: float | None = None,
) -> RefineResult:
    """Refine stage-1 landmark estimates on a mesh (or point cloud).

    vertices (V, 3), faces (F, 3) or None for a point cloud, estimates (L, 3); top_points (L, t, 3)
    and top_heat (L, t) are each landmark's t sampled points with the highest predicted heat and that
    heat (clipped to [0, 1] here). sigma is the target Gaussian's, in the mesh's units; radius (default
    3 sigma) bounds the candidate vertices around each estimate (``snap`` needs none: its search is
    exact). Faces with repeated corners or zero area are ignored, and so are vertices no remaining
    face uses. Raises ValueError for an unknown method or mis-shaped input.
    """
    if method not in REFINE_METHODS:
        raise ValueError(f"unknown refine method {method!r}: expected one of {', '.join(REFINE_METHODS)}")
    vertices = np.asarray(vertices, dtype=np.float64)
    estimates = np.asarray(estimates, dtype=np.float64)
    top_points = np.asarray(top_points, dtype=np.float64)
    heat = np.clip(np.asarray(top_heat, dtype=np.float64), 0.0, 1.0)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got {vertices.shape}")
    if estimates.ndim != 2 or estimates.shape[1] != 3:
        raise ValueError(f"estimates must be (L, 3), got {estimates.shape}")
    n_landmarks = len(estimates)
    if top_points.ndim != 3 or top_points.shape[::2] != (n_landmarks, 3) or top_points.shape[1] == 0:
        raise ValueError(f"top_points must be (L={n_landmarks}, t>0, 3), got {top_points.shape}")
    if heat.shape != top_points.shape[:2]:
        raise ValueError(f"top_heat must be {top_points.shape[:2]}, got {heat.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = 3.0 * sigma if radius is None else float(radius)
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")

    surface = _Surface.build(vertices, faces)
    if surface.faces is None and method in ("snap", "geodesic"):
        method = "euclidean"

    if method in ("none", "snap"):
        points = estimates.copy() if method == "none" else _snap(surface, estimates)
        return RefineResult(points, surface.nearest(points), method)

    incidence = _incidence(surface.faces, len(vertices)) if method == "geodesic" else None
    chosen = np.empty(n_landmarks, dtype=np.int64)
    for i in range(n_landmarks):
        candidates = surface.candidates(estimates[i], radius)
        matched = None
        if method == "geodesic":
            matched = _geodesic_squared_distances(
                surface, incidence, estimates[i], top_points[i], candidates, sigma
            )
        if matched is None:
            squared = ((vertices[candidates][:, None, :] - top_points[i][None]) ** 2).sum(axis=2)
            matched = (squared, candidates)
        chosen[i] = _best_profile(matched[1], matched[0], heat[i], sigma)
    return RefineResult(vertices[chosen].copy(), chosen, method)
