"""SynergyNet as a crop regressor: its weights file, and decoding with or without the BFM.

The weights are one safetensors file: the image network's tensors, the whitening statistics of its
parameter and landmark heads (``param_mean``/``param_std``, ``landmark_mean``/``landmark_std``) and,
in the metadata, the network width and the figures of its training run. With the BFM, landmarks are
decoded from the 62 parameters (the published path); without it, the landmark head gives them. Pose
always comes from the parameters' camera.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from facegraph.errors import InputError
from facegraph.geometry.crops import crop_to_image
from facegraph.image.crop_regressor import CropPrediction, CropRegressor, poses_from_params
from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.io.weights import SYNERGYNET, check_model, check_state_dict, shapes_of
from facegraph.morphable.bfm import N_LANDMARKS, N_PARAMS, MorphableModel, ParamWhitening
from facegraph.nn.synergynet import SynergyNet

BUNDLED_NAME = "synergynet.safetensors"
STAT_KEYS = ("param_mean", "param_std", "landmark_mean", "landmark_std")
STAT_SHAPES = dict(zip(STAT_KEYS, [(N_PARAMS,)] * 2 + [(3 * N_LANDMARKS,)] * 2, strict=True))


def bundled_weights() -> Path:
    return Path(str(resources.files("facegraph") / "data" / "weights" / BUNDLED_NAME))


class LandmarkWhitening:
    """Mean and std of the landmark head's 204 outputs (68 x, y, z in the crop frame)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)

    def unwhiten(self, values: torch.Tensor) -> torch.Tensor:
        """(B, 204) head outputs -> (B, 68, 3) crop-frame landmarks."""
        points = values * values.new_tensor(self.std) + values.new_tensor(self.mean)
        return points.reshape(len(values), N_LANDMARKS, 3)


class SynergyRegressor(CropRegressor):
    """SynergyNet's image network with its whitening; ``morphable`` may be None (no BFM at hand)."""

    def __init__(
        self,
        network: SynergyNet,
        whitening: ParamWhitening,
        landmark_whitening: LandmarkWhitening,
        morphable: MorphableModel | None,
    ) -> None:
        super().__init__(network, whitening, morphable, channel_order="rgb")
        self.landmark_whitening = landmark_whitening

    def normalise(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.tensor(np.ascontiguousarray(crops), dtype=torch.float32, device=self._device())
        # channels-last is what the (B, H, W, 3) crops already are, and depthwise convolutions run
        # faster in it on CPUs
        return ((x - 127.5) / 128.0).permute(0, 3, 1, 2)

    def _device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.inference_mode()
    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        out = self.network(self.normalise(crops))
        return self.decode(out["params"], out["landmarks"], boxes)

    @torch.inference_mode()
    def decode(
        self, params_white: torch.Tensor, landmarks_white: torch.Tensor, boxes: np.ndarray
    ) -> CropPrediction:
        """The network's whitened outputs for crops cut at (B, 4) boxes -> photo-pixel predictions:
        landmarks decoded from the parameters with the BFM, else from the landmark head."""
        params = self.whitening.unwhiten(params_white)
        if self.morphable is not None:
            landmarks = self.morphable.landmarks(params.to(self.morphable.mean.device))
        else:
            landmarks = self.landmark_whitening.unwhiten(landmarks_white)
        points = crop_to_image(landmarks.cpu().numpy(), boxes, self.input_size)
        params = params.cpu().numpy()
        return CropPrediction(params, points, poses_from_params(params))


def save_synergynet(
    path: str | Path,
    network: SynergyNet,
    whitening: ParamWhitening,
    landmark_whitening: LandmarkWhitening,
    width: float,
    figures: dict,
) -> None:
    """Write the image network, its whitening statistics, width and figures, atomically."""
    tensors = {f"network.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    stats = (whitening.mean, whitening.std, landmark_whitening.mean, landmark_whitening.std)
    for key, value in zip(STAT_KEYS, stats, strict=True):
        tensors[key] = torch.as_tensor(value, dtype=torch.float32).contiguous()
    metadata = {GENERATOR_KEY: GENERATOR, "model": "synergynet", "width": str(width)}
    metadata["figures"] = json.dumps(figures)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_synergynet(weights: str | Path | None, morphable: MorphableModel | None) -> SynergyRegressor:
    """SynergyNet from a weights file (None: the shipped one), in eval mode."""
    path = bundled_weights() if weights is None else Path(weights)
    if path.is_dir():
        path = path / BUNDLED_NAME
    if not path.is_file():
        raise InputError("SynergyNet weights not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        check_model(metadata, SYNERGYNET, path)
        width = float(metadata.get("width", "nan"))
        tensors = load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise InputError(f"not SynergyNet weights ({exc})", path) from None
    if not 0 < width < math.inf:
        raise InputError("not SynergyNet weights (no usable width in its metadata)", path)
    network = SynergyNet(width)
    expected = {**shapes_of(network, "network."), **STAT_SHAPES}
    check_state_dict(tensors, expected, path, f"weights do not fit SynergyNet x{width:g}")
    stats = [tensors.pop(key).numpy() for key in STAT_KEYS]
    network.load_state_dict({k.removeprefix("network."): v for k, v in tensors.items()})
    network.eval().to(memory_format=torch.channels_last)
    regressor = SynergyRegressor(
        network, ParamWhitening(*stats[:2]), LandmarkWhitening(*stats[2:]), morphable
    )
    return regressor.eval()


def read_figures(weights: str | Path | None = None) -> dict:
    """The training figures stored in a weights file's metadata."""
    path = bundled_weights() if weights is None else Path(weights)
    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("figures", "{}"))
