"""SynergyNet as a crop regressor: its weights file, its two decoding paths, the registry and ONNX.

Random-weight networks stand in for the shipped one; their whitening places the faces they decode
inside the crop, as trained weights would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facegraph.errors import InputError
from facegraph.geometry.crops import crop_to_image
from facegraph.image.onnx import (
    PRECISION_KEY,
    OnnxRegressor,
    OnnxSession,
    export_onnx,
    predict_onnx,
    quantize_int8,
)
from facegraph.image.synergynet import (
    BUNDLED_NAME,
    LandmarkWhitening,
    SynergyRegressor,
    bundled_weights,
    load_synergynet,
    read_figures,
    save_synergynet,
)
from facegraph.morphable.bfm import MorphableModel, ParamWhitening
from facegraph.nn.synergynet import SynergyNet
from facegraph.registry import load_model
from tests.test_cli import write_bfm_basis

WIDTH = 0.35
# 3DDFA's crop frame: a camera of scale ~1e-3 on BFM micrometres, translated to the crop's centre.
CAMERA = np.array([[1e-3, 0, 0, 60.0], [0, 1e-3, 0, 60.0], [0, 0, 1e-3, 0]])


def synthetic_morphable(n_vertices: int = 68, seed: int = 0) -> MorphableModel:
    """A random face about 40,000 units wide (the BFM's micrometres); more than 68 vertices: dense."""
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-2e4, 2e4, (n_vertices, 3)) * [1.0, 1.0, 0.5]
    dense = n_vertices != 68
    return MorphableModel(
        mean.ravel(),
        rng.normal(0, 300, (3 * n_vertices, 40)),
        rng.normal(0, 300, (3 * n_vertices, 10)),
        landmark_vertices=rng.choice(n_vertices, 68, replace=False) if dense else np.arange(68),
        triangles=np.array([[0, 1, 2], [1, 2, 3]]) if dense else None,
    )


def face_whitening() -> ParamWhitening:
    """Parameter statistics whose mean is a frontal face filling the middle of a 120 crop."""
    mean = np.concatenate([CAMERA.ravel(), np.zeros(50)])
    std = np.concatenate([np.tile([2e-5, 2e-5, 2e-5, 1.0], 3), np.ones(50)])
    return ParamWhitening(mean, std)


def landmark_whitening(seed: int = 0) -> LandmarkWhitening:
    morphable = synthetic_morphable(seed=seed)
    mean = morphable.landmarks(torch.as_tensor(face_whitening().mean[None])).numpy()
    return LandmarkWhitening(mean.reshape(-1), np.full(204, 2.0))


def random_network(width: float = WIDTH, seed: int = 0) -> SynergyNet:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return SynergyNet(width).eval()


def write_random_synergynet(path: Path, width: float = WIDTH, seed: int = 0) -> Path:
    """A random-weight SynergyNet weights file at ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    network = random_network(width, seed)
    save_synergynet(
        path, network, face_whitening(), landmark_whitening(), width, {"epoch": 3, "nme_human": 4.5}
    )
    return path


def random_crops(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (n, 120, 120, 3), dtype=np.uint8)
    boxes = np.tile([100.0, 50.0, 340.0, 290.0], (n, 1)) + rng.uniform(-20, 20, (n, 1))
    return crops, boxes


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_random_synergynet(tmp_path_factory.mktemp("synergynet") / "weights" / BUNDLED_NAME)


def test_saved_weights_load_back_to_the_same_predictions_and_figures(tmp_path):
    network = random_network(seed=3)
    save_synergynet(
        tmp_path / "w.safetensors", network, face_whitening(), landmark_whitening(), WIDTH, {"epoch": 7}
    )
    original = SynergyRegressor(network, face_whitening(), landmark_whitening(), None).eval()
    loaded = load_synergynet(tmp_path / "w.safetensors", None)
    assert not loaded.training
    crops, boxes = random_crops(2)
    before, after = original.predict(crops, boxes), loaded.predict(crops, boxes)
    np.testing.assert_allclose(after.params, before.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(after.landmarks, before.landmarks, rtol=0, atol=1e-6)
    np.testing.assert_allclose(after.pose, before.pose, rtol=0, atol=1e-6)
    assert read_figures(tmp_path / "w.safetensors") == {"epoch": 7}


def _manual_outputs(model: SynergyRegressor, crops: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Unwhitened parameters and the landmark head's (B, 68, 3) points, computed by hand."""
    images = torch.as_tensor(crops, dtype=torch.float32).permute(0, 3, 1, 2)
    with torch.inference_mode():
        out = model.network((images - 127.5) / 128.0)
    whitening, points = face_whitening(), landmark_whitening()
    params = out["params"] * torch.as_tensor(whitening.std) + torch.as_tensor(whitening.mean)
    head = out["landmarks"] * torch.as_tensor(points.std) + torch.as_tensor(points.mean)
    return params, head.reshape(-1, 68, 3)


