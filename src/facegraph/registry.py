"""The models facegraph can evaluate or run, and where each one's weights come from."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facegraph.errors import InputError
from facegraph.image.crop_regressor import CropRegressor
from facegraph.image.synergynet import BUNDLED_NAME, load_synergynet
from facegraph.image.tddfa_v2 import CHECKPOINTS, STATS_FILE, load_tddfa_v2
from facegraph.morphable.bfm import BFM_ENV, MorphableModel, load_bfm
from facegraph.nn.fusion import fold_batchnorm


@dataclass(frozen=True)
class ModelSpec:
    """A named model: what it predicts, where its weights come from and how to build it."""

    name: str
    description: str
    weights_source: str
    needs_weights: bool
    build: Callable[[str | Path | None, MorphableModel | None], CropRegressor]
    needs_bfm: bool = True


def _peer(name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        description=f"3DDFA_V2 MobileNetV1 x{'0.5' if name.endswith('mb05') else '1.0'}: 62 3DMM parameters "
        "from a 120x120 crop -> 68 3D landmarks and head pose (peer, for comparison)",
        weights_source=f"--weights DIR holding 3DDFA_V2's {CHECKPOINTS[name]} and {STATS_FILE} "
        "(MIT, github.com/cleardusk/3DDFA_V2; not shipped)",
        needs_weights=True,
        build=lambda weights, morphable: load_tddfa_v2(name, weights, morphable),
    )


SYNERGYNET = ModelSpec(
    name="synergynet",
    description="SynergyNet (MobileNetV2): 62 3DMM parameters from a 120x120 crop -> 68 2D/3D landmarks, "
    "head pose and, with the BFM, the dense face (trained here)",
    weights_source=f"shipped, {BUNDLED_NAME} (model card beside it)",
    needs_weights=False,
    build=load_synergynet,
    needs_bfm=False,
)

MODELS: dict[str, ModelSpec] = {SYNERGYNET.name: SYNERGYNET, **{name: _peer(name) for name in CHECKPOINTS}}


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def find_bfm_folder(bfm: str | Path | None, weights: str | Path | None) -> Path | str | None:
    """The BFM folder to use: --bfm, else $FACEGRAPH_BFM, else a ``bfm`` folder beside the weights'.

    The last makes the layout of ../shared/data (``3ddfa-v2/`` beside ``bfm/``) work without flags.
    """
    if bfm is not None or os.environ.get(BFM_ENV):
        return bfm
    if weights is not None:
        weights = Path(weights)
        sibling = (weights if weights.is_dir() else weights.parent).parent / "bfm"
        if sibling.is_dir():
            return sibling
    return None


def load_model(name: str, weights: str | Path | None = None, bfm: str | Path | None = None) -> CropRegressor:
    """Build a registered model with its weights and the BFM to decode its parameters.

    Models that do not need the BFM get it when one is named or found, else None. The model is for
    inference: its batch normalisation is folded into the convolutions (``nn.fold_batchnorm``).
    """
    spec = get_model_spec(name)
    if spec.needs_weights and weights is None:
        raise InputError(f"model {name} needs --weights: {spec.weights_source}")
    folder = find_bfm_folder(bfm, weights)
    if not spec.needs_bfm and folder is None and not os.environ.get(BFM_ENV):
        model = spec.build(weights, None)
    else:
        model = spec.build(weights, load_bfm(folder))
    model.network = fold_batchnorm(model.network)
    return model
