"""The dense BFM loader on files in 3DDFA's full layout: a hand-made grid, and the real model.

The grid fixture is written as 3DDFA ships its files (``tri.mat``: a MATLAB v5 file whose ``tri`` is
(3, T) uint16 with 1-based vertex ids; ``keypoints_sim.npy``: (204,) int64, the x, y, z coordinate
rows of each of the 68 landmark vertices; ``u_*.npy``: (3V, 1) float32 in micrometres, x, y, z
interleaved per vertex; ``w_*_sim.npy``: (3V, 40) and (3V, 10) float32; ``param_whitening.pkl``: a
pickled dict of (62,) float32 ``param_mean`` and ``param_std``), so every value the loader returns can
be checked against numbers written out by hand.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from facegraph.datasets.synthetic_faces import CLEAN, SyntheticFaces, dense_bfm
from facegraph.morphable import load_bfm
from tests.conftest import DEVELOPER_BFM, SHARED_DATA

# The grid: NX x NY vertices 5 mm apart in the z = 20 mm plane; vertex id = row * NX + column.
NX, NY, STEP_MM, PLANE_Z_MM = 20, 15, 5.0, 20.0
N_VERTICES = NX * NY  # 300
N_TRIANGLES = 2 * (NX - 1) * (NY - 1)  # 532
UM = 1000.0  # the BFM's arrays are in micrometres
EXPRESSION_Z_MM = 1.0  # u_exp lifts every vertex by 1 mm: the loader's mean is u_shp + u_exp
LANDMARK_IDS = np.arange(68) * 4 + 3  # landmark k is vertex 4k + 3 (3, 7, ..., 271)


def vertex_id(column: int, row: int) -> int:
    return row * NX + column


def grid_mm(column: int, row: int) -> np.ndarray:
    """Where the grid puts a vertex, in mm: x by column from -47.5, y by row from -35, z = 20."""
    return np.array([(column - 9.5) * STEP_MM, (row - 7) * STEP_MM, PLANE_Z_MM])


def grid_triangles() -> np.ndarray:
    """(T, 3) 0-based triangles, two per cell, clockwise seen from +z as 3DDFA's are:
    (a, c, b) and (b, c, d) for the cell's corners a (column, row), b (column + 1, row),
    c (column, row + 1), d (column + 1, row + 1)."""
    triangles = []
    for row in range(NY - 1):
        for column in range(NX - 1):
            a, b = vertex_id(column, row), vertex_id(column + 1, row)
            c, d = vertex_id(column, row + 1), vertex_id(column + 1, row + 1)
            triangles += [(a, c, b), (b, c, d)]
    return np.array(triangles)


def write_full_layout(folder: Path) -> Path:
    """The grid as a BFM folder in 3DDFA's full layout (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    points = np.array([grid_mm(v % NX, v // NX) for v in range(N_VERTICES)])
    np.save(folder / "u_shp.npy", (points * UM).reshape(-1, 1).astype(np.float32))
    u_exp = np.zeros((N_VERTICES, 3))
    u_exp[:, 2] = EXPRESSION_Z_MM * UM
    np.save(folder / "u_exp.npy", u_exp.reshape(-1, 1).astype(np.float32))
    # Shape column 0 moves every vertex 1 mm along +z; column 1 moves vertex 0 by 2 mm along +x.
    w_shp = np.zeros((3 * N_VERTICES, 40), np.float32)
    w_shp[2::3, 0] = 1.0 * UM
    w_shp[0, 1] = 2.0 * UM
    np.save(folder / "w_shp_sim.npy", w_shp)
    # Expression column 0 moves the last vertex (299) 3 mm along +y.
    w_exp = np.zeros((3 * N_VERTICES, 10), np.float32)
    w_exp[3 * (N_VERTICES - 1) + 1, 0] = 3.0 * UM
    np.save(folder / "w_exp_sim.npy", w_exp)
    keypoints = (3 * LANDMARK_IDS[:, None] + np.arange(3)).reshape(-1)  # 9, 10, 11, 21, 22, 23, ...
    np.save(folder / "keypoints_sim.npy", keypoints.astype(np.int64))
    # 1-based (MATLAB) vertex ids, one triangle per column, as 3DDFA's tri.mat stores them.
    scipy.io.savemat(folder / "tri.mat", {"tri": (grid_triangles() + 1).T.astype(np.uint16)})
    # Camera mean 0..11, coefficient means 0; stds 1 for the camera, 0 for the coefficients (so a
    # synthetic face drawn from this folder is exactly the mean face).
    stats = {
        "param_mean": np.concatenate([np.arange(12.0), np.zeros(50)]).astype(np.float32),
        "param_std": np.concatenate([np.ones(12), np.zeros(50)]).astype(np.float32),
    }
    with (folder / "param_whitening.pkl").open("wb") as fh:
        pickle.dump(stats, fh, protocol=3)
    return folder


