"""A photo model as the command line names it: a registered model, optionally run from an exported ONNX
file and averaged with its mirror image."""

from __future__ import annotations

from pathlib import Path

from facegraph.errors import InputError
from facegraph.image.crop_regressor import CropRegressor, MirrorAveraged
from facegraph.registry import load_model
from facegraph.schemes import get_scheme


def load_photo_model(
    name: str,
    weights: str | Path | None = None,
    bfm: str | Path | None = None,
    onnx: str | Path | None = None,
    mirror_average: bool = False,
    device: str | None = None,
) -> CropRegressor:
    """The model ``name``; with ``onnx`` its image network runs in ONNX Runtime (synergynet and spiga),
    with ``mirror_average`` each face is also predicted mirrored and the two averaged."""
    model = load_model(name, weights, bfm, device=device, kind="image")
    if onnx:
        from facegraph.image.onnx import OnnxRegressor, OnnxSession
        from facegraph.image.spiga import SpigaRegressor
        from facegraph.image.synergynet import SynergyRegressor

        if not isinstance(model, SynergyRegressor | SpigaRegressor):
            raise InputError(f"--onnx runs synergynet's or spiga's exported network, not {name}'s")
        model = OnnxRegressor(model, OnnxSession(onnx))
    if mirror_average:
        model = MirrorAveraged(model, get_scheme("ibug68").flip_order)
    return model
