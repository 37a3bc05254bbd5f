"""Read the small numpy-array pickles that 3DDFA-style model folders carry, without running code.

``pickle.load`` on a file from a user's path can execute anything; this unpickler only rebuilds
numpy arrays, dtypes and plain containers, and refuses every other global.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from facegraph.errors import InputError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_array_pickle(path: str | Path) -> Any:
    """Unpickle a file that holds only numpy arrays in dicts/lists; InputError otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _ArrayUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"not a pickle of numpy arrays ({exc})", path) from None
