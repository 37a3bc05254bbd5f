"""The photo models' networks as ONNX (float32, or int8 for SynergyNet), checked against PyTorch, run
with ONNX Runtime.

The exported graph takes normalised crops (B, 3, S, S), any batch size. SynergyNet's returns the
whitened ``params`` (B, 62) and ``landmarks`` (B, 204); SPIGA's the cascade's last ``landmarks`` (B, 68,
2) in unit crop coordinates and its ``pose`` (B, 6). Decoding stays in Python, shared with the PyTorch
path (the regressor's ``decode``), so both give the same faces. The file records a fingerprint of what
decoding relies on (SynergyNet's whitening; SPIGA's whole weights), so that it is never decoded with
another model's.

``quantize_int8`` turns an exported float model into an int8 one (static quantisation, calibrated on
face crops): the convolutions, activations, residual sums and pooling run in int8 with per-channel
weights; the small fully connected heads stay float, because quantising them ruined the answers in a
trial.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from facegraph.errors import InputError
from facegraph.extras import require
from facegraph.image.crop_regressor import CropPrediction
from facegraph.image.spiga import SpigaRegressor
from facegraph.image.synergynet import SynergyRegressor
from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY

PhotoNetwork = SynergyRegressor | SpigaRegressor
PARITY_TOLERANCE = 1e-3  # largest absolute difference allowed between the two runtimes' outputs
FINGERPRINT_KEY = "facegraph.whitening"
PRECISION_KEY = "facegraph.precision"
INT8_OPS = ("Conv", "Clip", "Add", "ReduceMean")
# Mean landmark movement (pixels of the 120-pixel crop) from the float model to the int8 one, over the
# calibration crops, above which the int8 model is refused.
INT8_TOLERANCE_PX = 1.0
CALIBRATION_BATCH = 32


def whitening_fingerprint(model: SynergyRegressor) -> str:
    """A short hash of the statistics that turn the network's outputs into parameters and points."""
    digest = hashlib.sha256()
    for stats in (model.whitening, model.landmark_whitening):
        for values in (stats.mean, stats.std):
            digest.update(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def model_fingerprint(model: PhotoNetwork) -> str:
    """SynergyNet's whitening fingerprint; for SPIGA, whose outputs need no statistics to decode, a short
    hash of its configuration and every weight, so that an export is only run beside its own weights."""
    if not isinstance(model, SpigaRegressor):
        return whitening_fingerprint(model)
    digest = hashlib.sha256(model.network.config.name.encode())
    for name, tensor in sorted(model.network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _family(model: PhotoNetwork) -> str:
    return "SPIGA" if isinstance(model, SpigaRegressor) else "SynergyNet"


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's notes that do not concern this model (no torchvision, deprecations)."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        log.setLevel(level)


def _set_metadata(path: Path, values: dict[str, str]) -> None:
    onnx = require("onnx", "export", "ONNX export")

    values = {GENERATOR_KEY: GENERATOR, **values}
    graph = onnx.load(str(path))
    kept = [p for p in graph.metadata_props if p.key not in values]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    for key, value in values.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


class _Outputs(torch.nn.Module):
    """A network's exported outputs, in the order its regressor's ``decode`` takes them."""

    def __init__(self, network: torch.nn.Module, spiga: bool) -> None:
        super().__init__()
        self.network, self.spiga = network, spiga
        self.names = ["landmarks", "pose"] if spiga else ["params", "landmarks"]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.network(images)
        if self.spiga:
            return out["steps"][-1], out["pose"]
        return out["params"], out["landmarks"]


def export_onnx(model: PhotoNetwork, path: str | Path, batch: int = 4, seed: int = 0) -> dict:
    """Write the image network to ``path`` and compare ONNX Runtime with PyTorch on random crops.

    Returns the largest absolute output difference; raises InputError above PARITY_TOLERANCE.
    """
    for module in ("onnx", "onnxscript"):
        require(module, "export", "ONNX export")
    path = Path(path)
    network = copy.deepcopy(model.network).float().cpu()
    heads = _Outputs(network, isinstance(model, SpigaRegressor)).eval()
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, model.input_size, model.input_size, generator=generator) * 2 - 1
    with atomic_path(path) as tmp, _quiet_exporter():
        torch.onnx.export(
            heads,
            (images,),
            str(tmp),
            input_names=["images"],
            output_names=heads.names,
            dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
        _set_metadata(tmp, {FINGERPRINT_KEY: model_fingerprint(model), PRECISION_KEY: "float32"})
        with torch.inference_mode():
            expected = [t.numpy() for t in heads(images)]
        got = OnnxSession(tmp).run(images.numpy())
        difference = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
        if not difference <= PARITY_TOLERANCE:  # NaN weights give a NaN difference: refused too
            raise InputError(
                f"ONNX Runtime differs from PyTorch by {difference:.2e} (> {PARITY_TOLERANCE}); not written",
                path,
            )
    return {"max_abs_difference": difference, "batch": batch}


class OnnxSession:
    """An ONNX Runtime session over an exported image network."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        onnxruntime = require("onnxruntime", "export", "running an ONNX file")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own error types for unreadable models
            raise InputError(f"not a readable ONNX model ({type(exc).__name__})", path) from None

        self.path = Path(path)
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs, in the order it was exported with."""
        return self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.float32)})

    @property
    def precision(self) -> str:
        return self.metadata.get(PRECISION_KEY, "unknown")


