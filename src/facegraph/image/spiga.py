"""SPIGA in the photo pipeline: its weights file and its place among the photo models.

The weights are one safetensors file: the network's tensors (the mean face and pose offset among its
buffers), and in the metadata the model, its configuration and the figures of its run. As a photo model
SPIGA takes the crops SynergyNet takes (3DDFA's boxes) and gives 2D landmarks and the head pose; it has
no 3DMM parameters, so no 3D landmarks and no dense face.

Unit crop coordinates (the network's: pixel j of an S-pixel crop spans [j, j + 1] / S) map to the crop
frame of ``facegraph.geometry.crops`` (pixel j's centre at j + ``CROP_PIXEL_OFFSET``) by ``from_unit``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from facegraph.errors import InputError
from facegraph.geometry.crops import CROP_PIXEL_OFFSET, crop_to_image
from facegraph.image.crop_regressor import CropPrediction
from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.io.weights import check_state_dict, read_weights_file, shapes_of
from facegraph.nn.spiga import CONFIGS, N_LANDMARKS, Spiga

MODEL_NAME = "spiga"  # the "model" entry of the metadata


def save_spiga(path: str | Path, model: Spiga, figures: dict) -> None:
    """Write the network and its run's figures, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {GENERATOR_KEY: GENERATOR, "model": MODEL_NAME, "config": model.config.name}
    metadata["figures"] = json.dumps(figures)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_spiga(path: str | Path) -> tuple[Spiga, dict]:
    """The network of a SPIGA weights file, in eval mode, and the figures stored with it. A missing,
    damaged or foreign file raises InputError naming it."""
    path = Path(path)
    metadata, tensors = read_weights_file(path, MODEL_NAME, "SPIGA")
    config = CONFIGS.get(metadata.get("config", ""))
    if config is None:
        raise InputError(f"unknown SPIGA configuration {metadata.get('config')!r}", path)
    model = Spiga(config, torch.zeros(N_LANDMARKS, 3), distance=1.0)
    check_state_dict(tensors, shapes_of(model), path, f"weights do not fit {config.name}")
    model.load_state_dict(tensors, strict=True)
    return model.eval(), json.loads(metadata.get("figures", "{}"))


def to_unit(points: np.ndarray, size: int) -> np.ndarray:
    """Crop-frame points of an ``size``-pixel crop -> unit crop coordinates."""
    return (points - CROP_PIXEL_OFFSET + 0.5) / size


def from_unit(points: np.ndarray, size: int) -> np.ndarray:
    """Unit crop coordinates -> crop-frame points of a ``size``-pixel crop (the inverse of ``to_unit``)."""
    return points * size + CROP_PIXEL_OFFSET - 0.5


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in 0..255 -> the network's input (SynergyNet's scaling, whose body it may reuse)."""
    return (images - 127.5) / 128.0


class SpigaRegressor(torch.nn.Module):
    """SPIGA behind the photo models' ``predict(crops, boxes)``: 2D landmarks (z is 0) and head pose.

    ``dimensions`` is 2: the analyzer gives faces no 3D landmarks, camera, parameters or mesh."""

    dimensions = 2
    morphable = None

    def __init__(self, network: Spiga) -> None:
        super().__init__()
        # The CNN runs in channels-last layout, which oneDNN's CPU convolutions take without reordering.
        self.network = network
        network.backbone.to(memory_format=torch.channels_last)
        self.input_size = network.config.input_size

    def normalise(self, crops: np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 RGB crops -> (B, 3, S, S) network input on the network's device, laid out
        channels-last (a view of the crops' own layout)."""
        device = self.network.mean_face.device
        images = torch.tensor(np.ascontiguousarray(crops), dtype=torch.float32, device=device)
        return normalise(images.permute(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        """Landmarks in photo pixels and poses for (B, S, S, 3) crops cut at (B, 4) boxes."""
        out = self.network(self.normalise(crops))
        return self.decode(out["steps"][-1], out["pose"], boxes)

    def decode(self, points: torch.Tensor, pose: torch.Tensor, boxes: np.ndarray) -> CropPrediction:
        """The network's (B, L, 2) unit points and (B, 6) poses for crops cut at (B, 4) boxes ->
        photo-pixel predictions (shared by the PyTorch and the ONNX Runtime paths)."""
        crop_points = from_unit(points.float().cpu().numpy(), self.input_size)
        # crop_to_image takes 3DDFA's y-up crop frame
        up = np.stack(
            [crop_points[..., 0], self.input_size + 1 - crop_points[..., 1], np.zeros(crop_points.shape[:2])],
            -1,
        )
        landmarks = crop_to_image(up, np.asarray(boxes, dtype=np.float64), self.input_size)
        return CropPrediction(None, landmarks, pose[:, :3].float().cpu().numpy().astype(np.float64))
