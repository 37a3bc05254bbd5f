"""Mesh landmarker weights as safetensors: the network's tensors, named landmark arrays, and the config.

The arrays are ``mean_landmarks`` (the published design's mean landmarks in its normalised frame, which
pick the super points) and ``canonical_landmarks`` (the mean face's 68 landmarks in mm in the canonical
frame, to which the two-pass configuration aligns its first estimate), and optionally the shape prior's
arrays (``facegraph.mesh.shape_prior``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from facegraph.errors import InputError
from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.io.weights import MESH_LANDMARKER, check_model, check_state_dict, shapes_of
from facegraph.mesh.preprocess import MeshConfig
from facegraph.mesh.shape_prior import OFF_MODEL_KEY, PRIOR_KEYS, prior_shapes
from facegraph.nn.sgcn import StratifiedGcn

MEAN_KEY = "mean_landmarks"
CANONICAL_KEY = "canonical_landmarks"
ARRAY_KEYS = (MEAN_KEY, CANONICAL_KEY, *PRIOR_KEYS, OFF_MODEL_KEY)


class Configured(Protocol):
    def to_dict(self) -> dict: ...


def save_weights(
    path: Path, model: StratifiedGcn, config: Configured | dict, arrays: dict[str, np.ndarray], figures: dict
) -> None:
    """Write the model's weights and named arrays, with its configuration (a ``MeshConfig``, a training
    recipe, or the dict a weights file stores) and figures in the metadata."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    for key, value in arrays.items():
        if key not in ARRAY_KEYS:
            raise ValueError(f"unknown array {key!r}")
        tensors[key] = torch.as_tensor(value, dtype=torch.float32).contiguous()
    stored = config if isinstance(config, dict) else config.to_dict()
    metadata = {GENERATOR_KEY: GENERATOR, "config": json.dumps(stored), "figures": json.dumps(figures)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def stored_config(path: str | Path) -> dict:
    """The configuration a weights file stores, training recipe included, as it was written."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {})["config"])


def load_weights(path: str | Path) -> tuple[StratifiedGcn, MeshConfig, dict[str, np.ndarray], dict]:
    """The model (eval mode), its configuration, its named arrays and its figures; InputError naming the
    tensor when one is missing, unexpected, misshapen or not finite (``facegraph.io.weights``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        check_model(metadata, MESH_LANDMARKER, path)
        tensors = load_file(str(path))
        config = MeshConfig.from_dict(json.loads(metadata["config"]))
    except (SafetensorError, KeyError, ValueError, TypeError, OSError) as exc:
        raise InputError(f"not mesh landmarker weights ({exc})", path) from exc
    model = StratifiedGcn(config.network)
    expected = _expected_shapes(model, config, tensors)
    check_state_dict(tensors, expected, path, "weights do not match their configuration")
    arrays = {key: tensors.pop(key).numpy() for key in ARRAY_KEYS if key in tensors}
    model.load_state_dict(tensors)
    model.eval()
    return model, config, arrays, json.loads(metadata.get("figures", "{}"))


def _expected_shapes(
    model: StratifiedGcn, config: MeshConfig, stored: Mapping[str, torch.Tensor]
) -> dict[str, tuple[int, ...]]:
    """The tensors a weights file must hold, with their shapes: the network's; the landmark arrays its
    configuration needs (the super points' mean, the two-pass frame) or that the file holds; and the
    whole shape prior when any of it is there."""
    expected = shapes_of(model)
    needed = {MEAN_KEY: config.network.global_branch == "super", CANONICAL_KEY: config.two_pass}
    for key, need in needed.items():
        if need or key in stored:
            expected[key] = (config.network.n_landmarks, 3)
    if any(key in stored for key in (*PRIOR_KEYS, OFF_MODEL_KEY)):
        expected.update(prior_shapes(stored))
    return expected
