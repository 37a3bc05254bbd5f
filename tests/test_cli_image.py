"""``facegraph image`` and ``facegraph export onnx`` with a random-weight SynergyNet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image.detectors import iou
from tests.image.test_synergynet_model import write_random_synergynet
from tests.test_cli import user_error, write_bfm_basis

FACE_REGION = np.array([170.0, 60.0, 270.0, 180.0])


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_random_synergynet(tmp_path_factory.mktemp("cli-image") / "weights" / "random.safetensors")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), path)
    return path


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    path = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 240, 3), 128, np.uint8)).save(path)
    return path


def image_args(weights: Path, *extra: str) -> list[str]:
    return ["image", "--weights", str(weights), "--quiet", *extra]


def test_one_photo_writes_its_faces_as_json(weights, photo, tmp_path, capsys):
    assert main(image_args(weights, str(photo), "--json", str(tmp_path / "faces.json"))) == 0
    report = json.loads((tmp_path / "faces.json").read_text())
    assert report["photo"] == str(photo) and report["size"] == [512, 512]
    assert report["faces"] and iou(np.array(report["faces"][0]["box"]), FACE_REGION) > 0.5
    face = report["faces"][0]
    assert face["scheme"] == "ibug68" and np.array(face["points_2d"]).shape == (68, 2)
    assert np.array(face["points_3d"]).shape == (68, 3) and set(face["pose"]) >= {"yaw", "pitch", "roll"}
    out = capsys.readouterr().out
    assert f"{photo}: face 1: box " in out and "yaw " in out


def test_device_reaches_every_step_that_places_the_model(weights, photo, monkeypatch):
    # `--device cpu` on a GPU machine must not be undone by the analyzer's default placement
    import facegraph.devices
    import facegraph.image.analyzer

    asked = []

    def recording(requested=None):
        asked.append(requested)
        return facegraph.devices.pick_device("cpu")

    monkeypatch.setattr(facegraph.image.analyzer, "pick_device", recording)
    assert main(image_args(weights, str(photo), "--device", "cpu")) == 0
    assert asked and all(request == "cpu" for request in asked)


def test_json_to_standard_output_is_only_json(weights, photo, capsys):
    assert main(image_args(weights, str(photo), "--json", "-")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["faces"]


def test_a_photo_named_explicitly_is_processed_even_inside_the_output_folder(weights, photo, tmp_path):
    # `facegraph image photo.jpg --out .` must not skip the photo it was asked about
    before = photo.read_bytes()
    report_path = tmp_path / "faces.json"
    assert main(image_args(weights, str(photo), "--out", str(photo.parent), "--json", str(report_path))) == 0
    assert json.loads(report_path.read_text())["photo"] == str(photo)
    assert (photo.parent / f"{photo.stem}-annotated.png").is_file()
    assert photo.read_bytes() == before


def test_a_folder_skips_what_an_earlier_run_wrote_into_its_output_folder(weights, photo, tmp_path):
    out = photo.parent / "out"
    assert main(image_args(weights, str(photo.parent), "--out", str(out))) == 0
    report_path = tmp_path / "again.json"
    assert main(image_args(weights, str(photo.parent), "--out", str(out), "--json", str(report_path))) == 0
    assert json.loads(report_path.read_text())["photo"] == str(photo)


def test_json_naming_the_input_photo_is_refused_before_any_work(weights, photo, capsys):
    before = photo.read_bytes()
    err = user_error(image_args(weights, str(photo), "--json", str(photo)), capsys)
    assert f"{photo}: is an input of this run" in err
    assert photo.read_bytes() == before


def test_out_naming_a_file_is_one_line(weights, photo, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file\n")
    err = user_error(image_args(weights, str(photo), "--out", str(tmp_path / "taken")), capsys)
    assert "is a file, not a folder for the outputs" in err


def test_a_min_score_that_is_not_finite_is_refused(weights, photo, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(image_args(weights, str(photo), "--min-score", "nan"))
    assert exit_.value.code == 2 and "must be a finite number" in capsys.readouterr().err


def test_two_photos_write_one_record_each(weights, photo, blank, tmp_path):
    assert main(image_args(weights, str(photo), str(blank), "--json", str(tmp_path / "faces.json"))) == 0
    report = json.loads((tmp_path / "faces.json").read_text())
    assert [record["photo"] for record in report["photos"]] == [str(photo), str(blank)]
    assert report["photos"][0]["faces"] and report["photos"][1]["faces"] == []


def test_out_writes_an_annotated_photo_and_its_json(weights, photo, tmp_path):
    out = tmp_path / "out"
    assert main(image_args(weights, str(photo), "--out", str(out))) == 0
    annotated = Image.open(out / "astronaut-annotated.png")
    assert annotated.size == (512, 512)
    assert not np.array_equal(np.asarray(annotated.convert("RGB")), np.asarray(Image.open(photo)))
    record = json.loads((out / "astronaut.json").read_text())
    assert record["photo"] == str(photo) and record["faces"]


def test_a_photo_without_a_face_says_so_and_succeeds(weights, blank, tmp_path, capsys):
    assert main(image_args(weights, str(blank), "--json", str(tmp_path / "faces.json"))) == 0
    assert f"{blank}: no face found" in capsys.readouterr().err
    assert json.loads((tmp_path / "faces.json").read_text())["faces"] == []


def test_a_box_skips_detection(weights, blank, tmp_path):
    assert (
        main(image_args(weights, str(blank), "--box", "20,30,120,130", "--json", str(tmp_path / "f.json")))
        == 0
    )
    faces = json.loads((tmp_path / "f.json").read_text())["faces"]
    assert [face["box"] for face in faces] == [[20.0, 30.0, 120.0, 130.0]]


def test_a_box_of_three_numbers_is_a_one_line_error(weights, photo, capsys):
    err = user_error(image_args(weights, str(photo), "--box", "1,2,3"), capsys)
    assert "--box expects four numbers x0,y0,x1,y1, got '1,2,3'" in err


def test_a_box_outside_the_photo_names_the_photo(weights, photo, capsys):
    err = user_error(image_args(weights, str(photo), "--box", "600,10,700,100"), capsys)
    assert f"{photo}: the box" in err and "outside the 512x512 photo" in err


def test_a_text_file_named_like_a_photo_is_a_one_line_error(weights, tmp_path, capsys):
    path = tmp_path / "x.jpg"
    path.write_text("not a photo\n")
    err = user_error(image_args(weights, str(path)), capsys)
    assert f"{path}: not an image" in err


def test_a_truncated_jpeg_is_a_one_line_error(weights, tmp_path, capsys):
    path = tmp_path / "cut.jpg"
    path.write_bytes(sample_path("astronaut.jpg").read_bytes()[:5000])
    err = user_error(image_args(weights, str(path)), capsys)
    assert f"{path}: cannot decode the image" in err


def test_a_tiny_photo_is_a_one_line_error_naming_it(weights, tmp_path, capsys):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(path)
    err = user_error(image_args(weights, str(path)), capsys)
    assert f"{path}: the photo is too small" in err


def test_a_folder_reports_its_good_photos_and_fails_for_the_bad_one(weights, photo, blank, tmp_path, capsys):
    (tmp_path / "broken.jpg").write_text("not a photo\n")
    (tmp_path / "notes.txt").write_text("not a photo either, and not one by its name\n")
    report_path = tmp_path / "report" / "faces.json"
    report_path.parent.mkdir()
    assert main(image_args(weights, str(tmp_path), "--json", str(report_path))) == 2
    err = capsys.readouterr().err
    assert f"facegraph: error: {tmp_path / 'broken.jpg'}: not an image" in err
    assert err.rstrip().splitlines()[-1] == "facegraph: error: 1 of 3 photos could not be read (see above)"
    assert "Traceback" not in err
    records = json.loads(report_path.read_text())["photos"]
    assert [Path(r["photo"]).name for r in records] == ["astronaut.jpg", "blank.png"]
    assert records[0]["faces"]


def test_onnx_export_refuses_weights_that_are_not_finite(tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    weights = write_random_synergynet(tmp_path / "w.safetensors")
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(weights)
    name = next(key for key, value in tensors.items() if value.is_floating_point() and value.ndim == 4)
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, weights, metadata=metadata)
    out = tmp_path / "m.onnx"
    err = user_error(["export", "onnx", str(out), "--weights", str(weights)], capsys)
    assert "has NaN or infinite values" in err
    assert not out.exists()


def test_debug_stops_at_the_first_bad_photo_with_its_traceback(weights, photo, tmp_path):
    # photos and scans share one per-file loop: --debug shows the failing file's error itself
    (tmp_path / "broken.jpg").write_text("not a photo\n")
    with pytest.raises(InputError, match="broken.jpg: not an image"):
        main(image_args(weights, str(photo), str(tmp_path / "broken.jpg"), "--debug"))


def test_a_folder_without_photos_is_a_one_line_error(weights, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    err = user_error(image_args(weights, str(tmp_path / "empty")), capsys)
    assert "holds no photo files" in err


def test_a_mesh_without_the_bfm_is_one_error_before_any_photo(weights, photo, blank, tmp_path, capsys):
    err = user_error(
        image_args(weights, str(photo), str(blank), "--mesh", "--out", str(tmp_path / "o")), capsys
    )
    assert "dense mesh needs the BFM" in err


def test_a_mesh_needs_an_output_folder(weights, photo, tmp_path, capsys):
    write_bfm_basis(tmp_path / "bfm")
    err = user_error(image_args(weights, str(photo), "--mesh", "--bfm", str(tmp_path / "bfm")), capsys)
    assert "--mesh" in err and "--out" in err


def test_export_onnx_writes_the_model_and_reports_parity(weights, tmp_path, capsys):
    out = tmp_path / "synergynet.onnx"
    assert main(["export", "onnx", str(out), "--weights", str(weights)]) == 0
    assert out.is_file() and out.stat().st_size > 100_000
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"wrote {out}; ONNX Runtime vs PyTorch on 4 crops: largest difference ")
    assert float(line.rsplit(" ", 1)[1]) < 1e-3


def test_export_onnx_refuses_a_model_without_its_weights(tmp_path, capsys):
    err = user_error(["export", "onnx", str(tmp_path / "m.onnx"), "--model", "3ddfa-v2-mb05"], capsys)
    assert "needs --weights" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_onnx_into_a_missing_folder_is_a_one_line_error(weights, tmp_path, capsys):
    err = user_error(
        ["export", "onnx", str(tmp_path / "absent" / "m.onnx"), "--weights", str(weights)], capsys
    )
    assert "cannot write: the folder does not exist" in err


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "synergynet.onnx"
    assert main(["export", "onnx", str(out), "--weights", str(weights)]) == 0
    return out


def test_image_with_onnx_gives_the_pytorch_answers(weights, exported, photo, tmp_path):
    assert main(image_args(weights, str(photo), "--json", str(tmp_path / "torch.json"))) == 0
    onnx_run = image_args(weights, str(photo), "--onnx", str(exported), "--json", str(tmp_path / "onnx.json"))
    assert main(onnx_run) == 0
    expected = json.loads((tmp_path / "torch.json").read_text())["faces"]
    got = json.loads((tmp_path / "onnx.json").read_text())["faces"]
    assert len(got) == len(expected) >= 1
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a["points_3d"], b["points_3d"], atol=0.05)


def test_image_refuses_an_onnx_file_exported_from_other_weights(exported, photo, tmp_path, capsys):
    from facegraph.image.synergynet import save_synergynet
    from tests.image.test_synergynet_model import WIDTH, face_whitening, landmark_whitening, random_network

    other = tmp_path / "other.safetensors"
    save_synergynet(other, random_network(), face_whitening(), landmark_whitening(seed=1), WIDTH, {})
    err = user_error(image_args(other, str(photo), "--onnx", str(exported)), capsys)
    assert str(exported) in err and "other SynergyNet weights" in err


def test_export_int8_needs_calibration_photos(weights, tmp_path, capsys):
    err = user_error(
        ["export", "onnx", str(tmp_path / "q.onnx"), "--weights", str(weights), "--int8"], capsys
    )
    assert "--int8 needs --calibration" in err
    assert not (tmp_path / "q.onnx").exists()


def test_export_int8_calibrates_on_the_faces_in_photos(weights, photo, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    args = ["export", "onnx", str(out), "--weights", str(weights), "--int8", "--quiet"]
    assert main([*args, "--calibration", str(photo.parent), "--calibration-faces", "4"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"wrote {out} (int8, calibrated on 1 face)")
    from facegraph.image.onnx import OnnxSession

    assert OnnxSession(out).precision == "int8"


def test_export_int8_without_faces_in_the_photos_is_a_user_error(weights, blank, tmp_path, capsys):
    args = ["export", "onnx", str(tmp_path / "q.onnx"), "--weights", str(weights), "--int8", "--quiet"]
    err = user_error([*args, "--calibration", str(blank)], capsys)
    assert "no face was found in the calibration photos" in err
    assert not (tmp_path / "q.onnx").exists()
