"""BlazeFace (Bazarevsky et al. 2019), MediaPipe's short-range face detector, as a PyTorch module.

The layout mirrors the graph of MediaPipe's ``face_detection_short_range.tflite`` (128 x 128 input) op
for op: a 5x5 stride-2 convolution (3 -> 24 channels, ReLU), then sixteen BlazeBlocks, each a 3x3
depthwise convolution and a 1x1 pointwise one (no activation between them) added to a shortcut, then
a ReLU. A block that widens the feature map pads its shortcut with zero channels at the end; a stride-2
block takes its shortcut through a 2x2 stride-2 max pool. Two 1x1 heads read the 16x16 map (88
channels, stride 8: two anchors per cell) and the 8x8 map (96 channels, stride 16: six anchors per
cell): 512 + 384 = 896 anchors, each with one face logit and sixteen regressors (box centre offset x,
y, width, height, then six keypoints x, y, in input pixels).

TensorFlow's SAME padding puts the odd pixel of a stride-2 convolution's padding at the bottom and
right; it is reproduced exactly with an explicit pad, so the outputs match the TFLite model's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SIZE = 128
REGRESSORS = 16  # box centre x, y, width, height, then six keypoints x, y
# (output channels, stride) of each BlazeBlock, in order; the first takes the stem's 24 channels.
BLOCKS = (
    (24, 1),
    (28, 1),
    (32, 2),
    (36, 1),
    (42, 1),
    (48, 2),
    (56, 1),
    (64, 1),
    (72, 1),
    (80, 1),
    (88, 1),  # the 16x16 map read by the stride-8 heads
    (96, 2),
    (96, 1),
    (96, 1),
    (96, 1),
    (96, 1),  # the 8x8 map read by the stride-16 heads
)
STEM_CHANNELS = 24
FINE_BLOCKS = 11  # blocks up to the 16x16 map
ANCHORS_STRIDE8 = 2  # anchors per cell of the 16x16 map
ANCHORS_STRIDE16 = 6  # anchors per cell of the 8x8 map


def same_padding(kernel: int, stride: int, size: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one axis: the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class BlazeBlock(nn.Module):
    """relu(shortcut + pointwise(depthwise(x))): depthwise 3x3 (stride 1 or 2), pointwise 1x1 to
    ``cout``; the shortcut is x, max-pooled 2x2 when strided, zero-padded to ``cout`` channels."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = cout - cin
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, padding=1 if stride == 1 else 0, groups=cin)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.stride == 2:
            # SAME padding of a 3x3 stride-2 kernel on an even size: none before, one after
            x = F.pad(x, (0, 1, 0, 1))
            shortcut = F.max_pool2d(shortcut, 2, 2)
        if self.extra_channels:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return F.relu(shortcut + self.pointwise(self.depthwise(x)))


class BlazeFace(nn.Module):
    """(N, 3, 128, 128) RGB scaled to [-1, 1] -> regressors (N, 896, 16) and face logits (N, 896).

    Anchors come in the TFLite model's order: the 16x16 map's cells row by row, two anchors each, then
    the 8x8 map's, six each. The logits are raw (MediaPipe clips them to +-100 before a sigmoid).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, STEM_CHANNELS, 5, 2)
        blocks, cin = [], STEM_CHANNELS
        for cout, stride in BLOCKS:
            blocks.append(BlazeBlock(cin, cout, stride))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        fine, coarse = BLOCKS[FINE_BLOCKS - 1][0], BLOCKS[-1][0]
        self.scores_stride8 = nn.Conv2d(fine, ANCHORS_STRIDE8, 1)
        self.regressors_stride8 = nn.Conv2d(fine, ANCHORS_STRIDE8 * REGRESSORS, 1)
        self.scores_stride16 = nn.Conv2d(coarse, ANCHORS_STRIDE16, 1)
        self.regressors_stride16 = nn.Conv2d(coarse, ANCHORS_STRIDE16 * REGRESSORS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        before, after = same_padding(5, 2, INPUT_SIZE)  # (1, 2) at 128
        x = F.relu(self.stem(F.pad(x, (before, after, before, after))))
        for block in self.blocks[:FINE_BLOCKS]:
            x = block(x)
        fine = x
        for block in self.blocks[FINE_BLOCKS:]:
            x = block(x)
        coarse = x
        n = x.shape[0]

        def per_anchor(head: nn.Module, features: torch.Tensor, width: int) -> torch.Tensor:
            return head(features).permute(0, 2, 3, 1).reshape(n, -1, width)

        regressors = torch.cat(
            [
                per_anchor(self.regressors_stride8, fine, REGRESSORS),
                per_anchor(self.regressors_stride16, coarse, REGRESSORS),
            ],
            dim=1,
        )
        logits = torch.cat(
            [per_anchor(self.scores_stride8, fine, 1), per_anchor(self.scores_stride16, coarse, 1)], dim=1
        )
        return regressors, logits[..., 0]
