"""Turning a mesh or a point cloud into the network's input: evenly spread surface points with normals.

The paper samples its input by Poisson-disk sampling. Here an area-weighted random oversample is thinned
on a voxel grid whose cell size is searched so that about one point survives per cell: the result is
spread as evenly as Poisson-disk sampling for this purpose, and costs a small fraction of its time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

OVERSAMPLE = 4


@dataclass
class SurfaceSample:
    """Points on a surface: positions (N, 3), unit normals (N, 3) and, for a mesh, the face of each."""

    points: np.ndarray
    normals: np.ndarray
    face_ids: np.ndarray | None


def face_normals_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (zero for degenerate faces) and areas of triangles."""
    v = np.asarray(vertices, dtype=np.float64)
    cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    double_area = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, double_area[:, None], out=np.zeros_like(cross), where=double_area[:, None] > 0)
    return normals, 0.5 * double_area


def _cell_keys(offsets: np.ndarray, cell: float) -> np.ndarray:
    """One int64 key per point naming its voxel of the given size; ``offsets`` (N, 3) are the points
    less their minimum, so never negative (truncation is then the floor)."""
    grid = (offsets / cell).astype(np.int64)
    return (grid[:, 0] * 2_097_152 + grid[:, 1]) * 2_097_152 + grid[:, 2]


def _occupied_cells(keys: np.ndarray) -> int:
    """How many distinct voxels the keys name (a plain sort: much cheaper than ``np.unique``'s)."""
    ordered = np.sort(keys)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1


def _first_in_each_cell(keys: np.ndarray) -> np.ndarray:
    """The index of each voxel's first point, in key order (what ``np.unique(..., return_index=True)``
    gives, without its stable sort)."""
    order = np.argsort(keys)
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    return np.minimum.reduceat(order, starts)


def thin_evenly(
    points: np.ndarray, n: int, rng: np.random.Generator, cell: float | None = None
) -> np.ndarray:
    """Indices of n points, at most one per voxel, the voxel size searched so that ~n voxels are occupied.

    ``cell`` is a first guess at that size (for a surface, about sqrt(area / n)).
    """
    if len(points) <= n:
        return np.arange(len(points))
    order = rng.permutation(len(points))
    shuffled = points[order]
    shuffled = shuffled - shuffled.min(axis=0)
    guess = cell if cell else np.ptp(points, axis=0).max() / np.sqrt(n)
    low, high = guess / 8, guess * 4
    chosen_size = None
    for _ in range(12):
        size = np.sqrt(low * high)
        occupied = _occupied_cells(_cell_keys(shuffled, size))
        if occupied >= n:
            chosen_size, low = size, size
            if occupied < 1.05 * n:
                break
        else:
            high = size
    best = order[:n] if chosen_size is None else order[_first_in_each_cell(_cell_keys(shuffled, chosen_size))]
    if len(best) > n:
        return rng.choice(best, n, replace=False)
    if len(best) < n:
        rest = np.setdiff1d(np.arange(len(points)), best)
        best = np.concatenate([best, rng.choice(rest, n - len(best), replace=False)])
    return best


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator | None = None
) -> SurfaceSample:
    """n points spread evenly over a triangle mesh's surface, each with its face's normal."""
    rng = rng or np.random.default_rng(0)
    normals, areas = face_normals_and_areas(vertices, faces)
    total = areas.sum()
    if not total > 0:
        raise ValueError("the mesh has no surface area")
    count = OVERSAMPLE * n
    face_ids = np.minimum(np.searchsorted(np.cumsum(areas), rng.random(count) * total), len(faces) - 1)
    u, w = rng.random((2, count))
    flip = u + w > 1
    u[flip], w[flip] = 1 - u[flip], 1 - w[flip]
    v = np.asarray(vertices, dtype=np.float64)
    a, b, c = v[faces[face_ids, 0]], v[faces[face_ids, 1]], v[faces[face_ids, 2]]
    points = a + u[:, None] * (b - a) + w[:, None] * (c - a)
    keep = thin_evenly(points, n, rng, cell=np.sqrt(total / n))
    return SurfaceSample(points[keep], normals[face_ids[keep]], face_ids[keep])


def sample_cloud(points: np.ndarray, n: int, rng: np.random.Generator | None = None) -> SurfaceSample:
    """n evenly spread points of a point cloud with normals estimated from their neighbours."""
    rng = rng or np.random.default_rng(0)
    points = np.asarray(points, dtype=np.float64)
    keep = thin_evenly(points, n, rng)
    if len(keep) < n:  # a small cloud: repeat points to fill the network's fixed input size
        keep = np.concatenate([keep, rng.choice(keep, n - len(keep), replace=True)])
    chosen = points[keep]
    return SurfaceSample(chosen, cloud_normals(points, chosen), None)


def cloud_normals(cloud: np.ndarray, at: np.ndarray, k: int = 16) -> np.ndarray:
    """Normals at points from the smallest principal axis of their k nearest cloud points."""
    k = min(k, len(cloud))
    _, idx = cKDTree(cloud).query(at, k=k)
    idx = idx.reshape(len(at), -1)
    nbrs = cloud[idx] - cloud[idx].mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(nbrs, full_matrices=False)
    return vt[:, -1, :]


def orient_outwards(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Flip all normals together when most point inwards, i.e. toward the cloud's centroid.

    A face scan seen from the front bulges toward the viewer, so its outward normals mostly point away
    from the centroid; meshes with reversed winding are made to agree with that. (PCA normals, whose
    sign is arbitrary per point, need :func:`orient_each_outwards` instead.)
    """
    outward = np.einsum("ij,ij->i", normals, points - points.mean(axis=0))
    if np.mean(outward >= 0) < 0.5:
        return -normals
    return normals


def orient_each_outwards(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Flip each normal that points toward the centroid (for PCA normals, whose sign is arbitrary)."""
    outward = np.einsum("ij,ij->i", normals, points - points.mean(axis=0))
    return np.where(outward[:, None] < 0, -normals, normals)


def knn_indices(points: np.ndarray, k: int) -> np.ndarray:
    """(N, k) indices of each point's k nearest other points (itself excluded)."""
    _, idx = cKDTree(points).query(points, k=k + 1, workers=-1)
    return idx[:, 1:].astype(np.int64)
