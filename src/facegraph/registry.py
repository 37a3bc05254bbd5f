"""The models facegraph can evaluate or run, and where each one's weights come from.

One registry for both kinds: the photo models (``kind="image"``: a crop regressor the face analyzer
runs) and the mesh landmarker (``kind="mesh"``). ``load_model`` builds either on the device policy's
device (``facegraph.devices.pick_device``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from facegraph.devices import pick_device
from facegraph.errors import InputError
from facegraph.image.crop_regressor import CropRegressor
from facegraph.image.spiga import SpigaRegressor, load_spiga
from facegraph.image.synergynet import BUNDLED_NAME, load_synergynet
from facegraph.image.tddfa_v2 import CHECKPOINTS, STATS_FILE, load_tddfa_v2
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.mesh.landmarker import bundled_weights as bundled_mesh_weights
from facegraph.morphable.bfm import BFM_ENV, MorphableModel, load_bfm
from facegraph.morphable.setup import installed_bfm_folder
from facegraph.nn.fusion import fold_batchnorm

KINDS = ("image", "mesh")
_INPUTS = {"image": "photos", "mesh": "3D scans"}  # what each kind of model runs on, for messages

Weights = str | Path | None
Builder = Callable[
    [Weights, MorphableModel | None, torch.device], CropRegressor | SpigaRegressor | MeshLandmarker
]


@dataclass(frozen=True)
class ModelSpec:
    """A named model: what it predicts, where its weights come from and how to build it.

    ``kind`` is "image" (a crop regressor for photos, decoded with a morphable model) or "mesh" (the
    landmarker for 3D scans). ``build(weights, morphable, device)`` gives the model ready for inference
    on ``device``; the mesh kind is given no morphable model.
    """

    name: str
    description: str
    weights_source: str
    needs_weights: bool
    build: Builder
    needs_bfm: bool = True
    kind: str = "image"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind must be one of {KINDS}, got {self.kind!r}")


def _for_inference(load: Callable[[Weights, MorphableModel | None], CropRegressor]) -> Builder:
    """A photo model's builder: ``load`` it, fold its batch normalisation into the convolutions
    (``nn.fold_batchnorm``, same function, less work) and move it to the device."""

    def build(weights: Weights, morphable: MorphableModel | None, device: torch.device) -> CropRegressor:
        model = load(weights, morphable)
        model.network = fold_batchnorm(model.network)
        return model.to(device)

    return build


def _peer(name: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        description=f"3DDFA_V2 MobileNetV1 x{'0.5' if name.endswith('mb05') else '1.0'}: 62 3DMM parameters "
        "from a 120x120 crop -> 68 3D landmarks and head pose (peer, for comparison)",
        weights_source=f"--weights DIR holding 3DDFA_V2's {CHECKPOINTS[name]} and {STATS_FILE} "
        "(MIT, github.com/cleardusk/3DDFA_V2; not shipped)",
        needs_weights=True,
        build=_for_inference(lambda weights, morphable: load_tddfa_v2(name, weights, morphable)),
    )


SYNERGYNET = ModelSpec(
    name="synergynet",
    description="SynergyNet (MobileNetV2): 62 3DMM parameters from a 120x120 crop -> 68 2D/3D landmarks, "
    "head pose and, with the BFM, the dense face (trained here)",
    weights_source=f"shipped, {BUNDLED_NAME} (model card beside it)",
    needs_weights=False,
    build=_for_inference(load_synergynet),
    needs_bfm=False,
)


def _spiga(weights: Weights, morphable: MorphableModel | None, device: torch.device) -> SpigaRegressor:
    """SPIGA from a weights file, its CNN's batch normalisation folded, on ``device``."""
    network = load_spiga(weights)[0]
    network.backbone = fold_batchnorm(network.backbone)
    return SpigaRegressor(network).to(device)


SPIGA = ModelSpec(
    name="spiga",
    description="SPIGA: a CNN, a pose head placing a 3D mean face and graph-attention steps -> 68 2D "
    "landmarks and head pose from a 120x120 crop (trained here; no 3D landmarks, no dense face)",
    weights_source="--weights FILE: a `facegraph train spiga` run's best.safetensors (none ships yet)",
    needs_weights=True,
    build=_spiga,
    needs_bfm=False,
)

# The mesh network has no batch normalisation to fold; it is built straight onto the device.
FACEGRAPH_MESH = ModelSpec(
    name="facegraph-mesh",
    description="68 landmarks on 3D face scans (2S-SGCN design, the project's configuration)",
    weights_source=f"shipped, {bundled_mesh_weights().name} (model card beside it)",
    needs_weights=False,
    build=lambda weights, morphable, device: MeshLandmarker(weights, device),
    needs_bfm=False,
    kind="mesh",
)

MODELS: dict[str, ModelSpec] = {
    SYNERGYNET.name: SYNERGYNET,
    **{name: _peer(name) for name in CHECKPOINTS},
    SPIGA.name: SPIGA,
    FACEGRAPH_MESH.name: FACEGRAPH_MESH,
}


def get_model_spec(name: str, kind: str | None = None) -> ModelSpec:
    """The registered model ``name``; InputError when there is none, or when it is not of ``kind``."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"model kind must be one of {KINDS}, got {kind!r}")
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    spec = MODELS[name]
    if kind is not None and spec.kind != kind:
        others = ", ".join(n for n, s in MODELS.items() if s.kind == kind)
        wanted = _INPUTS[kind]
        raise InputError(
            f"model {name} is for {_INPUTS[spec.kind]}, not {wanted}; models for {wanted}: {others}"
        )
    return spec


def find_bfm_folder(bfm: str | Path | None, weights: str | Path | None) -> Path | str | None:
    """The BFM folder to use: --bfm, else $FACEGRAPH_BFM, else a ``bfm`` folder beside the weights',
    else the one ``facegraph setup bfm`` installed (None when there is none).

    The sibling makes the layout of ../shared/data (``3ddfa-v2/`` beside ``bfm/``) work without flags.
    """
    if bfm is not None or os.environ.get(BFM_ENV):
        return bfm
    if weights is not None:
        weights = Path(weights)
        sibling = (weights if weights.is_dir() else weights.parent).parent / "bfm"
        if sibling.is_dir():
            return sibling
    return installed_bfm_folder()


def _morphable_for(spec: ModelSpec, bfm: str | Path | None, weights: Weights) -> MorphableModel | None:
    """The BFM a photo model decodes with; None for a model that can do without and finds none."""
    folder = find_bfm_folder(bfm, weights)
    if not spec.needs_bfm and folder is None and not os.environ.get(BFM_ENV):
        return None
    return load_bfm(folder)


def load_model(
    name: str,
    weights: str | Path | None = None,
    bfm: str | Path | None = None,
    device: str | torch.device | None = None,
    *,
    kind: str | None = None,
) -> CropRegressor | SpigaRegressor | MeshLandmarker:
    """Build a registered model with its weights, ready for inference on ``pick_device(device)``.

    A photo model gets the BFM to decode its parameters (those that do not need it get it when one is
    named or found, else None) and, with it, sits on the device; its batch normalisation is folded into
    the convolutions (``nn.fold_batchnorm``). The mesh model ignores ``bfm``. ``kind`` ("image" or
    "mesh"), when given, refuses a model of the other kind with an InputError.
    """
    spec = get_model_spec(name, kind)
    if spec.needs_weights and weights is None:
        raise InputError(f"model {name} needs --weights: {spec.weights_source}")
    target = pick_device(device)
    morphable = _morphable_for(spec, bfm, weights) if spec.kind == "image" else None
    return spec.build(weights, morphable, target)
