import numpy as np
import pytest
import torch

from facegraph.errors import InputError
from facegraph.morphable import MorphableModel, ParamWhitening, load_bfm, split_params
from tests.conftest import shared
from tests.morphable.test_bfm_layout import dense_bfm_folder


def _synthetic(n_vertices: int = 100, seed: int = 0) -> MorphableModel:
    rng = np.random.default_rng(seed)
    return MorphableModel(
        rng.normal(size=3 * n_vertices),
        rng.normal(size=(3 * n_vertices, 40)),
        rng.normal(size=(3 * n_vertices, 10)),
        landmark_vertices=rng.choice(n_vertices, 68, replace=False),
        triangles=np.array([[0, 1, 2]]),
    )


def _params(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).normal(size=(batch, 62)), dtype=torch.float32)


def test_decoding_is_camera_times_shape_plus_translation():
    model = _synthetic()
    params = _params(3)
    rotation, translation, alpha_shp, alpha_exp = split_params(params)
    shape = model.mean + alpha_shp[1] @ model.shape_basis.T + alpha_exp[1] @ model.expression_basis.T
    expected = shape.reshape(-1, 3) @ rotation[1].T + translation[1]
    assert model.vertices(params)[1] == pytest.approx(expected.numpy(), rel=1e-4, abs=1e-4)


def test_landmarks_are_the_keypoint_vertices_of_the_dense_decode():
    model = _synthetic()
    params = _params(2)
    dense = model.vertices(params)
    assert model.landmarks(params) == pytest.approx(dense[:, model.landmark_vertices].numpy(), abs=1e-4)


def test_whitening_round_trips():
    whitening = ParamWhitening(np.arange(62.0), np.full(62, 2.0))
    params = _params(4)
    assert whitening.unwhiten(whitening.whiten(params)) == pytest.approx(params.numpy(), abs=1e-5)
    with pytest.raises(ValueError, match="62 numbers"):
        ParamWhitening(np.zeros(61), np.ones(61))


def test_missing_folder_and_missing_flag_are_user_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    monkeypatch.setenv("FACEGRAPH_DATA", str(tmp_path / "no-setup"))  # nor one `setup bfm` installed
    with pytest.raises(InputError, match="no BFM folder"):
        load_bfm(None)
    with pytest.raises(InputError, match="not found"):
        load_bfm(tmp_path / "nope")
    with pytest.raises(InputError, match="not a BFM folder"):
        load_bfm(tmp_path)
    (tmp_path / "u_shp.npy").write_bytes(b"")
    with pytest.raises(InputError, match="w_shp_sim.npy"):
        load_bfm(tmp_path)


def test_environment_variable_names_the_folder(monkeypatch):
    monkeypatch.setenv("FACEGRAPH_BFM", str(shared("bfm/keypoints68-basis")))
    assert load_bfm().n_vertices == 68


def test_68_point_basis_decodes_landmarks_but_not_a_dense_mesh():
    model = load_bfm(shared("bfm/keypoints68-basis"))
    assert not model.has_dense and model.whitening is not None
    mean_params = torch.as_tensor(model.whitening.mean[None])
    points = model.landmarks(mean_params)
    assert points.shape == (1, 68, 3) and torch.isfinite(points).all()
    with pytest.raises(RuntimeError, match="68-point basis"):
        model.vertices(mean_params)


def test_dense_model_and_68_point_basis_agree():
    """The text basis is the dense model at its keypoints (dense bases: see dense_bfm_folder)."""
    dense_folder = dense_bfm_folder()
    dense, basis = load_bfm(dense_folder), load_bfm(shared("bfm/keypoints68-basis"))
    assert dense.n_vertices == 53215 and dense.triangles.shape == (105840, 3)
    params = dense.whitening.unwhiten(_params(4))
    expected = basis.landmarks(params)
    assert dense.landmarks(params) == pytest.approx(
        expected.numpy(), rel=1e-3, abs=float(expected.abs().max()) * 1e-4
    )


def test_the_shared_folder_falls_back_to_its_68_point_basis():
    """../shared/data/bfm has no dense bases until get-bfm-bases runs; landmarks still decode."""
    folder = shared("bfm")
    if (folder / "w_shp_sim.npy").is_file():
        pytest.skip("this bfm folder has its dense bases")
    assert load_bfm(folder).n_vertices == 68
