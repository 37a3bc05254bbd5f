"""SPIGA (Prados-Torreblanca et al., BMVC 2022): 2D landmarks and head pose from a face crop.

A CNN gives a visual feature map and, from its deepest features, the head pose (yaw, pitch, roll in
degrees; a translation). The rigid 3D mean face, posed so and projected through a pinhole camera, gives
the initial 68 landmarks. A cascade of steps then moves them: each step describes every landmark by a
visual feature (a 7 x 7 window of the map around it, the window halving each step, convolved to one
vector) plus a shape feature (its offsets to every other landmark, through an MLP), lets the 68 nodes
attend to one another through stacked graph-attention layers and regresses a bounded offset per node.

Coordinates are unit crop coordinates: (0, 0) the crop's top-left corner, (1, 1) its bottom-right, x
right and y down. The pose follows ``facegraph.geometry.pose`` (model -> camera rotation
``Rx(-pitch) Ry(-yaw) Rz(-roll)``, x right, y up, z toward the viewer); the camera sits on the crop's
centre looking down -z with focal length ``SpigaConfig.focal`` crop widths, and the translation is the
mean face's origin in camera coordinates, (tx, ty, -tz). No file I/O: the mean face is a constructor
argument kept as a buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegraph.geometry.pinhole import project
from facegraph.nn.graph_attention import GraphAttention
from facegraph.nn.hourglass import StackedHourglass
from facegraph.nn.mobilenet_v2 import MobileNetV2

N_LANDMARKS = 68
POSE_SIZE = 6  # yaw, pitch, roll (degrees), tx, ty, tz
# The pose head's outputs are scaled by these, so that its initial, near-zero outputs mean a frontal
# face at the typical distance and each entry varies over about one unit.
POSE_SCALE = (30.0, 30.0, 30.0, 0.1, 0.1, 0.3)


@dataclass(frozen=True)
class SpigaConfig:
    """A SPIGA configuration. ``backbone``: "hourglass" (the paper's) or "mobilenet" (MobileNetV2 with a
    small feature pyramid, the package's own image network, for CPUs). Windows and offsets are in unit
    crop coordinates."""

    name: str
    backbone: str
    input_size: int
    map_channels: int
    node_dim: int
    hidden_dim: int
    steps: int = 3
    layers: int = 4
    heads: int = 4
    window_samples: int = 7
    first_window: float = 0.25  # window side at the first step; it halves each step
    focal: float = 1.5  # crop widths
    stacks: int = 4  # hourglass only
    width: float = 1.0  # MobileNetV2 only

    def window(self, step: int) -> float:
        return self.first_window / 2**step


CONFIGS = {
    "spiga-paper": SpigaConfig(
        "spiga-paper", "hourglass", input_size=256, map_channels=256, node_dim=512, hidden_dim=256
    ),
    "spiga-fast": SpigaConfig(
        "spiga-fast", "mobilenet", input_size=120, map_channels=32, node_dim=128, hidden_dim=128
    ),
}


class PyramidMobileNet(nn.Module):
    """MobileNetV2's inverted-residual stages with a top-down pyramid: (B, 3, S, S) -> {"features": (B,
    C, S/4, S/4), "heatmaps": [(B, L, S/4, S/4)], "pose_feature": (B, 320 x width)}. Its body is laid out
    as SynergyNet's without the final 1x1 widening, so SynergyNet's trained weights can start it."""

    STRIDE_OUTPUTS = (5, 8, 15)  # body layers after which the stride-4, 8 and 16 maps come out
    STAGE_LAYERS = 20  # the stem and the inverted-residual stages; SynergyNet's 1x1 widening follows

    def __init__(self, channels: int, landmarks: int, width: float = 1.0) -> None:
        super().__init__()
        self.body = MobileNetV2({}, width=width).body[: self.STAGE_LAYERS]
        widths = [self.body[i].layers[-1].num_features for i in self.STRIDE_OUTPUTS]
        self.lateral = nn.ModuleList(nn.Conv2d(w, channels, 1) for w in widths)
        self.smooth = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.heatmap_head = nn.Conv2d(channels, landmarks, 1)
        self.pose_dim = self.body[-1].layers[-1].num_features

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        taps, x = [], images
        for index, layer in enumerate(self.body):
            x = layer(x)
            if index in self.STRIDE_OUTPUTS:
                taps.append(x)
        top = self.lateral[-1](taps[-1])
        for tap, lateral in zip(taps[-2::-1], list(self.lateral)[-2::-1], strict=True):
            top = lateral(tap) + F.interpolate(top, size=tap.shape[-2:], mode="bilinear", align_corners=False)
        features = self.smooth(top)
        return {
            "features": features,
            "heatmaps": [self.heatmap_head(features)],
            "pose_feature": x.mean(dim=(2, 3)),
        }


def sample_windows(features: torch.Tensor, points: torch.Tensor, side: float, samples: int) -> torch.Tensor:
    """(B, C, H, W) map, (B, L, 2) unit points -> (B * L, C, samples, samples): a square window of
    ``side`` (unit coordinates) around each point, sampled bilinearly (the map's border beyond it)."""
    batch, count = points.shape[:2]
    steps = torch.linspace(-side / 2, side / 2, samples, device=points.device, dtype=points.dtype)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    offsets = torch.stack([dx, dy], dim=-1)  # (samples, samples, 2)
    grid = points[:, :, None, None, :] + offsets  # (B, L, s, s, 2), unit coordinates
    grid = (2 * grid - 1).reshape(batch, count * samples, samples, 2)  # grid_sample's [-1, 1] frame
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    channels = features.shape[1]
    return (
        sampled.view(batch, channels, count, samples, samples)
        .transpose(1, 2)
        .reshape(-1, channels, samples, samples)
    )


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with layer norm and ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if k < len(widths) - 2:
            layers += [nn.LayerNorm(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class CascadeStep(nn.Module):
    """One step: landmarks (B, L, 2) -> offsets (B, L, 2), each coordinate within +-``max_offset``,
    and the attention weights of its graph layers."""

    def __init__(self, config: SpigaConfig, landmarks: int, window: float) -> None:
        super().__init__()
        self.window, self.samples, self.max_offset = window, config.window_samples, window / 2
        self.visual = nn.Conv2d(config.map_channels, config.node_dim, config.window_samples)
        self.shape = mlp([2 * (landmarks - 1), config.hidden_dim, config.hidden_dim, config.node_dim])
        dims = [config.node_dim] + [config.hidden_dim] * config.layers
        self.graph = nn.ModuleList(
            GraphAttention(a, config.heads, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        h = config.hidden_dim
        self.decoder = mlp([h, h, h // 2, h // 4, h // 8, 2])
        others = ~torch.eye(landmarks, dtype=torch.bool)
        self.register_buffer("others", others, persistent=False)

    def forward(
        self, features: torch.Tensor, points: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, count = points.shape[:2]
        windows = sample_windows(features, points, self.window, self.samples)
        visual = self.visual(windows).view(batch, count, -1)
        relative = (points[:, :, None, :] - points[:, None, :, :])[:, self.others].view(batch, count, -1)
        nodes = visual + self.shape(relative)
        attention = []
        for layer in self.graph:
            nodes, weights = layer(nodes)
            attention.append(weights)
        return F.hardtanh(self.decoder(nodes)) * self.max_offset, attention


class Spiga(nn.Module):
    """Normalised crops (B, 3, S, S) -> {"pose": (B, 6), "initial": (B, L, 2), "steps": [(B, L, 2)] per
    cascade step (the last is the answer), "heatmaps": [(B, L, S/4, S/4)], "attention": [...]}.

    ``mean_face``: (L, 3) in the model frame (x right, y up, z toward the viewer); ``distance``: the
    typical tz, where the pose head's zero output puts the face. ``forward(crops, initial=...)`` starts
    the cascade from given landmarks instead of the posed mean face (another model's points).
    """

    def __init__(self, config: SpigaConfig, mean_face: torch.Tensor, distance: float) -> None:
        super().__init__()
        self.config = config
        landmarks = mean_face.shape[0]
        self.register_buffer("mean_face", mean_face.detach().clone().float())
        offset = torch.tensor([0.0] * (POSE_SIZE - 1) + [float(distance)], dtype=torch.float32)
        self.register_buffer("pose_offset", offset)
        self.register_buffer("pose_scale", torch.tensor(POSE_SCALE))
        if config.backbone == "hourglass":
            self.backbone = StackedHourglass(config.stacks, config.map_channels, 4, landmarks)
            pose_dim = config.map_channels
        elif config.backbone == "mobilenet":
            self.backbone = PyramidMobileNet(config.map_channels, landmarks, config.width)
            pose_dim = self.backbone.pose_dim
        else:
            raise ValueError(f"unknown backbone {config.backbone!r}")
        self.pose_head = nn.Linear(pose_dim, POSE_SIZE)
        nn.init.zeros_(self.pose_head.weight)
        nn.init.zeros_(self.pose_head.bias)
        self.steps = nn.ModuleList(
            CascadeStep(config, landmarks, config.window(k)) for k in range(config.steps)
        )

    def forward(self, crops: torch.Tensor, initial: torch.Tensor | None = None) -> dict:
        out = self.backbone(crops)
        pose = self.pose_head(out["pose_feature"]) * self.pose_scale + self.pose_offset
        points = project(self.mean_face, pose, self.config.focal) if initial is None else initial
        result = {"pose": pose, "initial": points, "steps": [], "heatmaps": out["heatmaps"], "attention": []}
        for step in self.steps:
            offsets, attention = step(out["features"], points)
            points = points + offsets
            result["steps"].append(points)
            result["attention"].append(attention)
        return result


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