@pytest.fixture
def grid_bfm(tmp_path: Path) -> Path:
    return write_full_layout(tmp_path / "bfm")


def test_the_fixture_is_laid_out_as_3ddfa_ships_its_files(grid_bfm: Path) -> None:
    tri = scipy.io.loadmat(grid_bfm / "tri.mat")["tri"]
    assert tri.shape == (3, N_TRIANGLES) and tri.dtype == np.uint16
    assert tri.min() == 1 and tri.max() == N_VERTICES  # 1-based, as the real file
    assert np.load(grid_bfm / "keypoints_sim.npy")[:6].tolist() == [9, 10, 11, 21, 22, 23]


def test_triangles_come_back_0_based(grid_bfm: Path) -> None:
    model = load_bfm(grid_bfm)
    assert model.triangles.shape == (N_TRIANGLES, 3)
    # The first cell's two triangles, by hand: a = 0, b = 1, c = 20, d = 21.
    assert model.triangles[:2].tolist() == [[0, 20, 1], [1, 20, 21]]
    # The last cell's: a = 278, b = 279, c = 298, d = 299.
    assert model.triangles[-2:].tolist() == [[278, 298, 279], [279, 298, 299]]
    np.testing.assert_array_equal(model.triangles, scipy.io.loadmat(grid_bfm / "tri.mat")["tri"].T - 1)
    assert model.triangles.min() == 0 and model.triangles.max() == N_VERTICES - 1


def test_landmarks_are_the_keypoint_rows_vertices(grid_bfm: Path) -> None:
    model = load_bfm(grid_bfm)
    assert model.landmark_vertices.tolist() == list(range(3, 272, 4))


def test_the_mean_face_and_the_bases_decode_to_the_written_coordinates(grid_bfm: Path) -> None:
    model = load_bfm(grid_bfm)
    assert model.n_vertices == N_VERTICES and model.has_dense
    params = torch.zeros(1, 62)
    params[0, [0, 5, 10]] = 1.0  # camera [I | 0]: the unposed shape
    mean_um = model.vertices(params)[0].numpy()
    # Vertex 0 is (column 0, row 0): (-47.5, -35, 20 + 1) mm; vertex 299 (column 19, row 14) is
    # (47.5, 35, 21) mm; vertex 21 (column 1, row 1) is (-42.5, -30, 21) mm.
    np.testing.assert_array_equal(
        mean_um[[0, 299, 21]] / UM, [[-47.5, -35, 21], [47.5, 35, 21], [-42.5, -30, 21]]
    )
    params[0, 12] = 2.0  # shape column 0 twice: every z up 2 mm
    params[0, 13] = 0.5  # shape column 1 half: vertex 0's x up 1 mm
    params[0, 52] = -1.0  # expression column 0: vertex 299's y down 3 mm
    moved = model.vertices(params)[0].numpy() / UM
    np.testing.assert_array_equal(moved[[0, 299, 21]], [[-46.5, -35, 23], [47.5, 32, 23], [-42.5, -30, 23]])
    # The landmarks are those vertices: landmark 0 is vertex 3 (column 3, row 0), landmark 5 is
    # vertex 23 (column 3, row 1), landmark 67 is vertex 271 (column 11, row 13).
    landmarks = model.landmarks(params)[0].numpy() / UM
    np.testing.assert_array_equal(landmarks[[0, 5, 67]], [[-32.5, -35, 23], [-32.5, -30, 23], [7.5, 30, 23]])


def test_the_whitening_statistics_are_read(grid_bfm: Path) -> None:
    model = load_bfm(grid_bfm)
    assert model.whitening.mean[:12].tolist() == list(range(12)) and model.whitening.mean[12:].max() == 0
    assert model.whitening.std.tolist() == [1.0] * 12 + [0.0] * 50


def test_synthetic_faces_from_the_fixture_put_the_landmarks_on_its_vertices(grid_bfm: Path) -> None:
    """The training data's consumer of the loader: a clean face drawn from the grid is the grid."""
    assert dense_bfm(grid_bfm).n_vertices == N_VERTICES
    scan = SyntheticFaces(str(grid_bfm), CLEAN).sample(np.random.default_rng(0), posed=False)
    # The face is centred on its landmarks' centroid. Vertex ids 4k + 3 lie in columns 3, 7, 11, 15, 19
    # (cycling), five to a row from row 0, so the landmarks sit at these grid positions:
    columns, rows = LANDMARK_IDS % NX, LANDMARK_IDS // NX
    assert columns[:6].tolist() == [3, 7, 11, 15, 19, 3] and rows[:6].tolist() == [0, 0, 0, 0, 0, 1]
    centroid = np.array([(columns.mean() - 9.5) * STEP_MM, (rows.mean() - 7) * STEP_MM, 21.0])
    expected = np.array([grid_mm(c, r) for c, r in zip(columns, rows, strict=True)])
    expected[:, 2] += EXPRESSION_Z_MM
    np.testing.assert_allclose(scan.landmarks, expected - centroid, atol=1e-9)
    np.testing.assert_allclose(scan.vertices[LANDMARK_IDS], scan.landmarks, atol=1e-9)
    np.testing.assert_allclose(scan.vertices[:, 2], 0.0, atol=1e-9)  # a flat grid, centred
    # SyntheticFaces reverses 3DDFA's clockwise triangles so that normals face the viewer (+z).
    np.testing.assert_array_equal(scan.faces, grid_triangles()[:, ::-1])
    a, b, c = (scan.vertices[scan.faces[:, k]] for k in range(3))
    assert (np.cross(b - a, c - a)[:, 2] > 0).all()


