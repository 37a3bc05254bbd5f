"""Checking a weights file's tensors before a model is built from them.

A damaged file, or one made for the other model, is refused at load with one line naming the file and
the first tensor at fault, instead of failing later: NaN weights give NaN landmarks, which the pose and
alignment solvers cannot take, and torch's own state-dict message runs over several lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from facegraph.errors import InputError

SYNERGYNET = "SynergyNet"
MESH_LANDMARKER = "mesh landmarker"


def shapes_of(module: nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """The shape of each tensor in a module's state dict, under ``prefix`` + its name."""
    return {prefix + key: tuple(value.shape) for key, value in module.state_dict().items()}


def check_model(metadata: Mapping[str, str], wanted: str, path: Path) -> None:
    """Refuse a safetensors file that is not facegraph's ``wanted`` weights (``SYNERGYNET`` or
    ``MESH_LANDMARKER``), saying so when it holds the other model's."""
    held = None
    if metadata.get("model") == "synergynet":
        held = SYNERGYNET
    elif "config" in metadata:
        held = MESH_LANDMARKER
    if held is None:
        raise InputError(f"not {wanted} weights (its metadata names no facegraph model)", path)
    if held != wanted:
        raise InputError(f"holds {held} weights, not {wanted} weights", path)


def check_state_dict(
    tensors: Mapping[str, object], expected: Mapping[str, tuple[int, ...]], path: Path, mismatch: str
) -> None:
    """Refuse tensors whose names and shapes are not exactly ``expected``, or that are not finite.

    ``mismatch`` starts the message when names or shapes differ (e.g. "weights do not fit SynergyNet
    x1"); the message names the first tensor at fault and counts any more of the same kind.
    """
    missing = [key for key in expected if key not in tensors]
    unexpected = [key for key in tensors if key not in expected]
    for kind, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
            raise InputError(f"{mismatch}: {kind} tensor {keys[0]!r}{more}", path)
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{mismatch}: {key!r} is not a tensor", path)
        if tuple(value.shape) != tuple(expected[key]):
            shape = tuple(value.shape)
            raise InputError(f"{mismatch}: tensor {key!r} has shape {shape}, expected {expected[key]}", path)
    for key, value in tensors.items():
        if (value.is_floating_point() or value.is_complex()) and not torch.isfinite(value).all():
            raise InputError(f"tensor {key!r} has NaN or infinite values", path)


def read_weights_file(path: Path, model: str, label: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The metadata and tensors of the safetensors file ``path``, whose metadata must name ``model``; a
    missing, damaged or foreign file raises InputError naming it (``label``: the model's name in
    messages)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    if not path.is_file():
        raise InputError(f"{label} weights not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise InputError(f"not {label} weights ({exc})", path) from None
    if metadata.get("model") != model:
        raise InputError(f"not {label} weights (its metadata names no {model} model)", path)
    return metadata, tensors


def load_detector_network(path: Path, network: nn.Module, model: str, label: str) -> nn.Module:
    """``network`` (in eval mode) with the weights of the safetensors file ``path``, whose metadata must
    name ``model``; a missing, damaged or foreign file raises InputError naming it (``label``: the
    network's name in messages)."""
    _, tensors = read_weights_file(path, model, label)
    check_state_dict(tensors, shapes_of(network), path, f"weights do not fit {label}")
    network.load_state_dict(tensors, strict=True)
    return network.eval()
