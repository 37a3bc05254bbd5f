"""A pinhole camera for posed 3D shapes, in unit crop coordinates, batched in torch.

Poses are [yaw, pitch, roll] in degrees (``facegraph.geometry.pose``'s convention: the model -> camera
rotation ``Rx(-pitch) Ry(-yaw) Rz(-roll)``, x right, y up, z toward the viewer) and a translation: the
model's origin sits at (tx, ty, -tz) in the camera's frame, the camera on the crop's centre looking down
-z with its focal length in crop widths. Image coordinates: (0, 0) the crop's top-left corner, (1, 1)
its bottom-right, y down.
"""

from __future__ import annotations

import torch


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) yaw, pitch, roll in degrees -> (B, 3, 3) rotations Rx(-pitch) Ry(-yaw) Rz(-roll)."""
    yaw, pitch, roll = torch.deg2rad(-angles).unbind(-1)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)

    def matrix(*rows: torch.Tensor) -> torch.Tensor:
        return torch.stack(rows, dim=-1).view(-1, 3, 3)

    cx, sx, cy, sy, cz, sz = pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin(), roll.cos(), roll.sin()
    rx = matrix(one, zero, zero, zero, cx, -sx, zero, sx, cx)
    ry = matrix(cy, zero, sy, zero, one, zero, -sy, zero, cy)
    rz = matrix(cz, -sz, zero, sz, cz, zero, zero, zero, one)
    return rx @ ry @ rz


def project(shape: torch.Tensor, pose: torch.Tensor, focal: float) -> torch.Tensor:
    """A (L, 3) or (B, L, 3) 3D shape under (B, 6) poses -> (B, L, 2) unit crop coordinates."""
    camera = shape @ rotation_matrices(pose[:, :3]).transpose(1, 2)
    x = camera[..., 0] + pose[:, 3:4]
    y = camera[..., 1] + pose[:, 4:5]
    depth = (pose[:, 5:6] - camera[..., 2]).clamp_min(1e-3)
    return torch.stack([0.5 + focal * x / depth, 0.5 - focal * y / depth], dim=-1)