# --- the real model ------------------------------------------------------------------------------------


def dense_bfm_folder() -> Path:
    """A BFM folder with the dense bases: $FACEGRAPH_BFM, else get-bfm-bases' default cache folder,
    else ../shared/data/bfm itself; the test skips (saying how to get one) when none has them."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facegraph-dev" / "bfm"
    candidates = [Path(p) for p in (DEVELOPER_BFM,) if p] + [cache, SHARED_DATA / "bfm"]
    for folder in candidates:
        if (folder / "w_shp_sim.npy").is_file() and (folder / "w_exp_sim.npy").is_file():
            return folder
    pytest.skip("needs the BFM's dense bases: run ../shared/tools/get-bfm-bases (or set FACEGRAPH_BFM)")


@pytest.fixture(scope="module")
def real_bfm():
    return load_bfm(dense_bfm_folder())


def test_real_bfm_mesh_is_3ddfas_53215_vertices_with_every_vertex_used(real_bfm) -> None:
    # 3DDFA's BFM derivative: 53,215 vertices, 105,840 triangles (its README and tri.mat's shape).
    assert real_bfm.n_vertices == 53215 and real_bfm.triangles.shape == (105840, 3)
    assert real_bfm.triangles.min() == 0 and real_bfm.triangles.max() == 53214
    assert len(np.unique(real_bfm.triangles)) == 53215


def test_real_bfm_triangles_match_the_0_based_ply(real_bfm) -> None:
    """bfm.ply (PLY: 0-based) holds the same mesh as tri.mat (MATLAB: 1-based)."""
    import trimesh

    ply = trimesh.load(dense_bfm_folder() / "bfm.ply", process=False)
    np.testing.assert_array_equal(np.asarray(ply.faces), real_bfm.triangles)


def test_real_bfm_landmarks_are_the_keypoint_vertices(real_bfm) -> None:
    keypoints = np.load(dense_bfm_folder() / "keypoints_sim.npy")
    # 3DDFA stores each landmark as its vertex's x, y, z rows: 3v, 3v + 1, 3v + 2.
    assert keypoints.shape == (204,) and (keypoints[0::3] % 3 == 0).all()
    assert (keypoints[1::3] == keypoints[0::3] + 1).all() and (keypoints[2::3] == keypoints[0::3] + 2).all()
    assert real_bfm.landmark_vertices.tolist() == (keypoints[0::3] // 3).tolist()
    assert real_bfm.landmark_vertices[0].item() == 21873  # 65619 // 3, keypoints_sim.npy's first entry


def test_real_bfm_mean_face_has_a_human_size_in_mm_and_faces_the_viewer(real_bfm) -> None:
    mean_mm = real_bfm.mean.numpy().reshape(-1, 3).astype(np.float64) / 1000.0  # micrometres -> mm
    width, height, depth = np.ptp(mean_mm, axis=0)
    # The mesh covers the face from ear to ear and brow to chin: about 180 x 211 x 148 mm.
    assert 150 < width < 210 and 170 < height < 250 and 100 < depth < 180
    landmarks = mean_mm[real_bfm.landmark_vertices.numpy()]
    # Outer eye corners: 86 mm on this mean (adults' outer canthal widths are some 80-100 mm).
    assert 75 < np.linalg.norm(landmarks[36] - landmarks[45]) < 100
    assert np.argmax(landmarks[:, 2]) == 30  # the nose tip is nearest the viewer (+z)
    assert landmarks[8, 1] < landmarks[30, 1] < landmarks[27, 1]  # chin below nose tip below bridge (+y up)
    assert landmarks[36, 0] < landmarks[45, 0]  # the subject's right eye at -x
    # 3DDFA's triangles wind clockwise seen from outside: nearly all normals point into the head.
    tri = real_bfm.triangles
    a, b, c = (mean_mm[tri[:, k]] for k in range(3))
    normals = np.cross(b - a, c - a)
    inward = np.einsum("ij,ij->i", normals, (a + b + c) / 3 - mean_mm.mean(axis=0)) < 0
    assert inward.mean() > 0.9  # 97% on the real mean face; a few on the curled rims point either way
