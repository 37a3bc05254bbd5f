"""Three views (front, side, top) of a mesh or point cloud with its landmarks drawn; convention offsets."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY  # noqa: E402

MAX_SHOWN_VERTICES = 60_000
# (horizontal axis, vertical axis, depth axis toward the viewer, title) in the canonical frame.
VIEWS = ((0, 1, 2, "front (x, y)"), (2, 1, 0, "side (z, y)"), (0, 2, 1, "top (x, z)"))


def plot_mesh_landmarks(
    vertices: np.ndarray,
    landmarks: np.ndarray,
    path: str | Path,
    reference: np.ndarray | None = None,
    title: str = "",
) -> None:
    """Write a PNG with three orthographic views: surface points shaded by depth, landmarks on top.

    ``reference`` (e.g. ground truth) is drawn as open circles joined to the landmarks by lines.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if len(vertices) > MAX_SHOWN_VERTICES:
        vertices = vertices[np.random.default_rng(0).choice(len(vertices), MAX_SHOWN_VERTICES, replace=False)]
    figure, axes = plt.subplots(1, 3, figsize=(15, 5.4))
    for ax, (h, v, d, name) in zip(axes, VIEWS, strict=True):
        order = np.argsort(vertices[:, d])
        ax.scatter(
            vertices[order, h], vertices[order, v], c=vertices[order, d], s=0.6, cmap="gray", linewidths=0
        )
        if reference is not None:
            for a, b in zip(landmarks, reference, strict=True):
                ax.plot([a[h], b[h]], [a[v], b[v]], color="yellow", linewidth=0.8)
            ax.scatter(
                reference[:, h], reference[:, v], s=18, facecolors="none", edgecolors="lime", linewidths=1
            )
        ax.scatter(landmarks[:, h], landmarks[:, v], s=10, c="red", linewidths=0)
        ax.set_aspect("equal")
        ax.set_title(name)
        ax.tick_params(labelsize=7)
    _save(figure, path, title)


def plot_landmark_offsets(
    canonical: np.ndarray, offsets: np.ndarray, path: str | Path, title: str = "", labelled: int = 8
) -> None:
    """Write a PNG of convention offsets (68, 3) in mm: front and side views of the mean face's
    landmarks (dots) with an arrow from each to where the offsets move it; the ``labelled`` largest
    carry their iBUG number."""
    canonical = np.asarray(canonical, dtype=np.float64)
    moved = canonical + np.asarray(offsets, dtype=np.float64)
    largest = np.argsort(-np.linalg.norm(offsets, axis=1))[:labelled]
    figure, axes = plt.subplots(1, 2, figsize=(11, 6))
    for ax, (h, v, _, name) in zip(axes, VIEWS[:2], strict=True):
        ax.scatter(canonical[:, h], canonical[:, v], s=12, c="gray", linewidths=0, label="network's points")
        for start, end in zip(canonical, moved, strict=True):
            ax.annotate(
                "", xy=(end[h], end[v]), xytext=(start[h], start[v]),
                arrowprops={"arrowstyle": "->", "color": "crimson", "linewidth": 1.0},
            )  # fmt: skip
        ax.scatter(moved[:, h], moved[:, v], s=12, c="crimson", linewidths=0, label="with the offsets")
        for i in largest:
            point = (moved[i, h], moved[i, v])
            ax.annotate(str(i), point, fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_aspect("equal")
        ax.set_title(name + ", mm")
        ax.tick_params(labelsize=7)
    axes[0].legend(loc="lower left", fontsize=8)
    _save(figure, path, title)


def _save(figure: plt.Figure, path: str | Path, title: str) -> None:
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(Path(path)) as tmp:
        figure.savefig(tmp, dpi=110, format="png", metadata={GENERATOR_KEY: GENERATOR})
    plt.close(figure)
