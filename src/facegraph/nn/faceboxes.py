"""FaceBoxes (Zhang et al. 2017), a CPU face detector, in the layout of 3DDFA_V2's "Prod" weights.

The Rapidly Digested Convolutional Layers (RDCL: a 7x7 stride-4 and a 5x5 stride-2 convolution with
CReLU, each followed by a stride-2 max pool) shrink the photo 32 times cheaply; the Multiple Scale
Convolutional Layers (MSCL: three Inception blocks, then two 1x1 + 3x3 stride-2 pairs) give three
feature maps, at strides 32, 64 and 128, each with a 3x3 box-offset head and a 3x3 face-score head.
Module and parameter names follow the released checkpoint, so its state dict loads as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Anchors per cell of each feature map: 21 = 16 (32 px, 4x4 dense) + 4 (64 px, 2x2) + 1 (128 px).
ANCHORS_PER_CELL = (21, 1, 1)


class ConvBN(nn.Module):
    """A bias-free convolution with batch norm; ``crelu`` doubles the channels as [x, -x] (CReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, crelu: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.crelu = crelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        if self.crelu:
            x = torch.cat([x, -x], dim=1)
        return F.relu(x)


class Inception(nn.Module):
    """128 -> 128 channels: 1x1, 3x3 average pool + 1x1, 1x1 + 3x3 and 1x1 + two 3x3 branches of 32."""

    def __init__(self) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(128, 32, 1)
        self.branch1x1_2 = ConvBN(128, 32, 1)
        self.branch3x3_reduce = ConvBN(128, 24, 1)
        self.branch3x3 = ConvBN(24, 32, 3)
        self.branch3x3_reduce_2 = ConvBN(128, 24, 1)
        self.branch3x3_2 = ConvBN(24, 32, 3)
        self.branch3x3_3 = ConvBN(32, 32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.branch1x1_2(F.avg_pool2d(x, 3, stride=1, padding=1))
        single = self.branch3x3(self.branch3x3_reduce(x))
        double = self.branch3x3_3(self.branch3x3_2(self.branch3x3_reduce_2(x)))
        return torch.cat([self.branch1x1(x), pooled, single, double], dim=1)


class FaceBoxes(nn.Module):
    """(N, 3, H, W) mean-subtracted BGR -> box offsets (N, P, 4) and face probabilities (N, P).

    P is the number of prior boxes for an H x W input (``facegraph.image.faceboxes.prior_boxes``), in
    the same order: feature map by feature map, row-major cells, then the cell's anchors.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, 24, 7, stride=4, crelu=True)
        self.conv2 = ConvBN(48, 64, 5, stride=2, crelu=True)
        self.inception1 = Inception()
        self.inception2 = Inception()
        self.inception3 = Inception()
        self.conv3_1 = ConvBN(128, 128, 1)
        self.conv3_2 = ConvBN(128, 256, 3, stride=2)
        self.conv4_1 = ConvBN(256, 128, 1)
        self.conv4_2 = ConvBN(128, 256, 3, stride=2)
        channels = (128, 256, 256)
        self.loc = nn.ModuleList(
            nn.Conv2d(c, 4 * a, 3, padding=1) for c, a in zip(channels, ANCHORS_PER_CELL, strict=True)
        )
        self.conf = nn.ModuleList(
            nn.Conv2d(c, 2 * a, 3, padding=1) for c, a in zip(channels, ANCHORS_PER_CELL, strict=True)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.conv1(x), 3, stride=2, padding=1)
        x = F.max_pool2d(self.conv2(x), 3, stride=2, padding=1)
        x = self.inception3(self.inception2(self.inception1(x)))
        maps = [x]
        maps.append(self.conv3_2(self.conv3_1(maps[-1])))
        maps.append(self.conv4_2(self.conv4_1(maps[-1])))
        n = x.shape[0]
        loc = [head(m).permute(0, 2, 3, 1).reshape(n, -1, 4) for head, m in zip(self.loc, maps, strict=True)]
        conf = [
            head(m).permute(0, 2, 3, 1).reshape(n, -1, 2) for head, m in zip(self.conf, maps, strict=True)
        ]
        scores = torch.softmax(torch.cat(conf, dim=1), dim=-1)[..., 1]
        return torch.cat(loc, dim=1), scores