def test_without_a_morphable_model_landmarks_come_from_the_landmark_head(weights):
    model = load_synergynet(weights, None)
    crops, boxes = random_crops(2)
    params, head = _manual_outputs(model, crops)
    prediction = model.predict(crops, boxes)
    np.testing.assert_allclose(prediction.params, params.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prediction.landmarks, crop_to_image(head.numpy(), boxes, 120), atol=1e-3)
    # the random network's faces lie in the crop box, as the whitening intends
    assert (
        (prediction.landmarks[..., :2] > boxes[:, None, :2])
        & (prediction.landmarks[..., :2] < boxes[:, None, 2:])
    ).all()


def test_with_a_morphable_model_landmarks_are_decoded_from_the_parameters(weights):
    morphable = synthetic_morphable(seed=1)
    with_bfm, without = load_synergynet(weights, morphable), load_synergynet(weights, None)
    crops, boxes = random_crops(2)
    params, head = _manual_outputs(with_bfm, crops)
    prediction = with_bfm.predict(crops, boxes)
    decoded = morphable.landmarks(params).numpy()
    np.testing.assert_allclose(prediction.landmarks, crop_to_image(decoded, boxes, 120), atol=1e-3)
    assert np.abs(prediction.landmarks - without.predict(crops, boxes).landmarks).max() > 1.0
    np.testing.assert_allclose(prediction.pose, without.predict(crops, boxes).pose, atol=1e-6)


def test_missing_weights_are_a_user_error_naming_the_path(tmp_path):
    with pytest.raises(InputError, match="SynergyNet weights not found") as error:
        load_synergynet(tmp_path / "absent.safetensors", None)
    assert error.value.path == tmp_path / "absent.safetensors"
    with pytest.raises(InputError, match="not found") as error:
        load_synergynet(tmp_path, None)  # a folder without the weights file
    assert error.value.path == tmp_path / BUNDLED_NAME


