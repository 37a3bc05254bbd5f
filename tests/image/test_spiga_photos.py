"""SPIGA as a photo model: `image --model spiga` gives 2D landmarks and pose (no 3D points, no mesh),
its points land where the network puts them in the crop, and `eval 300w --model spiga` runs."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.geometry.crops import CROP_PIXEL_OFFSET
from facegraph.image.spiga import SpigaRegressor, from_unit, save_spiga
from facegraph.nn.spiga import CONFIGS, Spiga
from facegraph.registry import load_model
from tests.geometry.test_pinhole import face_like_points
from tests.test_commands_run import einstein_faces, strict_json


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("spiga") / "spiga.safetensors"
    save_spiga(path, Spiga(CONFIGS["spiga-fast"], face_like_points(), 3.0).eval(), {"val_nme": 1.0})
    return path


def test_unit_points_map_to_the_crop_frame_and_through_the_box_to_the_photo() -> None:
    assert from_unit(np.array([0.5 / 120]), 120) == pytest.approx(CROP_PIXEL_OFFSET)
    network = Spiga(CONFIGS["spiga-fast"], face_like_points(), 3.0).eval()
    model = SpigaRegressor(network)
    crops = np.random.default_rng(0).integers(0, 255, (2, 120, 120, 3), dtype=np.uint8)
    boxes = np.array([[10.0, 20.0, 250.0, 260.0], [0.0, 0.0, 120.0, 120.0]])
    prediction = model.predict(crops, boxes)
    with torch.no_grad():
        unit = network(model.normalise(crops))["steps"][-1].numpy()
    crop_points = from_unit(unit, 120)
    # the second box is the crop itself: photo pixels are crop-frame points, y down
    np.testing.assert_allclose(prediction.landmarks[1, :, :2], crop_points[1], atol=1e-4)
    scale = (boxes[0, 2] - boxes[0, 0]) / 120
    np.testing.assert_allclose(
        prediction.landmarks[0, :, :2], crop_points[0] * scale + boxes[0, :2], atol=1e-3
    )
    assert prediction.params is None and prediction.pose.shape == (2, 3)
    assert np.all(prediction.landmarks[..., 2] == 0)


def test_image_with_spiga_gives_2d_points_and_pose_only(tmp_path: Path, weights: Path, capsys) -> None:
    photo = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), photo)
    argv = ["image", str(photo), "--model", "spiga", "--weights", str(weights), "--json", "-", "--quiet"]
    assert main(argv) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    assert len(face["points_2d"]) == 68 and set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert "points_3d" not in face and "params" not in face and "camera" not in face
    assert main([*argv[:-3], "--mirror-average", "--json", "-", "--quiet"]) == 0
    (mirrored,) = json.loads(capsys.readouterr().out)["faces"]
    assert mirrored["points_2d"] != face["points_2d"]


def test_a_mesh_from_spiga_is_refused_in_one_line(tmp_path: Path, weights: Path, capsys) -> None:
    photo = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), photo)
    argv = [
        "image",
        str(photo),
        "--model",
        "spiga",
        "--weights",
        str(weights),
        "--mesh",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(argv) == 2
    assert "gives 2D landmarks only" in capsys.readouterr().err


def test_spiga_needs_its_weights(capsys) -> None:
    assert main(["image", str(sample_path("astronaut.jpg")), "--model", "spiga", "--quiet"]) == 2
    assert "needs --weights" in capsys.readouterr().err


def test_eval_300w_runs_spiga_and_matches_its_predictions(tmp_path: Path, weights: Path, capsys) -> None:
    from tests.test_commands_run import by_hand

    faces = einstein_faces(tmp_path / "ibug")
    argv = ["eval", "300w", "--data", str(tmp_path / "ibug"), "--model", "spiga", "--weights", str(weights)]
    assert main([*argv, "--quiet", "--json", "-"]) == 0
    report = strict_json(capsys.readouterr().out)
    model = load_model("spiga", weights=weights, kind="image")
    expected = np.array([by_hand(model, photo, gt) for photo, gt in faces])
    assert report["nme_interocular"] == pytest.approx(expected[:, 0].mean(), abs=1e-4)


@pytest.fixture(scope="module")
def exported(weights: Path, tmp_path_factory) -> tuple[Path, str]:
    """The ONNX file of ``weights`` and what `export onnx` printed."""
    pytest.importorskip("onnxscript", reason="ONNX export needs the export extra")
    path = tmp_path_factory.mktemp("spiga-onnx") / "spiga.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "onnx", str(path), "--model", "spiga", "--weights", str(weights)]) == 0
    return path, printed.getvalue()


def test_spiga_exports_to_onnx_and_runs_in_place_of_pytorch(
    tmp_path: Path, weights: Path, exported: tuple[Path, str], capsys
) -> None:
    """The export reports its parity check; `image --onnx` then finds the same points and pose."""
    path, printed = exported
    line = printed.strip().splitlines()[-1]
    assert line.startswith(f"wrote {path}; ONNX Runtime vs PyTorch on 4 crops: largest difference ")
    assert float(line.rsplit(" ", 1)[1]) < 1e-3
    photo = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), photo)
    argv = ["image", str(photo), "--model", "spiga", "--weights", str(weights), "--json", "-", "--quiet"]
    assert main(argv) == 0
    (torch_face,) = json.loads(capsys.readouterr().out)["faces"]
    assert main([*argv, "--onnx", str(path)]) == 0
    (onnx_face,) = json.loads(capsys.readouterr().out)["faces"]
    np.testing.assert_allclose(onnx_face["points_2d"], torch_face["points_2d"], atol=1e-2)
    assert onnx_face["pose"] == pytest.approx(torch_face["pose"], abs=1e-2)
    assert "points_3d" not in onnx_face


def test_a_spiga_onnx_file_beside_other_weights_or_asked_for_int8_is_refused(
    tmp_path: Path, exported: tuple[Path, str], capsys
) -> None:
    from tests.test_cli import user_error

    torch.manual_seed(1)
    other = tmp_path / "other.safetensors"
    save_spiga(other, Spiga(CONFIGS["spiga-fast"], face_like_points(), 3.0).eval(), {})
    argv = ["image", str(sample_path("astronaut.jpg")), "--model", "spiga", "--weights", str(other)]
    assert "other SPIGA weights" in user_error([*argv, "--onnx", str(exported[0]), "--quiet"], capsys)
    int8 = ["export", "onnx", str(tmp_path / "q.onnx"), "--model", "spiga", "--weights", str(other)]
    assert "--int8 supports synergynet" in user_error(
        [*int8, "--int8", "--calibration", str(tmp_path)], capsys
    )
    assert not (tmp_path / "q.onnx").exists()
