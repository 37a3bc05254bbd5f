"""The stratified graph convolutional network of 2S-SGCN (CVIU 2024): one heatmap per landmark over points.

Each layer has a *local* branch, a graph convolution over each point's k nearest neighbours, and a
*global* branch that lets distant parts of the face talk. In the published design the global branch is
a graph convolution over the complete graph of 68 "super" points (the points nearest the mean landmark
positions); the project's configuration instead pools the whole cloud (max over points) and hands the
pooled feature to every point, which works whatever the framing of the scan.

Graph convolutions are GCNConv(improved=True) on graphs where every point has the same number of
neighbours, so the symmetric normalisation is a constant and the convolution is a weighted mean of the
neighbours and twice the point itself, followed by a linear map. That identity lets each layer run as
one sparse-matrix product with a neighbour-mean operator built once per input, without PyTorch
Geometric; on a CPU that product is much faster than gathering the neighbours' features, forward
and backward alike.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

N_INPUT_FEATURES = 6  # xyz + normal


@dataclass(frozen=True)
class SgcnConfig:
    """Architecture: hidden width, depth, neighbours per point, the global branch and the top-k decoder."""

    hidden: int = 64
    depth: int = 4
    neighbours: int = 32
    global_branch: str = "super"  # "super" (published) or "pool"
    n_landmarks: int = 68
    decode_top: int = 7
    fourier_bands: int = 0  # 0: xyz + normal as published; else sin/cos of xyz at 2^0..2^(b-1) pi added
    coarse: bool = False  # a second set of 68 channels with wide heatmaps, for finding the face

    @property
    def out_channels(self) -> int:
        return self.n_landmarks * (2 if self.coarse else 1)


def neighbour_mean_operator(neighbours: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The GCNConv(improved) aggregation on a k-regular graph as a sparse CSR matrix (B·N, B·N).

    Row i of sample b holds 1/(k + 2) at each of the point's k neighbours and 2/(k + 2) at the point
    itself: applied to the features stacked as (B·N, C) it gives (sum of neighbours + 2·self) / (k + 2).
    neighbours: (B, N, k) indices of each point's neighbours within its sample (itself excluded).
    """
    batch, n, k = neighbours.shape
    device = neighbours.device
    own = torch.arange(n, device=device).view(1, n, 1).expand(batch, -1, -1)
    offsets = (torch.arange(batch, device=device) * n).view(batch, 1, 1)
    columns, order = (torch.cat([neighbours, own], dim=2) + offsets).reshape(batch * n, k + 1).sort(dim=1)
    values = torch.where(order == k, 2.0, 1.0).to(dtype) / (k + 2.0)
    rows = torch.arange(0, batch * n * (k + 1) + 1, k + 1, device=device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            rows, columns.reshape(-1), values.reshape(-1), (batch * n, batch * n), check_invariants=False
        )


def local_convolution(x: torch.Tensor, operator: torch.Tensor) -> torch.Tensor:
    """GCNConv(improved) aggregation over the kNN graph: x (B, N, C) through ``neighbour_mean_operator``."""
    batch, n, channels = x.shape
    return (operator @ x.reshape(batch * n, channels)).reshape(batch, n, channels)


def super_point_convolution(x: torch.Tensor, super_points: torch.Tensor) -> torch.Tensor:
    """GCNConv(improved) aggregation over the complete graph of the super points, self-loops elsewhere.

    A super point averages all S super points with itself counted twice, (sum + x_i) / (S + 1);
    any other point keeps its own feature (its only edge is its self-loop).
    """
    channels = x.shape[-1]
    index = super_points.unsqueeze(-1).expand(-1, -1, channels)
    members = torch.gather(x, 1, index)
    mixed = (members.sum(dim=1, keepdim=True) + members) / (super_points.shape[1] + 1.0)
    return x.scatter(1, index, mixed)


class SgcnLayer(nn.Module):
    """One stratified layer: local and global branches, each LayerNorm + ReLU, joined by a Linear."""

    def __init__(self, in_channels: int, hidden: int, global_branch: str, residual: bool) -> None:
        super().__init__()
        self.local = nn.Linear(in_channels, hidden)
        self.global_ = nn.Linear(in_channels, hidden)
        self.local_norm = nn.LayerNorm(hidden)
        self.global_norm = nn.LayerNorm(hidden)
        self.join = nn.Linear(2 * hidden, hidden)
        self.global_branch = global_branch
        self.residual = residual

    def forward(self, x: torch.Tensor, operator: torch.Tensor, super_points: torch.Tensor) -> torch.Tensor:
        """x (B, N, C); ``operator`` from :func:`neighbour_mean_operator`; super points (B, 68) or None."""
        local = F.relu(self.local_norm(self.local(local_convolution(x, operator))))
        if self.global_branch == "super":
            glob = self.global_(super_point_convolution(x, super_points))
        else:
            glob = self.global_(x.max(dim=1, keepdim=True).values).expand(-1, x.shape[1], -1)
        glob = F.relu(self.global_norm(glob))
        out = self.join(torch.cat([local, glob], dim=-1))
        return out + x if self.residual else out