def test_a_file_that_is_not_safetensors_is_a_user_error(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_text("these are not weights\n")
    with pytest.raises(InputError, match="not SynergyNet weights") as error:
        load_synergynet(path, None)
    assert error.value.path == path
    assert str(path) in str(error.value)


def test_another_models_safetensors_is_a_user_error():
    from facegraph.mesh.landmarker import bundled_weights

    mesh_weights = bundled_weights()
    with pytest.raises(InputError, match="not SynergyNet weights") as error:
        load_synergynet(mesh_weights, None)
    assert error.value.path == mesh_weights


def test_weights_of_another_width_are_a_user_error(tmp_path):
    path = tmp_path / "w.safetensors"
    save_synergynet(path, random_network(0.35), face_whitening(), landmark_whitening(), 1.0, {})
    with pytest.raises(InputError, match="do not fit SynergyNet x1") as error:
        load_synergynet(path, None)
    assert error.value.path == path and "\n" not in str(error.value)


def test_registry_builds_synergynet_without_the_bfm(weights, tmp_path, monkeypatch):
    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    monkeypatch.setenv("FACEGRAPH_DATA", str(tmp_path / "no-setup"))  # nor one `setup bfm` installed
    model = load_model("synergynet", weights=weights)
    assert isinstance(model, SynergyRegressor) and model.morphable is None
    model = load_model("synergynet", weights=weights.parent)  # a folder holding the file by its shipped name
    assert model.morphable is None


def test_registry_folds_batchnorm_and_predicts_what_the_weights_file_does(tmp_path, monkeypatch):
    from tests.nn.test_fusion import with_trained_statistics

    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    monkeypatch.setenv("FACEGRAPH_DATA", str(tmp_path / "no-setup"))  # nor one `setup bfm` installed
    network = with_trained_statistics(random_network(WIDTH, 0))  # folding must matter to the answers
    weights = tmp_path / BUNDLED_NAME
    save_synergynet(weights, network, face_whitening(), landmark_whitening(), WIDTH, {"epoch": 1})
    model = load_model("synergynet", weights=weights)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.network.modules())
    crops, boxes = random_crops(2)
    expected = load_synergynet(weights, None).predict(crops, boxes)
    actual = model.predict(crops, boxes)
    np.testing.assert_allclose(actual.landmarks, expected.landmarks, atol=1e-3)
    np.testing.assert_allclose(actual.pose, expected.pose, atol=1e-3)


