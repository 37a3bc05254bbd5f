"""The peer 3DDFA_V2 (Guo et al., ECCV 2020): loading its released MobileNetV1 checkpoints.

The checkpoint (``mb05_120x120.pth``, or ``mb1_120x120.pth``) and its parameter statistics
(``param_mean_std_62d_120x120.pkl``) are read from a folder the user names; nothing of them ships with
facegraph. The checkpoint is read with ``torch.load(weights_only=True)``; the statistics pickle with an
unpickler that only rebuilds numpy arrays. The network was trained on OpenCV (BGR) reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facegraph.errors import InputError
from facegraph.image.crop_regressor import CropRegressor
from facegraph.io.safe_pickle import load_array_pickle
from facegraph.io.weights import check_state_dict, shapes_of
from facegraph.morphable.bfm import N_PARAMS, MorphableModel, ParamWhitening
from facegraph.nn.mobilenet_v1 import MobileNetV1, tddfa_v2_key

STATS_FILE = "param_mean_std_62d_120x120.pkl"
CHECKPOINTS = {"3ddfa-v2-mb05": "mb05_120x120.pth", "3ddfa-v2-mb1": "mb1_120x120.pth"}


def _checkpoint_path(weights: Path, name: str) -> Path:
    if weights.is_dir():
        weights = weights / CHECKPOINTS[name]
    if not weights.is_file():
        raise InputError(f"3DDFA_V2 checkpoint not found (expected {CHECKPOINTS[name]})", weights)
    return weights


def _has_rank(value: object, ndim: int) -> bool:
    """Whether ``value`` is a tensor of ``ndim`` dimensions: a checkpoint may hold anything."""
    return isinstance(value, torch.Tensor) and value.ndim == ndim


def _match_names(state: dict, network: MobileNetV1) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """Each checkpoint tensor's name in the network (``tddfa_v2_key``), and the shapes the checkpoint's
    tensors must have, under its own names; a network tensor that no checkpoint name maps to is listed
    under the network's name, as missing, and a checkpoint name that maps to none is left out, as
    unexpected."""
    shapes = shapes_of(network)
    names, expected = {}, {}
    for key in state:
        try:
            name = tddfa_v2_key(key)
        except (KeyError, ValueError):  # a name outside 3DDFA_V2's scheme
            continue
        if name in shapes:
            names[key] = name
            expected[key] = shapes.pop(name)
    return names, {**expected, **shapes}


def load_tddfa_v2(name: str, weights: str | Path, morphable: MorphableModel) -> CropRegressor:
    """Build the peer ``name`` from a checkpoint file or the folder holding it and its statistics."""
    checkpoint = _checkpoint_path(Path(weights), name)
    stats_path = checkpoint.parent / STATS_FILE
    if not stats_path.is_file():
        raise InputError(f"missing {STATS_FILE} beside the checkpoint", checkpoint.parent)
    stats = load_array_pickle(stats_path)
    try:
        whitening = ParamWhitening(stats["mean"], stats["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"expected 62-number 'mean' and 'std' arrays ({exc})", stats_path) from None
    if not (np.isfinite(whitening.mean).all() and np.isfinite(whitening.std).all()):
        raise InputError("'mean' or 'std' has NaN or infinite values", stats_path)

    try:
        raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise InputError(f"not a readable PyTorch checkpoint ({type(exc).__name__})", checkpoint) from None
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not _has_rank(state.get("module.conv1.weight"), 4):
        raise InputError("not a 3DDFA_V2 MobileNetV1 checkpoint (no conv1 weights)", checkpoint)
    width = state["module.conv1.weight"].shape[0] / 32
    heads = {"params": N_PARAMS}
    if _has_rank(state.get("module.fc_lm.weight"), 2):
        heads["landmarks"] = state["module.fc_lm.weight"].shape[0]
    network = MobileNetV1(heads, width=width)
    names, expected = _match_names(state, network)
    check_state_dict(state, expected, checkpoint, f"weights do not fit MobileNetV1 x{width:g}")
    network.load_state_dict({names[key]: value for key, value in state.items()})
    network.eval()
    return CropRegressor(network, whitening, morphable, channel_order="bgr").eval()
