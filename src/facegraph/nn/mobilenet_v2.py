"""MobileNetV2 (Sandler et al. 2018): inverted residual blocks with linear bottlenecks.

Written here because torchvision's wheels are CUDA builds. SynergyNet regresses 3DMM parameters
from its 1280-d pooled feature; named linear heads on that feature give each output its own layer.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion, output channels, repeats, first stride) of the seven bottleneck stages at width 1.
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
FEATURE_CHANNELS = 1280


def _divisible(channels: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of 8, never more than 10 % below it (the paper's rule)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


def _conv_bn(
    in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1
) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]


class InvertedResidual(nn.Module):
    """1x1 expansion + ReLU6, 3x3 depthwise + ReLU6, 1x1 linear projection; a skip when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [*_conv_bn(in_channels, hidden, 1, 1), nn.ReLU6(inplace=True)]
        layers += [*_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += _conv_bn(hidden, out_channels, 1, 1)
        self.layers = nn.Sequential(*layers)
        self.skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x) if self.skip else self.layers(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 backbone with named linear heads on the pooled feature.

    heads: output name -> number of outputs. forward returns a dict of head outputs plus the pooled
    ``feature`` (SynergyNet's refiner reads it during training).
    """

    def __init__(self, heads: dict[str, int], width: float = 1.0, dropout: float = 0.2) -> None:
        super().__init__()
        channels = _divisible(STEM_CHANNELS * width)
        layers: list[nn.Module] = [*_conv_bn(3, channels, 3, 2), nn.ReLU6(inplace=True)]
        for expansion, out, repeats, stride in STAGES:
            out = _divisible(out * width)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out, stride if i == 0 else 1, expansion))
                channels = out
        self.feature_dim = _divisible(FEATURE_CHANNELS * max(1.0, width))
        layers += [*_conv_bn(channels, self.feature_dim, 1, 1), nn.ReLU6(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(self.feature_dim, n) for name, n in heads.items()})
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, feature_dim) pooled feature."""
        return self.body(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feature = self.features(images)
        dropped = self.dropout(feature)
        return {"feature": feature, **{name: head(dropped) for name, head in self.heads.items()}}
