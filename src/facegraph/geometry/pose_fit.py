"""Head pose from 2D landmarks: the rigid 3D mean face posed so that its pinhole projection meets them.

SPIGA's pose head is trained on such fits (the field's practice: POSIT or PnP against a mean face).
Only landmarks that sit on fixed points of the face are fitted (``RIGID_POINTS``: brows, eye corners,
nose, mouth corners and lip middles, chin); the jaw contour is a silhouette that slides over the face as
it turns. The fit is batched Levenberg-Marquardt on the reprojection error, started from three yaws
(facing left, front, right) and keeping the best, so that profiles do not settle in the mirror pose.
"""

from __future__ import annotations

import torch

from facegraph.geometry.pinhole import project

# 0-based iBUG-68 indices: brows (outer, middle, inner), eye corners, nose tip and wings, mouth
# corners and lip middles, chin.
RIGID_POINTS = (17, 19, 21, 22, 24, 26, 36, 39, 42, 45, 30, 31, 35, 48, 51, 54, 57, 8)
START_YAWS = (-60.0, 0.0, 60.0)
STEP = (1e-2, 1e-2, 1e-2, 1e-4, 1e-4, 1e-4)  # finite-difference steps: degrees, then model units


def fit_pose(
    points: torch.Tensor,
    shape: torch.Tensor,
    focal: float,
    visible: torch.Tensor | None = None,
    iterations: int = 30,
    start_yaws: tuple[float, ...] | torch.Tensor = START_YAWS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, 2) unit crop points and the (L, 3) mean face -> (B, 6) poses [yaw, pitch, roll, tx, ty,
    tz] and (B,) RMS reprojection errors (unit coordinates) over the rigid points used.

    ``visible`` (B, L) marks the points to use (all by default); hidden ones are left out.
    ``start_yaws``: the yaws every face starts from (the best fit is kept), or a (B,) tensor, one start
    per face (a yaw known roughly, such as the same face's before augmentation)."""
    points, shape = points.double(), shape.double()
    index = torch.tensor(RIGID_POINTS, device=points.device)
    target, model = points[:, index], shape[index]
    weight = torch.ones(target.shape[:2], dtype=points.dtype, device=points.device)
    if visible is not None:
        weight = visible[:, index].to(points.dtype)
    best_pose, best_error = None, None
    starts = [start_yaws.to(points)] if isinstance(start_yaws, torch.Tensor) else start_yaws
    for yaw in starts:
        pose = _start(target, weight, model, focal, yaw)
        pose = _levenberg_marquardt(pose, target, weight, model, focal, iterations)
        error = _rms(pose, target, weight, model, focal)
        if best_pose is None:
            best_pose, best_error = pose, error
        else:
            better = error < best_error
            best_pose = torch.where(better[:, None], pose, best_pose)
            best_error = torch.where(better, error, best_error)
    return best_pose.float(), best_error.float()


def _start(
    target: torch.Tensor, weight: torch.Tensor, model: torch.Tensor, focal: float, yaw: float | torch.Tensor
) -> torch.Tensor:
    """A pose with the given yaw at the distance and offset that match the points' spread and centre."""
    total = weight.sum(dim=1).clamp_min(1)
    centre = (target * weight[..., None]).sum(dim=1) / total[:, None]
    spread = ((target - centre[:, None]).norm(dim=-1) * weight).sum(dim=1) / total
    model_spread = (model[:, :2] - model[:, :2].mean(dim=0)).norm(dim=-1).mean()
    distance = focal * model_spread / spread.clamp_min(1e-6)
    pose = torch.zeros(target.shape[0], 6, dtype=target.dtype, device=target.device)
    pose[:, 0] = yaw
    pose[:, 3] = (centre[:, 0] - 0.5) * distance / focal
    pose[:, 4] = -(centre[:, 1] - 0.5) * distance / focal
    pose[:, 5] = distance
    return pose


def _residuals(
    pose: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, model: torch.Tensor, focal: float
):
    return ((project(model, pose, focal) - target) * weight[..., None].sqrt()).flatten(1)


def _rms(pose: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, model: torch.Tensor, focal: float):
    squared = (_residuals(pose, target, weight, model, focal) ** 2).sum(dim=1)
    return (squared / weight.sum(dim=1).clamp_min(1)).sqrt()


def _levenberg_marquardt(
    pose: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    model: torch.Tensor,
    focal: float,
    iterations: int,
) -> torch.Tensor:
    """Minimise the weighted reprojection error from ``pose``, each face with its own damping."""
    damping = torch.full((pose.shape[0],), 1e-3, dtype=pose.dtype, device=pose.device)
    steps = torch.tensor(STEP, dtype=pose.dtype, device=pose.device)
    eye = torch.eye(6, dtype=pose.dtype, device=pose.device)
    for _ in range(iterations):
        residual = _residuals(pose, target, weight, model, focal)
        columns = [
            (_residuals(pose + steps[k] * eye[k], target, weight, model, focal) - residual) / steps[k]
            for k in range(6)
        ]
        jacobian = torch.stack(columns, dim=-1)  # (B, R, 6)
        normal = jacobian.transpose(1, 2) @ jacobian
        gradient = jacobian.transpose(1, 2) @ residual[..., None]
        scaled = normal + damping[:, None, None] * torch.diag_embed(normal.diagonal(dim1=1, dim2=2) + 1e-9)
        delta = -torch.linalg.solve(scaled, gradient)[..., 0]
        trial = pose + delta
        improved = (_residuals(trial, target, weight, model, focal) ** 2).sum(dim=1) < (residual**2).sum(
            dim=1
        )
        pose = torch.where(improved[:, None], trial, pose)
        damping = torch.where(improved, damping / 3, damping * 4).clamp(1e-9, 1e9)
    return pose
