"""Convert MediaPipe's face_detection_short_range.tflite into the safetensors file facegraph ships (run once).

    python benchmarks/convert_blazeface.py \
        ~/.cache/facegraph-dev/peers/mediapipe/face_detection_short_range.tflite

The model file comes from the mediapipe 0.10.14 wheel (``mediapipe/modules/face_detection/``; the
peers' ``get-peer-models`` puts it in the cache above). Its float16 weights are read through
ai-edge-litert's interpreter (needed here only, never by the package), widened to float32 (exactly),
moved from TFLite's layouts (convolutions OHWI, depthwise 1HWO) to torch's OIHW, mapped onto
``facegraph.nn.blazeface.BlazeFace`` strictly (every tensor used, every parameter filled) and written
with the source's name, SHA-256 and licence in the metadata. The module's raw outputs are then compared
with the interpreter's on the sample photos (and their mirror images); the file is kept only when
they agree within ``TOLERANCE``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from facegraph.demo import sample_path
from facegraph.image.blazeface import MODEL_NAME, bundled_weights, letterbox, load_blazeface
from facegraph.io import read_image
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.nn.blazeface import BLOCKS, BlazeFace

LICENSE = "Apache-2.0 (MediaPipe)"
TOLERANCE = 1e-3  # largest absolute difference of raw outputs (regressors in input pixels, logits)
PHOTOS = ("astronaut.jpg", "einstein.jpg")
HEADS = {  # TFLite layer -> module layer (TFLite names heads by stride: 8 is the 16x16 map)
    "classificator_8": "scores_stride8",
    "regressor_8": "regressors_stride8",
    "classificator_16": "scores_stride16",
    "regressor_16": "regressors_stride16",
}


def module_names() -> dict[str, tuple[str, bool]]:
    """The module's layer for each TFLite layer, and whether the TFLite one is depthwise."""
    names = {"conv2d": ("stem", False), **{tflite: (ours, False) for tflite, ours in HEADS.items()}}
    for index in range(len(BLOCKS)):
        names["depthwise_conv2d" + (f"_{index}" if index else "")] = (f"blocks.{index}.depthwise", True)
        names[f"conv2d_{index + 1}"] = (f"blocks.{index}.pointwise", False)
    return names


def tflite_tensors(source: Path) -> dict[str, np.ndarray]:
    """The model's stored constant tensors (``layer/Kernel``, ``layer/Bias``) as float32 arrays."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(source))
    interpreter.allocate_tensors()
    found = {}
    for detail in interpreter.get_tensor_details():
        name = detail["name"]
        if name.endswith(("/Kernel", "/Bias")):
            found[name] = np.asarray(interpreter.get_tensor(detail["index"]), dtype=np.float32)
    return found


def state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The module's state dict from the TFLite tensors; raises when a tensor is left over or missing."""
    state, used = {}, set()
    for tflite, (ours, depthwise) in module_names().items():
        kernel, bias = tensors[f"{tflite}/Kernel"], tensors[f"{tflite}/Bias"]
        # OHWI -> OIHW; depthwise 1HWO -> O1HW
        kernel = kernel.transpose(3, 0, 1, 2) if depthwise else kernel.transpose(0, 3, 1, 2)
        state[f"{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{ours}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
        used |= {f"{tflite}/Kernel", f"{tflite}/Bias"}
    if left := sorted(set(tensors) - used):
        raise ValueError(f"TFLite tensors not mapped: {left}")
    return state


def check(source: Path, target: Path) -> float:
    """Largest absolute difference between the module's and the interpreter's raw outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(source))
    interpreter.allocate_tensors()
    (entry,) = interpreter.get_input_details()
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    network = load_blazeface(target)
    worst = 0.0
    for name in PHOTOS:
        rgb = read_image(sample_path(name))
        for photo in (rgb, np.ascontiguousarray(rgb[:, ::-1])):
            inputs, *_ = letterbox(photo)
            interpreter.set_tensor(entry["index"], inputs.transpose(1, 2, 0)[None])
            interpreter.invoke()
            expected_regressors = interpreter.get_tensor(outputs["regressors"])[0]
            expected_logits = interpreter.get_tensor(outputs["classificators"])[0, :, 0]
            with torch.inference_mode():
                regressors, logits = network(torch.from_numpy(inputs)[None])
            regressor_diff = float(np.abs(regressors[0].numpy() - expected_regressors).max())
            logit_diff = float(np.abs(logits[0].numpy() - expected_logits).max())
            print(f"{name}: regressors {regressor_diff:.2e}, logits {logit_diff:.2e} (max abs diff)")
            worst = max(worst, regressor_diff, logit_diff)
    return worst


def convert(source: Path, target: Path) -> None:
    tensors = state_dict(tflite_tensors(source))
    BlazeFace().load_state_dict(tensors, strict=True)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    metadata = {
        "model": MODEL_NAME,
        "source": source.name,
        "source_sha256": digest,
        "license": LICENSE,
        GENERATOR_KEY: GENERATOR,
    }
    save_file(tensors, str(target), metadata=metadata)
    target.chmod(0o644)  # safetensors writes owner-only; the file ships in the package
    worst = check(source, target)
    if not worst <= TOLERANCE:
        target.unlink()
        raise SystemExit(f"the module differs from the TFLite model by {worst:.2e} (> {TOLERANCE}); removed")
    print(
        f"{len(tensors)} tensors -> {target} ({target.stat().st_size / 1e6:.2f} MB), source sha256 {digest}; "
        f"largest difference from TFLite {worst:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="face_detection_short_range.tflite")
    parser.add_argument("--out", type=Path, default=bundled_weights(), help="default: the shipped file")
    args = parser.parse_args()
    convert(args.source, args.out)


if __name__ == "__main__":
    main()
