"""SPIGA's weights file: the network's tensors (the mean face and pose offset among its buffers) in one
safetensors file whose metadata names the model, its configuration and the figures of its run.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from facegraph.errors import InputError
from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.io.weights import check_state_dict, shapes_of
from facegraph.nn.spiga import CONFIGS, N_LANDMARKS, Spiga

MODEL_NAME = "spiga"  # the "model" entry of the metadata


def save_spiga(path: str | Path, model: Spiga, figures: dict) -> None:
    """Write the network and its run's figures, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {GENERATOR_KEY: GENERATOR, "model": MODEL_NAME, "config": model.config.name}
    metadata["figures"] = json.dumps(figures)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_spiga(path: str | Path) -> tuple[Spiga, dict]:
    """The network of a SPIGA weights file, in eval mode, and the figures stored with it. A missing,
    damaged or foreign file raises InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("SPIGA weights not found", path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise InputError(f"not SPIGA weights ({exc})", path) from None
    if metadata.get("model") != MODEL_NAME:
        raise InputError("not SPIGA weights (its metadata names no SPIGA model)", path)
    config = CONFIGS.get(metadata.get("config", ""))
    if config is None:
        raise InputError(f"unknown SPIGA configuration {metadata.get('config')!r}", path)
    model = Spiga(config, torch.zeros(N_LANDMARKS, 3), distance=1.0)
    check_state_dict(tensors, shapes_of(model), path, f"weights do not fit {config.name}")
    model.load_state_dict(tensors, strict=True)
    return model.eval(), json.loads(metadata.get("figures", "{}"))
