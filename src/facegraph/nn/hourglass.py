"""Stacked hourglasses (Newell et al. 2016) as SPIGA's published backbone describes them.

A 256 x 256 crop plus coordinate channels (x, y and the distance from the centre, CoordConv) goes
through a stride-4 stem to a 64 x 64 map; each hourglass halves it with 2x2 strided convolutions down to
4 x 4 and doubles it back with transposed ones, adding a skip branch at every scale. Between stacks a
per-landmark heatmap head supervises the features and feeds its heatmaps back into the next stack.
The last stack's map is the visual feature the graph cascade samples; its 4 x 4 bottleneck, reduced to
one vector, is where the head pose is read.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2 if kernel % 2 else 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def up_bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels, 2, 2, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1 (cout / 2), BN-ReLU-3x3, BN-ReLU-1x1 (cout), plus x
    (through a 1x1 convolution when the width changes)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=False),
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class Hourglass(nn.Module):
    """One hourglass of ``depth`` halvings; forward gives the output map and the innermost map."""

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.skip = Residual(channels, channels)
        self.down = nn.Sequential(conv_bn_relu(channels, channels, 2, 2), Residual(channels, channels))
        self.inner = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.up = nn.Sequential(Residual(channels, channels), up_bn_relu(channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.down(x)
        if isinstance(self.inner, Hourglass):
            low, bottleneck = self.inner(low)
        else:
            low = bottleneck = self.inner(low)
        return self.skip(x) + self.up(low), bottleneck


def coordinate_channels(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C + 3, H, W): x and y in [-1, 1] and the distance from the centre appended."""
    batch, _, height, width = images.shape
    ys = torch.linspace(-1.0, 1.0, height, device=images.device, dtype=images.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=images.device, dtype=images.dtype)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    coords = torch.stack([x, y, torch.sqrt(x**2 + y**2)]).expand(batch, -1, -1, -1)
    return torch.cat([images, coords], dim=1)


class StackedHourglass(nn.Module):
    """(B, 3, S, S) -> {"features": (B, C, S/4, S/4), "heatmaps": [(B, L, S/4, S/4)] * (stacks - 1),
    "pose_feature": (B, C)}."""

    def __init__(self, stacks: int, channels: int, depth: int, landmarks: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn_relu(3 + 3, 64, 7, 2),
            Residual(64, 128),
            conv_bn_relu(128, 128, 2, 2),
            Residual(128, 128),
            Residual(128, channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels) for _ in range(stacks))
        self.outputs = nn.ModuleList(
            nn.Sequential(Residual(channels, channels), conv_bn_relu(channels, channels, 1))
            for _ in range(stacks)
        )
        self.heatmap_heads = nn.ModuleList(nn.Conv2d(channels, landmarks, 1) for _ in range(stacks - 1))
        self.heatmaps_back = nn.ModuleList(nn.Conv2d(landmarks, channels, 1) for _ in range(stacks - 1))
        self.features_back = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1))
        # the 4 x 4 bottleneck -> one vector: two 2x2 strided reductions
        self.pose_core = nn.Sequential(
            Residual(channels, channels),
            conv_bn_relu(channels, channels, 2, 2),
            Residual(channels, channels),
            conv_bn_relu(channels, channels, 2, 2),
        )

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        x = self.stem(coordinate_channels(images))
        heatmaps = []
        for k, (hourglass, output) in enumerate(zip(self.hourglasses, self.outputs, strict=True)):
            out, bottleneck = hourglass(x)
            features = output(out)
            if k < len(self.heatmap_heads):
                maps = self.heatmap_heads[k](features)
                heatmaps.append(maps)
                x = x + self.heatmaps_back[k](maps) + self.features_back[k](features)
        pose_feature = self.pose_core(bottleneck).mean(dim=(2, 3))
        return {"features": features, "heatmaps": heatmaps, "pose_feature": pose_feature}
