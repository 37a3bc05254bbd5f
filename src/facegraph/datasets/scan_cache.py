"""Synthetic scans generated once and kept in a training run's folder, so that a resumed or repeated
run reads them instead of generating them again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegraph.datasets.synthetic_faces import Augmentation, PointCache, SyntheticFaces, build_point_cache
from facegraph.io.atomic import atomic_path
from facegraph.morphable import MorphableModel

CACHE_POINTS = 16_384  # dense surface points kept per synthetic scan, thinned per use


def cached_scans(
    bfm: MorphableModel | str | Path | None,
    folder: Path,
    n_scans: int,
    seed: int,
    name: str,
    warp: float = 0.0,
    progress: bool = True,
) -> PointCache:
    """``n_scans`` synthetic scans of ``seed``, read from ``folder`` when a previous run made them."""
    warped = f"-warp{warp:g}" if warp else ""
    path = folder / f"cache-{name}-{n_scans}-seed{seed}{warped}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return PointCache(stored["points"], stored["normals"], stored["landmarks"])
    faces = SyntheticFaces(bfm, Augmentation(warp=warp))
    cache = build_point_cache(faces, n_scans, CACHE_POINTS, seed, progress=progress)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, points=cache.points, normals=cache.normals, landmarks=cache.landmarks)
    return cache
