"""Shaded dense meshes over a photo: a triangle rasteriser in numpy with one depth buffer for all faces.

Meshes are in photo pixels (x right, y down, pixel centres at whole numbers) with z toward the viewer,
larger nearer, as ``Face.mesh_vertices`` gives them. Each face's z is measured from its own farthest
point, so depths of different faces cannot be compared directly; faces are ranked by size instead (the
larger face in the photo is taken to be the nearer), and the depth buffer compares the rank first and z
only within a face. A nearer face therefore hides a farther one wherever they overlap, and each face
hides its own far side.

Triangles are grouped by the size of their pixel bounding boxes, so that each group's candidate pixels
are one (triangles, side, side) array tested at once: no Python loop runs per triangle.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MESH_COLOUR = np.array([205.0, 215.0, 235.0])  # a pale blue-grey, shaded by the light
AMBIENT = 0.15  # the light a surface seen edge-on still gets, so that its outline stays visible
CANDIDATES_PER_CHUNK = 1 << 22  # candidate pixels tested at once (bounds the working memory)

Mesh = tuple[np.ndarray, np.ndarray]  # (V, 3) vertices, (T, 3) triangles


def vertex_shades(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V,) Lambertian shade in AMBIENT..1 of each vertex, lit from the viewer (+z), from area-weighted
    vertex normals; the mesh's winding is taken from its majority so either convention lights alike."""
    corners = vertices[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if normals[:, 2].sum() < 0:
        normals = -normals
    summed = np.stack(
        [np.bincount(triangles.ravel(), np.repeat(normals[:, k], 3), len(vertices)) for k in range(3)], axis=1
    )
    length = np.linalg.norm(summed, axis=1)
    facing = np.divide(summed[:, 2], length, out=np.zeros(len(vertices)), where=length > 0)
    return AMBIENT + (1.0 - AMBIENT) * np.clip(facing, 0.0, 1.0)


def _fragments(
    corners: np.ndarray, origin: np.ndarray, side: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (n, 3, 2) triangle corners whose pixel boxes start at ``origin`` (n, 2) and fit in
    side x side: the pixels inside (flat ids), their triangle (row of ``corners``) and the (m, 3)
    barycentric weights there."""
    h, w = size
    offsets = np.arange(side)
    xs = origin[:, 0, None, None] + offsets[None, None, :]
    ys = origin[:, 1, None, None] + offsets[None, :, None]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    def edge(p: np.ndarray, q: np.ndarray) -> np.ndarray:  # twice the signed area of (p, q, pixel)
        return (q[:, 0, None, None] - p[:, 0, None, None]) * (ys - p[:, 1, None, None]) - (
            q[:, 1, None, None] - p[:, 1, None, None]
        ) * (xs - p[:, 0, None, None])

    weights = np.stack([edge(b, c), edge(c, a), edge(a, b)], axis=-1) / area[:, None, None, None]
    inside = (weights >= 0).all(axis=-1) & (xs < w) & (ys < h) & (xs >= 0) & (ys >= 0)
    triangle, row, column = np.nonzero(inside)
    pixels = ys[triangle, row, 0] * w + xs[triangle, 0, column]
    return pixels, triangle, weights[triangle, row, column]


def _rasterise(
    corners: np.ndarray, depth: np.ndarray, shade: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every covered pixel of the (T, 3, 2) triangles: flat pixel id, triangle index, and the depth and
    shade interpolated there from the (T, 3) per-corner values."""
    h, w = size
    low = np.ceil(corners.min(axis=1)).astype(np.int64)
    high = np.floor(corners.max(axis=1)).astype(np.int64)
    low, high = np.maximum(low, 0), np.minimum(high, [w - 1, h - 1])
    extent = (high - low).max(axis=1) + 1
    u, v = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    drawn = (high >= low).all(axis=1) & (u[:, 0] * v[:, 1] != u[:, 1] * v[:, 0])  # degenerate: none
    sides = 1 << np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64)
    parts: list[tuple[np.ndarray, ...]] = []
    for side in np.unique(sides[drawn]):
        group = np.flatnonzero(drawn & (sides == side))
        step = max(1, CANDIDATES_PER_CHUNK // int(side) ** 2)
        for start in range(0, len(group), step):
            ids = group[start : start + step]
            pixels, which, weights = _fragments(corners[ids], low[ids], int(side), size)
            triangle = ids[which]
            parts.append(
                (
                    pixels,
                    triangle,
                    (weights * depth[triangle]).sum(axis=1),
                    (weights * shade[triangle]).sum(axis=1),
                )
            )
    if not parts:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty.astype(np.int64), empty, empty
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))  # type: ignore[return-value]


def render_meshes(rgb: np.ndarray, meshes: Sequence[Mesh], alpha: float = 0.75) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 photo with each (vertices, triangles) mesh drawn shaded and
    depth-tested over it, blended with weight ``alpha``; pixels no mesh covers are left as they were."""
    photo = np.asarray(rgb, dtype=np.uint8)
    size = photo.shape[:2]
    meshes = [(np.asarray(v, np.float64), np.asarray(t, np.int64)) for v, t in meshes if len(t)]
    if not meshes:
        return photo.copy()
    spans = [np.ptp(v[:, :2], axis=0).prod() for v, _ in meshes]
    rank = np.argsort(np.argsort(spans))  # 0 for the smallest face: the farthest
    corners, depth, shade, order = [], [], [], []
    for i, (vertices, triangles) in enumerate(meshes):
        corners.append(vertices[triangles][:, :, :2])
        depth.append(vertices[triangles][:, :, 2])
        shade.append(vertex_shades(vertices, triangles)[triangles])
        order.append(np.full(len(triangles), rank[i]))
    pixels, triangle, z, light = _rasterise(
        np.concatenate(corners), np.concatenate(depth), np.concatenate(shade), size
    )
    face_rank = np.concatenate(order)[triangle]
    nearest = np.lexsort((-z, -face_rank, pixels))  # per pixel: the largest face first, then the nearest
    first = np.ones(len(nearest), dtype=bool)
    first[1:] = pixels[nearest][1:] != pixels[nearest][:-1]
    winners = nearest[first]
    out = photo.reshape(-1, 3).astype(np.float64)
    drawn = pixels[winners]
    out[drawn] = (1.0 - alpha) * out[drawn] + alpha * light[winners, None] * MESH_COLOUR
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(photo.shape)
