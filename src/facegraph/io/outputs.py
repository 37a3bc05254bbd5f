"""Which files a run may write: one policy for every command, checked before any work starts.

A path may be written when it is not one of the run's inputs (symlinks and hard links followed), it is
not a folder, and its folder exists (or, for an output folder, can be created) and is writable. An
existing file is replaced only when facegraph wrote it (the generator mark its writers leave) or the
user allows it (``overwrite``), and never when it is a landmark file beside a photo or scan of the same
name: that is the annotation an evaluation reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from facegraph import __version__
from facegraph.errors import InputError
from facegraph.formats import MESH_SUFFIXES, PHOTO_LANDMARK_SUFFIXES, PHOTO_SUFFIXES, SCAN_LANDMARK_SUFFIXES

GENERATOR = f"facegraph {__version__}"  # the mark facegraph's writers leave in the files they write
GENERATOR_KEY = "generator"
_MARK = re.compile(rb"generator.{0,4}facegraph", re.DOTALL)
_SNIFF_BYTES = 1 << 16  # the mark sits in a file's header, or (ONNX metadata) at its very end
_MARKED_AT_END = (".onnx",)
# Formats with no place for a mark: an existing one is replaced only with --overwrite.
UNMARKED_SUFFIXES = (".pts", ".csv", ".off", ".stl")
# What the evaluations read as an annotation: a file of one suffix beside a photo or scan of the same name.
ANNOTATES = {
    **dict.fromkeys(PHOTO_LANDMARK_SUFFIXES, PHOTO_SUFFIXES),
    **dict.fromkeys(SCAN_LANDMARK_SUFFIXES, MESH_SUFFIXES),
}


def written_by_facegraph(path: str | Path) -> bool:
    """Whether the file carries the generator mark of facegraph's writers."""
    try:
        with open(path, "rb") as handle:
            if Path(path).suffix.lower() in _MARKED_AT_END:
                handle.seek(max(handle.seek(0, os.SEEK_END) - _SNIFF_BYTES, 0))
            return bool(_MARK.search(handle.read(_SNIFF_BYTES)))
    except OSError:
        return False


def annotated_file(path: Path) -> Path | None:
    """The photo or scan that the landmark file ``path`` annotates (same name, same folder), if any."""
    for suffix in ANNOTATES.get(path.suffix.lower(), ()):
        for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
            if candidate.is_file():
                return candidate
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class OutputPlan:
    """The paths one run will write, each checked against the policy when it is added.

    ``inputs`` are files the run reads; ``input_folders`` folders all of whose files it may read (a
    benchmark's data). Two outputs of the run may not share a path.
    """

    def __init__(
        self, inputs: Iterable[str | Path] = (), input_folders: Iterable[str | Path] = (), overwrite=False
    ) -> None:
        self.inputs = [Path(p) for p in inputs if p is not None and Path(p).exists()]
        self.input_folders = [Path(p).resolve() for p in input_folders if p is not None]
        self.overwrite = overwrite
        self.planned: dict[Path, str] = {}
        self.folders: set[Path] = set()  # output folders the run creates when they do not exist

    def file(self, path: str | Path, producer: str = "") -> Path:
        """Check that ``path`` may be written (``producer`` names what writes it, for a clash)."""
        path = Path(path)
        self._claim(path, producer)
        self._check_parent(path.parent, path, may_create=path.parent.resolve() in self.folders)
        if path.is_dir():
            raise InputError("is a folder; name a file to write", path)
        if path.exists() or path.is_symlink():
            self._check_existing(path)
        return path

    def folder(self, path: str | Path) -> Path:
        """Check that the output folder ``path`` exists or can be created, and is writable."""
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise InputError("is a file, not a folder for the outputs", folder)
        self._check_parent(folder, folder, may_create=True)
        self.folders.add(folder.resolve())
        return folder

    def _claim(self, path: Path, producer: str) -> None:
        key = path.resolve()
        if key in self.planned:
            first = self.planned[key]
            raise InputError(
                f"would be written twice (for {first} and {producer}): rename one or use separate runs", path
            )
        self.planned[key] = producer or str(path)

    @staticmethod
    def _check_parent(folder: Path, path: Path, may_create: bool) -> None:
        """The nearest existing folder at or above ``folder`` must be a writable folder, and ``folder``
        itself must exist unless the run creates it."""
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise InputError(f"cannot write: {existing} is a file, not a folder", path)
        if existing != folder and not may_create:
            raise InputError("cannot write: the folder does not exist", folder)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(f"cannot write: {existing} is not writable", path)

    def _check_existing(self, path: Path) -> None:
        if any(_same_file(path, read) for read in self.inputs) or any(
            folder in path.resolve().parents for folder in self.input_folders
        ):
            raise InputError("is an input of this run: an output would overwrite it", path)
        annotated = annotated_file(path)
        if annotated is not None:
            raise InputError(
                f"is the annotation beside {annotated.name}, which evaluations read: it is never"
                " replaced; write elsewhere",
                path,
            )
        if self.overwrite or written_by_facegraph(path):
            return
        why = (
            f"{path.suffix} files carry no mark of who wrote them"
            if path.suffix.lower() in UNMARKED_SUFFIXES
            else "facegraph did not write it"
        )
        raise InputError(f"exists and {why}: pass --overwrite to replace it", path)
