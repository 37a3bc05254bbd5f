"""MobileNetV1 (Howard et al. 2017) at any width, as 3DDFA_V2 uses it for 3DMM regression.

Layout: a 3x3 stride-2 stem, thirteen depthwise-separable blocks, global average pooling and linear
heads. The heads are named so that one backbone can carry several outputs (3DDFA_V2 has a 62-number
parameter head and a 136-number landmark head).
"""

from __future__ import annotations

import torch
from torch import nn

# (input channels, output channels, stride) of the thirteen depthwise-separable blocks at width 1.
BLOCKS: tuple[tuple[int, int, int], ...] = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
)


class DepthwiseSeparable(nn.Module):
    """3x3 depthwise conv + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.depthwise_bn(self.depthwise(x)))
        return self.relu(self.pointwise_bn(self.pointwise(x)))


class MobileNetV1(nn.Module):
    """MobileNetV1 backbone with named linear heads on the pooled feature.

    heads: output name -> number of outputs, e.g. ``{"params": 62, "landmarks": 136}``.
    forward returns a dict of head outputs.
    """

    def __init__(self, heads: dict[str, int], width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        stem = int(32 * width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(
            *(DepthwiseSeparable(int(i * width), int(o * width), s) for i, o, s in BLOCKS)
        )
        self.feature_dim = int(BLOCKS[-1][1] * width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.heads = nn.ModuleDict({name: nn.Linear(self.feature_dim, n) for name, n in heads.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, feature_dim) pooled feature."""
        return self.pool(self.blocks(self.stem(images))).flatten(1)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feature = self.features(images)
        return {name: head(feature) for name, head in self.heads.items()}


# 3DDFA_V2's names of the thirteen blocks, in order.
_TDDFA_BLOCK_NAMES = (
    ("dw2_1", "dw2_2", "dw3_1", "dw3_2", "dw4_1", "dw4_2") + tuple(f"dw5_{i}" for i in range(1, 7)) + ("dw6",)
)


def tddfa_v2_key(key: str) -> str:
    """Rename a 3DDFA_V2 MobileNetV1 state-dict key to this module's names.

    3DDFA_V2 names the stem ``conv1``/``bn1``, the blocks ``dw2_1`` ... ``dw6`` with ``conv_dw``,
    ``bn_dw``, ``conv_sep``, ``bn_sep``, and the heads ``fc_param`` and ``fc_lm``.
    """
    key = key.removeprefix("module.")
    stem = {"conv1": "stem.0", "bn1": "stem.1"}
    head, _, rest = key.partition(".")
    if head in stem:
        return f"{stem[head]}.{rest}"
    if head in ("fc_param", "fc_lm"):
        return f"heads.{'params' if head == 'fc_param' else 'landmarks'}.{rest}"
    if head.startswith("dw"):
        index = _TDDFA_BLOCK_NAMES.index(head)
        part, _, tail = rest.partition(".")
        renamed = {
            "conv_dw": "depthwise",
            "bn_dw": "depthwise_bn",
            "conv_sep": "pointwise",
            "bn_sep": "pointwise_bn",
        }
        return f"blocks.{index}.{renamed[part]}.{tail}"
    raise KeyError(f"unexpected 3DDFA_V2 key {key!r}")
