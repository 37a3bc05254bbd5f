"""SynergyNet's image network as ONNX, checked against PyTorch, and run with ONNX Runtime.

The exported graph takes normalised crops (B, 3, 120, 120), any batch size, and returns the whitened
``params`` (B, 62) and ``landmarks`` (B, 204); whitening and decoding stay in Python, shared with the
PyTorch path, so both give the same faces.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from facegraph.errors import InputError
from facegraph.io.atomic import atomic_path
from facegraph.models.crop_regressor import CropPrediction
from facegraph.models.synergynet import SynergyRegressor

OUTPUTS = ("params", "landmarks")
PARITY_TOLERANCE = 1e-3  # largest absolute difference allowed between the two runtimes' outputs


class _Heads(torch.nn.Module):
    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.network(images)
        return out["params"], out["landmarks"]


def export_onnx(model: SynergyRegressor, path: str | Path, batch: int = 4, seed: int = 0) -> dict:
    """Write the image network to ``path`` and compare ONNX Runtime with PyTorch on random crops.

    Returns the largest absolute output difference; raises InputError above PARITY_TOLERANCE.
    """
    path = Path(path)
    heads = _Heads(copy.deepcopy(model.network).float().cpu()).eval()
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, model.input_size, model.input_size, generator=generator) * 2 - 1
    with atomic_path(path) as tmp:
        torch.onnx.export(
            heads,
            (images,),
            str(tmp),
            input_names=["images"],
            output_names=list(OUTPUTS),
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    with torch.inference_mode():
        expected = [t.numpy() for t in heads(images)]
    got = OnnxSession(path).run(images.numpy())
    difference = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
    if difference > PARITY_TOLERANCE:
        raise InputError(
            f"ONNX Runtime differs from PyTorch by {difference:.2e} (> {PARITY_TOLERANCE})", path
        )
    return {"max_abs_difference": difference, "batch": batch}


class OnnxSession:
    """An ONNX Runtime session over an exported image network."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own error types for unreadable models
            raise InputError(f"not a readable ONNX model ({type(exc).__name__})", path) from None

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(OUTPUTS), {"images": np.ascontiguousarray(images, dtype=np.float32)})


def predict_onnx(
    session: OnnxSession, model: SynergyRegressor, crops: np.ndarray, boxes: np.ndarray
) -> CropPrediction:
    """``model.predict`` with the image network run by ONNX Runtime (whitening and decoding shared)."""
    params_white, landmarks_white = session.run(model.normalise(crops).cpu().numpy())
    return model.decode(torch.from_numpy(params_white), torch.from_numpy(landmarks_white), boxes)
