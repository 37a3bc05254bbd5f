"""Optional dependencies: the base install is what inference needs; the rest comes with pip extras."""

from __future__ import annotations

import importlib
from types import ModuleType

from facegraph.errors import InputError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``, or say in one line which extra to install for ``purpose``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"{purpose} needs the {extra!r} extra ({module} is not installed):"
            f" pip install 'facegraph[{extra}]'"
        ) from None
