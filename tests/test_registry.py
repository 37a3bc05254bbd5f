import numpy as np
import pytest
import torch

from facegraph.errors import InputError
from facegraph.geometry.pose import pose_to_matrix
from facegraph.image.crop_regressor import poses_from_params
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.registry import MODELS, find_bfm_folder, get_model_spec, load_model
from facegraph.types import HeadPose
from tests.conftest import shared


def test_pose_comes_from_the_camera_rotation_whatever_its_scale():
    params = np.zeros((1, 62))
    camera = np.zeros((3, 4))
    camera[:, :3] = 0.0012 * pose_to_matrix(HeadPose(25, -10, 5))
    params[0, :12] = camera.ravel()
    assert poses_from_params(params)[0] == pytest.approx([25, -10, 5], abs=1e-6)


def test_registry_lists_the_peer_and_requires_its_weights():
    assert "3ddfa-v2-mb05" in MODELS
    with pytest.raises(InputError, match="needs --weights"):
        load_model("3ddfa-v2-mb05")
    with pytest.raises(InputError, match="unknown model"):
        load_model("no-such-model")


def test_registry_lists_photo_and_mesh_models_in_order():
    assert list(MODELS) == ["synergynet", "3ddfa-v2-mb05", "3ddfa-v2-mb1", "spiga", "facegraph-mesh"]
    assert [spec.kind for spec in MODELS.values()] == ["image", "image", "image", "image", "mesh"]
    mesh = MODELS["facegraph-mesh"]
    assert not mesh.needs_weights and not mesh.needs_bfm
    assert mesh.weights_source == "shipped, facegraph-mesh.safetensors (model card beside it)"


def test_the_mesh_model_loads_as_a_landmarker_on_the_cpu():
    landmarker = load_model(
        "facegraph-mesh", bfm="ignored: the mesh model has no morphable model", device="cpu"
    )
    assert isinstance(landmarker, MeshLandmarker)
    assert landmarker.device == torch.device("cpu")
    assert next(landmarker.model.parameters()).device == torch.device("cpu")


def test_a_model_of_the_wrong_kind_is_refused():
    assert get_model_spec("facegraph-mesh", kind="mesh").kind == "mesh"
    with pytest.raises(
        InputError, match="facegraph-mesh is for 3D scans, not photos; models for photos: synergynet, 3ddfa"
    ):
        load_model("facegraph-mesh", kind="image")
    with pytest.raises(
        InputError, match="synergynet is for photos, not 3D scans; models for 3D scans: facegraph-mesh$"
    ):
        get_model_spec("synergynet", kind="mesh")


def test_photo_models_are_built_on_the_device_asked_for():
    model = load_model("synergynet", device="cpu")
    assert next(model.network.parameters()).device == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device"):
        load_model("synergynet", device="nonsense")


def test_bfm_is_found_beside_the_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    (tmp_path / "bfm").mkdir()
    (tmp_path / "peer").mkdir()
    assert find_bfm_folder(None, tmp_path / "peer") == tmp_path / "bfm"
    assert find_bfm_folder("explicit", tmp_path / "peer") == "explicit"
    monkeypatch.setenv("FACEGRAPH_BFM", "from-env")
    assert find_bfm_folder(None, tmp_path / "peer") is None  # load_bfm reads the variable


def test_peer_predicts_a_plausible_face_on_a_real_crop():
    model = load_model("3ddfa-v2-mb05", shared("3ddfa-v2"), shared("bfm/keypoints68-basis"))
    from facegraph.datasets import load_aflw2000

    dataset = load_aflw2000(shared("aflw2000-3d"))
    with torch.inference_mode():
        prediction = model.predict(dataset.crop(0)[None], dataset.boxes[:1])
    error = np.linalg.norm(prediction.landmarks[0, :, :2] - dataset.landmarks[0, :, :2], axis=1).mean()
    box = dataset.landmarks[0, :, :2].max(0) - dataset.landmarks[0, :, :2].min(0)
    assert error / np.sqrt(box.prod()) < 0.06
    assert abs(prediction.pose[0, 0] - dataset.pose[0, 0]) < 10
