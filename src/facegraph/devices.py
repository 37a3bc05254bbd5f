"""The one device policy for running models: CUDA when there is a GPU, else the CPU.

Every model that picks its own device (the photo models through ``facegraph.registry.load_model``, the
face analyzer, the mesh landmarker) asks :func:`pick_device`, so a device named by the user is checked
once, in one place, with one kind of error.
"""

from __future__ import annotations

import torch

from facegraph.errors import InputError

SUPPORTED_TYPES = ("cpu", "cuda", "mps")


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run a model on.

    None means the first CUDA GPU (``cuda:0``) when there is one, else the CPU. A device given as a
    string ("cpu", "cuda", "cuda:1", "mps") or a ``torch.device`` is honoured; an unknown device, or one
    this machine does not have, raises InputError saying so in one line. "cuda" without an index means
    the current CUDA device (``cuda:0`` unless the caller changed it).
    """
    if requested is None:
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"--device {requested}: unknown device (expected {', '.join(SUPPORTED_TYPES)} or cuda:N)"
        ) from None
    if device.type not in SUPPORTED_TYPES:
        raise InputError(f"--device {requested}: unsupported device (expected {', '.join(SUPPORTED_TYPES)})")
    if device.type == "cuda":
        return _check_cuda(device, requested)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {requested}: no Apple MPS device is available")
    return device


def _check_cuda(device: torch.device, requested: str | torch.device) -> torch.device:
    """``device`` with its index filled in; InputError when this machine has no such GPU."""
    if not torch.cuda.is_available():
        raise InputError(f"--device {requested}: no CUDA GPU is available")
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if device.index is None else device.index
    if index >= count:
        raise InputError(
            f"--device {requested}: no such CUDA GPU ({count} available: cuda:0 to cuda:{count - 1})"
        )
    return torch.device("cuda", index)
