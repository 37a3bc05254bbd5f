"""Teacher fits corrected by human points: each face's 3DMM parameters moved, as little as a prior
allows, until their projected keypoints agree with the points annotators placed.

This is how AFLW2000-3D's ground truth was made (a 3DMM fitted to AFLW's human points). The corrected
face is still one face of the model, so the points nobody labelled (the jaw on AFLW photos) move with
the labelled ones. Points are fitted as labelled: annotators' habits (AFLW's higher chin) go into the
fit unless the trainer first moves the points into the teacher's convention. The strength of the prior
was chosen on 300-W's training faces by ``benchmarks/refit_strength.py``: fitted to the 14 points AFLW
also labels, the other 38 inner points came closest to their annotations at 30.
"""

from __future__ import annotations

import numpy as np
import torch

from facegraph.datasets.face_crops import to_y_down
from facegraph.metrics.landmarks import landmark_box_size
from facegraph.morphable.bfm import MorphableModel

DEFAULT_STRENGTH = 30.0
HUBER_PERCENT = 2.0  # residuals beyond 2 % of the box count linearly: annotators slip
NON_CHIN_JAW = [*range(8), *range(9, 17)]  # 2D silhouette points: not where fixed keypoints project


def refit_to_points(
    params: np.ndarray,
    points: np.ndarray,
    param_std: np.ndarray,
    morphable: MorphableModel,
    strength: float = DEFAULT_STRENGTH,
    iterations: int = 60,
) -> np.ndarray:
    """(N, 62) parameters refitted to (N, 68, 2) x, y-down points (NaN: unlabelled; the jaw's
    silhouette points are ignored, the chin kept), in float32.

    The objective is a sum over faces of the pseudo-Huber loss of the point errors in percent of the
    face's box plus ``strength`` times the squared change in units of ``param_std`` (each parameter's
    spread). It is minimised for all faces at once by one L-BFGS run of ``iterations`` steps: faces do
    not interact in the objective, but they share the line search and the stopping rule."""
    device = morphable.mean.device
    start = torch.as_tensor(params, dtype=torch.float32, device=device)
    target = torch.as_tensor(points, dtype=torch.float32, device=device).clone()
    target[:, NON_CHIN_JAW] = float("nan")
    labelled = torch.isfinite(target).all(dim=-1)
    target = torch.nan_to_num(target)
    std = torch.as_tensor(param_std, dtype=torch.float32, device=device)
    with torch.no_grad():
        box = landmark_box_size(to_y_down(morphable.landmarks(start)).cpu().numpy())
    size = torch.as_tensor(box, dtype=torch.float32, device=device)[:, None]
    change = torch.zeros_like(start, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [change], max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-10
    )

    def objective() -> torch.Tensor:
        optimiser.zero_grad()
        projected = to_y_down(morphable.landmarks(start + change * std))
        error = 100 * (projected - target).norm(dim=-1) / size / HUBER_PERCENT
        fit = HUBER_PERCENT**2 * ((1 + error.square()).sqrt() - 1) * labelled
        loss = (fit.sum(1) + strength * change.square().sum(1)).sum()
        loss.backward()
        return loss

    optimiser.step(objective)
    return (start + change.detach() * std).cpu().numpy().astype(params.dtype)
