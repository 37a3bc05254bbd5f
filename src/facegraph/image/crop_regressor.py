"""3DMM regression from a square face crop: the shared core of 3DDFA_V2 and SynergyNet.

A network maps a 120x120 crop to 62 whitened parameters; the morphable model decodes them to the 68
3D landmarks in the crop's frame, which map back to photo pixels through the crop box. Head pose is
the rotation of the parameters' camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from facegraph.geometry.crops import crop_mirror_x, crop_to_image
from facegraph.geometry.pose import matrices_to_angles, nearest_rotation
from facegraph.morphable.bfm import MorphableModel, ParamWhitening, split_params


@dataclass
class CropPrediction:
    """Predictions for a batch of crops, in photo pixels (x right, y down, z toward the viewer)."""

    params: np.ndarray | None  # (B, 62) unwhitened 3DMM parameters; None for a 2D model
    landmarks: np.ndarray  # (B, 68, 3)
    pose: np.ndarray  # (B, 3) yaw, pitch, roll in degrees


class CropRegressor(nn.Module):
    """A backbone giving 62 whitened parameters, its whitening, and the morphable model to decode them.

    ``channel_order`` is the order the network was trained on ("rgb", or "bgr" for networks trained on
    OpenCV reads); crops are always given as RGB.
    """

    input_size = 120

    def __init__(
        self,
        network: nn.Module,
        whitening: ParamWhitening,
        morphable: MorphableModel,
        channel_order: str = "rgb",
    ) -> None:
        super().__init__()
        self.network = network
        self.whitening = whitening
        self.morphable = morphable
        self.channel_order = channel_order

    def normalise(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 RGB crops -> (B, 3, H, W) float input, (x - 127.5) / 128."""
        x = torch.tensor(np.ascontiguousarray(crops), dtype=torch.float32, device=self.morphable.mean.device)
        if self.channel_order == "bgr":
            x = x.flip(-1)
        return (x.permute(0, 3, 1, 2) - 127.5) / 128.0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised crops -> (B, 62) unwhitened parameters."""
        out = self.network(images)
        return self.whitening.unwhiten(out["params"] if isinstance(out, dict) else out)

    @torch.inference_mode()
    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        """Landmarks and pose for (B, H, W, 3) RGB crops cut from photos at (B, 4) boxes."""
        params = self(self.normalise(crops))
        landmarks = crop_to_image(self.morphable.landmarks(params).cpu().numpy(), boxes, crops.shape[1])
        params = params.cpu().numpy()
        return CropPrediction(params, landmarks, poses_from_params(params))


def poses_from_params(params: np.ndarray) -> np.ndarray:
    """(B, 62) parameters -> (B, 3) yaw, pitch, roll in degrees of their cameras' rotations."""
    scaled_rotations, _, _, _ = split_params(torch.as_tensor(params, dtype=torch.float64))
    return matrices_to_angles(nearest_rotation(scaled_rotations.numpy())).reshape(-1, 3)


@torch.inference_mode()
def regress_params(model: CropRegressor, crops: np.ndarray, progress: bool, batch: int = 256) -> np.ndarray:
    """(N, 62) unwhitened parameters the model gives for (N, 120, 120, 3) RGB crops, in batches."""
    out = []
    for first in tqdm(range(0, len(crops), batch), desc="3DMM fits", unit="batch", disable=not progress):
        out.append(model(model.normalise(crops[first : first + batch])).float().cpu().numpy())
    return np.concatenate(out)


class MirrorAveraged(nn.Module):
    """Test-time mirroring: each crop and its mirror image are both predicted, and the mirror's landmarks
    and head pose, mirrored back, are averaged with the crop's own (twice the work).

    Each face's parameters (and so a dense mesh decoded from them) stay the crop's own prediction: the
    parameters of a mirrored face are not the mirror of a face's parameters. ``flip_order`` maps each
    landmark to its left-right partner.
    """

    def __init__(self, model: nn.Module, flip_order: np.ndarray) -> None:
        super().__init__()
        self.model = model
        self.flip_order = np.asarray(flip_order)
        self.input_size = model.input_size

    @property
    def morphable(self) -> MorphableModel | None:
        return self.model.morphable

    @property
    def dimensions(self) -> int:
        """3 for a 3DMM model, 2 for a 2D one (no 3D landmarks, parameters or mesh)."""
        return getattr(self.model, "dimensions", 3)

    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        crops, boxes = np.asarray(crops), np.asarray(boxes, dtype=np.float64)
        n = len(crops)
        both = self.model.predict(np.concatenate([crops, crops[:, :, ::-1]]), np.concatenate([boxes, boxes]))
        # x in the crop frame mirrors as crop_mirror_x - x; in the photo, through the box's scale and corner.
        scale_x = (boxes[:, 2] - boxes[:, 0]) / crops.shape[2]
        back = both.landmarks[n:, self.flip_order].copy()
        back[..., 0] = (crop_mirror_x(crops.shape[2]) * scale_x + 2 * boxes[:, 0])[:, None] - back[..., 0]
        pose = both.pose[n:] * np.array([-1.0, 1.0, -1.0])  # yaw and roll change sign in a mirror
        params = None if both.params is None else both.params[:n]
        return CropPrediction(params, (both.landmarks[:n] + back) / 2, _mean_angles(both.pose[:n], pose))


def _mean_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The mean of two angles in degrees, taken the short way round the circle."""
    return a + ((b - a + 180.0) % 360.0 - 180.0) / 2