def test_registry_gives_synergynet_the_bfm_when_one_is_named_or_beside(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    weights = write_random_synergynet(tmp_path / "weights" / BUNDLED_NAME)
    bfm = write_bfm_basis(tmp_path / "elsewhere")
    assert load_model("synergynet", weights=weights, bfm=bfm).morphable.n_vertices == 68
    write_bfm_basis(tmp_path / "bfm")
    assert load_model("synergynet", weights=weights).morphable is not None


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("onnx") / "synergynet.onnx"
    parity = export_onnx(load_synergynet(weights, None), path)
    return path, parity


def test_onnx_export_matches_pytorch(exported):
    path, parity = exported
    assert path.is_file() and path.stat().st_size > 100_000
    assert parity["batch"] == 4
    assert 0 <= parity["max_abs_difference"] < 1e-3


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("with_bfm", [False, True])
def test_onnx_runtime_predicts_what_pytorch_predicts(exported, weights, batch, with_bfm):
    model = load_synergynet(weights, synthetic_morphable() if with_bfm else None)
    session = OnnxSession(exported[0], threads=1)
    crops, boxes = random_crops(batch, seed=batch)
    expected, got = model.predict(crops, boxes), predict_onnx(session, model, crops, boxes)
    assert got.landmarks.shape == (batch, 68, 3)
    np.testing.assert_allclose(got.landmarks, expected.landmarks, rtol=0, atol=1e-3)
    np.testing.assert_allclose(got.pose, expected.pose, rtol=0, atol=1e-2)
    np.testing.assert_allclose(got.params, expected.params, rtol=1e-3, atol=1e-6)


def lively_synergynet(path: Path) -> Path:
    """Random weights whose batch-norm statistics come from crops, so that outputs vary from crop to
    crop as a trained network's do (a freshly initialised one answers ~1e-8 whatever it sees)."""
    network = random_network(seed=5)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the batches below
    network.train()
    with torch.no_grad():
        for seed in range(3):
            crops, _ = random_crops(16, seed=100 + seed)
            network((torch.from_numpy(crops).float().permute(0, 3, 1, 2) - 127.5) / 128.0)
    save_synergynet(path, network.eval(), face_whitening(), landmark_whitening(), WIDTH, {})
    return path


def test_the_int8_model_stays_close_to_the_float_one_and_runs_in_place_of_it(tmp_path):
    weights = lively_synergynet(tmp_path / "lively.safetensors")
    model = load_synergynet(weights, None)
    exported = (tmp_path / "float.onnx",)
    export_onnx(model, exported[0])
    calibration, _ = random_crops(64, seed=7)
    path = tmp_path / "int8.onnx"
    report = quantize_int8(model, exported[0], path, calibration)
    assert report["faces"] == 64 and 0 < report["mean_shift_px"] <= report["max_shift_px"]
    assert report["mean_shift_px"] < 1.0
    assert OnnxSession(exported[0]).precision == "float32" and OnnxSession(path).precision == "int8"
    assert path.stat().st_size < exported[0].stat().st_size  # int8 convolution weights
    crops, boxes = random_crops(5, seed=8)
    expected = model.predict(crops, boxes)
    got = OnnxRegressor(model, OnnxSession(path)).predict(crops, boxes)
    assert got.landmarks.shape == (5, 68, 3)
    # Boxes of ~240 px on 120 px crops: 2 px here is 1 px in the crop.
    assert np.linalg.norm(got.landmarks[..., :2] - expected.landmarks[..., :2], axis=-1).mean() < 2.0


def test_int8_needs_calibration_crops(exported, weights, tmp_path):
    with pytest.raises(InputError, match="no face crops"):
        quantize_int8(
            load_synergynet(weights, None), exported[0], tmp_path / "int8.onnx", np.empty((0, 120, 120, 3))
        )
    assert not (tmp_path / "int8.onnx").exists()


def test_an_onnx_file_from_other_weights_is_refused(exported, tmp_path):
    other = tmp_path / "other.safetensors"
    save_synergynet(other, random_network(), face_whitening(), landmark_whitening(seed=1), WIDTH, {})
    with pytest.raises(InputError, match="other SynergyNet weights") as error:
        OnnxRegressor(load_synergynet(other, None), OnnxSession(exported[0]))
    assert error.value.path == exported[0]


def test_an_onnx_file_without_facegraph_metadata_is_refused(exported, weights, tmp_path):
    import onnx

    graph = onnx.load(str(exported[0]))
    del graph.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(graph, str(foreign))
    session = OnnxSession(foreign)
    assert PRECISION_KEY not in session.metadata
    with pytest.raises(InputError, match="not exported by facegraph"):
        OnnxRegressor(load_synergynet(weights, None), session)


def test_a_file_that_is_not_onnx_is_a_user_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00not onnx")
    with pytest.raises(InputError, match="not a readable ONNX model") as error:
        OnnxSession(path)
    assert error.value.path == path


def test_the_shipped_weights_fit_the_size_limit_and_have_a_model_card():
    path = bundled_weights()
    assert path.is_file()
    assert path.stat().st_size <= 20 * 1024 * 1024
    card = path.with_suffix(".md").read_text()
    for section in ("Data", "Recipe", "Figures"):
        assert f"## {section}" in card


def test_the_shipped_weights_find_einsteins_landmarks_without_the_bfm(monkeypatch):
    """The bundled photo's annotation: inner-51 error within 12 % of the outer-eye-corner distance
    (the shipped weights give 8.5-9 %; a broken crop, frame or whitening gives hundreds)."""
    from facegraph.demo import sample_path
    from facegraph.image import FaceAnalyzer
    from facegraph.io import read_landmarks
    from facegraph.schemes import normalisation_distance

    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    truth = read_landmarks(sample_path("einstein.pts")).points
    dlib_box = np.array([[354.0, 285.0, 444.0, 375.0]])  # dlib HOG's box for his face (upsample 1)
    (face,) = FaceAnalyzer(weights=None).analyze(sample_path("einstein.jpg"), boxes=dlib_box)
    errors = np.linalg.norm(face.landmarks_2d.points - truth, axis=1)
    assert errors[17:].mean() / normalisation_distance(truth, "ibug68", "outer_eye_corners") < 0.12