class StratifiedGcn(nn.Module):
    """Points with normals (B, N, 6) → heatmaps (B, L, N), one channel per landmark at every point.

    With ``coarse``, channels L..2L-1 are wide heatmaps of the same landmarks (B, 2L, N).
    """

    def __init__(self, config: SgcnConfig = SgcnConfig()) -> None:
        super().__init__()
        if config.global_branch not in ("super", "pool"):
            raise ValueError(f"unknown global branch {config.global_branch!r}")
        self.config = config
        widths = [N_INPUT_FEATURES + 6 * config.fourier_bands] + [config.hidden] * config.depth
        self.layers = nn.ModuleList(
            SgcnLayer(widths[i], config.hidden, config.global_branch, residual=i > 0)
            for i in range(config.depth)
        )
        self.head = nn.Linear(config.hidden, config.out_channels)

    def forward(
        self, features: torch.Tensor, neighbours: torch.Tensor, super_points: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.config.global_branch == "super" and super_points is None:
            raise ValueError("the published configuration needs the super points")
        bands = self.config.fourier_bands
        x = fourier_features(features, bands) if bands else features
        operator = neighbour_mean_operator(neighbours, x.dtype)
        for layer in self.layers:
            x = layer(x, operator, super_points)
        return self.head(x).transpose(1, 2)


def fourier_features(features: torch.Tensor, bands: int) -> torch.Tensor:
    """Append sin and cos of the coordinates at frequencies 2^0..2^(bands-1) times pi.

    Heatmaps are narrow bumps (sigma 3 mm on a 200 mm face); networks fed raw coordinates learn such
    high-frequency functions of position slowly (spectral bias), and these features remove that hurdle.
    """
    xyz = features[..., :3]
    scaled = torch.cat([xyz * (math.pi * 2.0**band) for band in range(bands)], dim=-1)
    return torch.cat([features, torch.sin(scaled), torch.cos(scaled)], dim=-1)


def decode_heatmaps(
    heat: torch.Tensor, points: torch.Tensor, top: int = 7
) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks (B, L, 3) as the softmax(heat)-weighted mean of each channel's top points.

    Returns the landmarks and the indices (B, L, top) of the points used.
    """
    values, indices = heat.topk(top, dim=-1)
    weights = torch.softmax(values, dim=-1)
    batch, n_landmarks, _ = indices.shape
    chosen = torch.gather(points, 1, indices.reshape(batch, -1, 1).expand(-1, -1, 3)).reshape(
        batch, n_landmarks, top, 3
    )
    return (weights.unsqueeze(-1) * chosen).sum(dim=2), indices


def gaussian_targets(points: torch.Tensor, landmarks: torch.Tensor, sigma: float) -> torch.Tensor:
    """Target heatmaps (B, L, N): exp(-d² / 2σ²) of the distance from each point to each landmark."""
    distances = torch.cdist(landmarks, points)
    return torch.exp(-(distances**2) / (2.0 * sigma**2))


def adaptive_wing_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    omega: float = 14.0,
    theta: float = 0.5,
    epsilon: float = 1.0,
    alpha: float = 2.1,
    foreground: float = 0.1,
    foreground_weight: float = 50.0,
) -> torch.Tensor:
    """Adaptive Wing loss (Wang et al., ICCV 2019); foreground points (target > 0.1) weigh 50·y + 1."""
    error = (prediction - target).abs()
    power = alpha - target
    ratio = theta / epsilon
    a = omega * (1.0 / (1.0 + ratio**power)) * power * ratio ** (power - 1.0) / epsilon
    c = theta * a - omega * torch.log1p(ratio**power)
    loss = torch.where(error < theta, omega * torch.log1p((error / epsilon) ** power), a * error - c)
    weight = torch.where(target > foreground, foreground_weight * target + 1.0, torch.ones_like(target))
    return (weight * loss).mean()
