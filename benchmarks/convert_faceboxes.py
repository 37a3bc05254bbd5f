"""Convert 3DDFA_V2's FaceBoxesProd.pth into the safetensors file facegraph ships (run once).

    python benchmarks/convert_faceboxes.py ../shared/data/3ddfa-v2/faceboxes/FaceBoxesProd.pth

The checkpoint is read as plain tensors (``weights_only``), its keys are mapped onto
``facegraph.nn.faceboxes.FaceBoxes`` (strictly: every tensor used, every parameter filled) and written
with the source's name, SHA-256 and licence in the metadata.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch
from safetensors.torch import save_file

from facegraph.image.faceboxes import MODEL_NAME, bundled_weights
from facegraph.nn.faceboxes import FaceBoxes

LICENSE = "MIT (3DDFA_V2)"


def rename(key: str) -> str:
    """The module's name for a checkpoint key: the same, less a DataParallel ``module.`` prefix."""
    return key.removeprefix("module.")


def convert(source: Path, target: Path) -> None:
    state = torch.load(source, map_location="cpu", weights_only=True)
    tensors = {rename(key): value.contiguous() for key, value in state.items()}
    FaceBoxes().load_state_dict(tensors, strict=True)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    metadata = {"model": MODEL_NAME, "source": source.name, "source_sha256": digest, "license": LICENSE}
    save_file(tensors, str(target), metadata=metadata)
    print(
        f"{len(tensors)} tensors -> {target} ({target.stat().st_size / 1e6:.1f} MB), source sha256 {digest}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="FaceBoxesProd.pth")
    parser.add_argument("--out", type=Path, default=bundled_weights(), help="default: the shipped file")
    args = parser.parse_args()
    convert(args.source, args.out)


if __name__ == "__main__":
    main()
