"""SynergyNet (Wu et al., 3DV 2021): 3DMM parameters from a face crop, and the two point networks that
train it.

- ``SynergyNet``: MobileNetV2's 1280-d pooled feature feeds three heads, camera (12), shape (40) and
  expression (10), giving the 62 whitened 3DDFA parameters. facegraph adds a fourth head, the 68 3D
  landmarks directly (whitened), so that landmarks and pose come out without the BFM, which cannot
  ship; with the BFM the published path (parameters decoded by the model) is used.
- ``LandmarkRefiner``: a PointNet over the 68 landmarks decoded from the parameters. Each point's
  feature is joined with the max-pooled global feature, the image feature and the shape and expression
  codes; its output, x 0.05, is added to the points.
- ``LandmarksToParams``: the "reverse" PointNet regressing the 62 whitened parameters from the refined
  landmarks.

Only ``SynergyNet`` runs at inference. Points enter the point networks centred on their mean and
divided by ``POINT_SCALE`` (half the crop).
"""

from __future__ import annotations

import torch
from torch import nn

from facegraph.morphable.bfm import N_CAMERA, N_EXPRESSION, N_LANDMARKS, N_SHAPE
from facegraph.nn.mobilenet_v2 import MobileNetV2

POINT_SCALE = 60.0
REFINE_STEP = 0.05


class SynergyNet(nn.Module):
    """Crop (B, 3, 120, 120), normalised -> {"params": (B, 62), "landmarks": (B, 204), "feature": (B, 1280)}.

    Both regressions are whitened; the caller holds the statistics.
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        heads = {
            "camera": N_CAMERA,
            "shape": N_SHAPE,
            "expression": N_EXPRESSION,
            "landmarks": 3 * N_LANDMARKS,
        }
        self.backbone = MobileNetV2(heads, width=width)

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.backbone(images)
        params = torch.cat([out["camera"], out["shape"], out["expression"]], dim=1)
        return {"params": params, "landmarks": out["landmarks"], "feature": out["feature"]}


def _pointwise(channels: list[int]) -> nn.Sequential:
    """Shared per-point layers: 1x1 convolutions with batch norm and ReLU."""
    layers: list[nn.Module] = []
    for a, b in zip(channels[:-1], channels[1:], strict=True):
        layers += [nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def normalise_points(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, 3) crop-frame points -> (B, 3, P) centred and scaled, and the (B, 1, 3) centres."""
    centre = points.mean(dim=1, keepdim=True)
    return ((points - centre) / POINT_SCALE).transpose(1, 2), centre


class LandmarkRefiner(nn.Module):
    """PointNet refining (B, 68, 3) landmarks with the image feature and the shape/expression codes."""

    def __init__(self, image_dim: int, codes_dim: int = N_SHAPE + N_EXPRESSION) -> None:
        super().__init__()
        self.local = _pointwise([3, 64, 64])
        self.deep = _pointwise([64, 64, 128, 1024])
        # The first head layer acts on [point feature, context]; the context is the same for every point
        # of a face, so its share is computed once per face (the same map as one convolution).
        self.head_point = nn.Conv1d(64, 512, 1)
        self.head_context = nn.Linear(1024 + image_dim + codes_dim, 512, bias=False)
        self.head = nn.Sequential(
            nn.BatchNorm1d(512), nn.ReLU(inplace=True), _pointwise([512, 256, 128]), nn.Conv1d(128, 3, 1)
        )

    def forward(self, points: torch.Tensor, image_feature: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        x, _ = normalise_points(points)
        local = self.local(x)
        pooled = self.deep(local).max(dim=2).values
        context = self.head_context(torch.cat([pooled, image_feature, codes], dim=1))
        offsets = self.head(self.head_point(local) + context[:, :, None])
        return points + REFINE_STEP * POINT_SCALE * offsets.transpose(1, 2)


class LandmarksToParams(nn.Module):
    """PointNet regressing the 62 whitened parameters from (B, 68, 3) landmarks."""

    def __init__(self, n_params: int = N_CAMERA + N_SHAPE + N_EXPRESSION) -> None:
        super().__init__()
        self.points = _pointwise([3, 64, 64, 64, 128, 1024])
        self.head = nn.Sequential(nn.Linear(1024 + 3, 256), nn.ReLU(inplace=True), nn.Linear(256, n_params))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x, centre = normalise_points(points)
        pooled = self.points(x).max(dim=2).values
        return self.head(torch.cat([pooled, centre[:, 0] / POINT_SCALE], dim=1))


def wing_loss(
    prediction: torch.Tensor, target: torch.Tensor, omega: float = 10.0, epsilon: float = 2.0
) -> torch.Tensor:
    """Wing loss (Feng et al. 2018), averaged over every finite target coordinate."""
    error = (prediction - target).abs()
    keep = torch.isfinite(target)
    error = torch.where(keep, error, torch.zeros_like(error))
    c = omega - omega * torch.log(torch.tensor(1.0 + omega / epsilon))
    loss = torch.where(error < omega, omega * torch.log1p(error / epsilon), error - c)
    return (loss * keep).sum() / keep.sum().clamp(min=1)
