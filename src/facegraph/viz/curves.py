"""Cumulative error distribution plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.metrics.curves import auc, ced


def plot_ced(
    curves: dict[str, np.ndarray], path: str | Path, max_error: float, title: str, xlabel: str = "NME (%)"
) -> None:
    """Write a PNG with one CED line per named error array (percent errors), AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.linspace(0.0, max_error, 400)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for label, errors in curves.items():
        errors = np.asarray(errors)
        ax.plot(
            thresholds,
            100 * ced(errors, thresholds),
            label=f"{label} (mean {errors.mean():.3f}, AUC@{max_error:g} {auc(errors, max_error):.3f})",
        )
    ax.set(xlim=(0, max_error), ylim=(0, 100), xlabel=xlabel, ylabel="faces (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={GENERATOR_KEY: GENERATOR})
    plt.close(fig)
