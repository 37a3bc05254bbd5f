"""Atomic file writes: a file either keeps its old content or gets the complete new one.

Writers build the output under a temporary name in the destination folder and rename it into place,
so an interrupted run never leaves a half-written landmark file or mesh behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from facegraph.errors import InputError


def _create_temp(path: Path) -> Path:
    """Create an empty, unique file beside ``path`` and return its name.

    The temporary name keeps the final suffix so tools that infer the format from it still work. It is
    created with the default mode (0o666 less the umask), not mkstemp's 0o600, so the renamed result has
    ordinary permissions.
    """
    if not path.parent.is_dir():
        raise InputError("cannot write: the folder does not exist", path.parent)
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror or exc}", path) from exc
        os.close(fd)
        return temp
    raise InputError("cannot write: no free temporary name in the folder", path)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure remove it.

    The body writes the whole file to the yielded path (any writer that takes a file name will do).
    """
    path = Path(path)
    temp = _create_temp(path)
    try:
        yield temp
        _fsync(temp)
        try:
            os.replace(temp, path)
        except OSError as exc:
            raise InputError(f"cannot write: {exc.strerror or exc}", path) from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` (text is encoded as UTF-8, newlines kept as given) to ``path`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with atomic_path(path) as temp:
        temp.write_bytes(payload)