def onnx_input(crops: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB crops -> the graph's contiguous (B, 3, H, W) float32 input, normalised as
    ``SynergyRegressor.normalise`` (and SPIGA's) does, without PyTorch: its thread pool and ONNX
    Runtime's then fought over a small CPU, costing a good part of a batched int8 run's time and most of
    one face's."""
    crops = np.asarray(crops)
    images = np.empty((len(crops), 3, *crops.shape[1:3]), dtype=np.float32)
    np.subtract(crops.transpose(0, 3, 1, 2), np.float32(127.5), out=images, casting="unsafe")
    images *= np.float32(1 / 128)
    return images


def predict_onnx(
    session: OnnxSession, model: PhotoNetwork, crops: np.ndarray, boxes: np.ndarray
) -> CropPrediction:
    """``model.predict`` with the image network run by ONNX Runtime (decoding shared)."""
    outputs = session.run(onnx_input(crops))
    return model.decode(*(torch.from_numpy(output) for output in outputs), boxes)


class OnnxRegressor(torch.nn.Module):
    """A SynergyNet or SPIGA whose image network runs in ONNX Runtime: ``predict`` like the PyTorch
    model's. Refuses an ONNX file exported from other weights than ``model``'s (``model_fingerprint``).
    """

    def __init__(self, model: PhotoNetwork, session: OnnxSession) -> None:
        super().__init__()
        recorded = session.metadata.get(FINGERPRINT_KEY)
        if recorded is None:
            raise InputError("not exported by facegraph (no model fingerprint)", session.path)
        if recorded != model_fingerprint(model):
            raise InputError(
                f"exported from other {_family(model)} weights than the ones given", session.path
            )
        self.regressor = model
        self.session = session
        self.input_size = model.input_size
        self.dimensions = getattr(model, "dimensions", 3)

    @property
    def morphable(self):
        return self.regressor.morphable

    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        return predict_onnx(self.session, self.regressor, crops, boxes)


def quantize_int8(
    model: SynergyRegressor, float_path: str | Path, path: str | Path, crops: np.ndarray
) -> dict:
    """Write an int8 copy of an exported float model, calibrated on (N, 120, 120, 3) RGB face crops.

    Returns how far the int8 model moves the landmarks from the float model's on those crops (mean and
    largest, crop pixels); raises InputError when the mean exceeds INT8_TOLERANCE_PX.
    """
    import tempfile

    require("onnxruntime.quantization", "export", "int8 quantisation")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = Path(path)
    if len(crops) == 0:
        raise InputError("no face crops to calibrate the int8 model on")
    images = onnx_input(crops)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.first = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.first >= len(images):
                return None
            batch = images[self.first : self.first + CALIBRATION_BATCH]
            self.first += CALIBRATION_BATCH
            return {"images": batch}

    with tempfile.TemporaryDirectory() as folder, atomic_path(path) as tmp:
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        quantize_static(
            str(prepared),
            str(tmp),
            Batches(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(INT8_OPS),
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
        )
        _set_metadata(tmp, {FINGERPRINT_KEY: whitening_fingerprint(model), PRECISION_KEY: "int8"})
        frame = np.tile([0.0, 0.0, model.input_size, model.input_size], (len(crops), 1))
        reference = predict_onnx(OnnxSession(float_path), model, crops, frame).landmarks
        quantized = predict_onnx(OnnxSession(tmp), model, crops, frame).landmarks
        shift = np.linalg.norm(quantized[..., :2] - reference[..., :2], axis=-1)
        report = {
            "faces": len(crops),
            "mean_shift_px": float(shift.mean()),
            "max_shift_px": float(shift.max()),
        }
        if report["mean_shift_px"] > INT8_TOLERANCE_PX:
            raise InputError(
                f"int8 moves the landmarks by {report['mean_shift_px']:.2f} px on average"
                f" (> {INT8_TOLERANCE_PX}); not written",
                path,
            )
    return report


def export_int8(model: SynergyRegressor, path: str | Path, crops: np.ndarray) -> dict:
    """Export the float model to a scratch file, then write its int8 copy calibrated on ``crops``."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        float_path = Path(folder) / "float.onnx"
        export_onnx(model, float_path)
        return quantize_int8(model, float_path, path, crops)


def calibration_crops(
    model: SynergyRegressor, photos: list[Path], n_faces: int, progress: bool
) -> np.ndarray:
    """Up to ``n_faces`` detected face crops from photos spread evenly over ``photos``."""
    from tqdm import tqdm

    from facegraph.image.analyzer import FaceAnalyzer

    if n_faces < 1:
        raise InputError(f"--calibration-faces must be at least 1, got {n_faces}")
    chosen = photos[:: max(1, len(photos) // n_faces)]
    analyzer = FaceAnalyzer(model, "dlib-hog")
    crops: list[np.ndarray] = []
    for photo in tqdm(chosen, desc="calibration photos", unit="photo", disable=not progress):
        try:
            crops.extend(analyzer.face_crops(photo))
        except InputError as exc:
            tqdm.write(f"facegraph: skipped: {exc}", file=sys.stderr)
        if len(crops) >= n_faces:
            break
    if not crops:
        raise InputError("no face was found in the calibration photos", photos[0] if photos else None)
    return np.stack(crops[:n_faces])
