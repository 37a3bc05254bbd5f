"""The ``facegraph`` command: listings, one-line user errors with exit code 2, and what it writes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.io import read_landmarks
from facegraph.schemes import convert
from tests.conftest import shared

NAMES = ["image00002.jpg", "image00004.jpg", "image00006.jpg"]
CONFIGS = (
    "AFLW2000-3D.pts68.npy",
    "AFLW2000-3D-Reannotated.pts68.npy",
    "AFLW2000-3D.pose.npy",
    "AFLW2000-3D_crop.roi_box.npy",
)
CHECKPOINT = "mb05_120x120.pth"
STATS = "param_mean_std_62d_120x120.pkl"


def write_layout(root: Path, omit: str | None = None) -> Path:
    """A three-face 3DDFA layout of AFLW2000-3D with plausible values; ``omit`` leaves a config out."""
    rng = np.random.default_rng(0)
    (root / "crops-120").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "crops-120.list").write_text("\n".join(NAMES) + "\n")
    for name in NAMES:
        Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(root / "crops-120" / name)
    arrays = [
        rng.uniform(60, 300, (3, 3, 68)),
        rng.uniform(60, 300, (3, 2, 68)),
        np.array([10.0, -40.0, 70.0]),  # one face per yaw bin
        np.tile([20.0, 20.0, 340.0, 340.0], (3, 1)),
    ]
    for file, array in zip(CONFIGS, arrays, strict=True):
        if file != omit:
            np.save(root / "configs" / file, array.astype(np.float32))
    return root


def write_bfm_basis(folder: Path) -> Path:
    """A random morphable model in the 68-point text layout, so the BFM never blocks a weights error."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    np.savetxt(folder / "u_base.txt", rng.normal(0, 50, 204))
    np.savetxt(folder / "w_shp_base.txt", rng.normal(0, 1, (204, 40)))
    np.savetxt(folder / "w_exp_base.txt", rng.normal(0, 1, (204, 10)))
    return folder


def eval_args(data: Path, *extra: str) -> list[str]:
    return ["eval", "aflw2000-3d", "--data", str(data), "--model", "3ddfa-v2-mb05", "--quiet", *extra]


def user_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command expecting a user error: exit code 2 and one line on stderr, which is returned."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("facegraph: error: ")
    assert err.endswith("\n") and err.count("\n") == 1
    assert "Traceback" not in err
    return err


def weights_folder(tmp_path: Path, checkpoint: bytes | dict) -> Path:
    """tmp_path/weights with a checkpoint (raw bytes or a dict to torch.save) and the real statistics,
    beside a bfm/ folder, where the model loader looks for the BFM."""
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(shared(f"3ddfa-v2/{STATS}"), folder / STATS)
    if isinstance(checkpoint, bytes):
        (folder / CHECKPOINT).write_bytes(checkpoint)
    else:
        torch.save(checkpoint, folder / CHECKPOINT)
    write_bfm_basis(tmp_path / "bfm")
    return folder


def test_models_lists_the_peer_and_where_its_weights_come_from(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "3ddfa-v2-mb05" in out
    assert f"weights: --weights DIR holding 3DDFA_V2's {CHECKPOINT} and {STATS}" in out
    assert "github.com/cleardusk/3DDFA_V2" in out


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("models", "convert", "demo", "setup", "eval", "train", "fit", "export", "image", "mesh"):
        assert f"\n    {command} " in out


DOCUMENTED_COMMANDS = (
    "models", "convert", "demo", "image", "mesh", "eval aflw2000-3d", "eval 300w", "eval mesh",
    "train synergynet", "train spiga", "train mesh", "fit mesh-offsets", "fit mesh-prior", "export onnx",
    "setup bfm",
)  # fmt: skip
# What a section says in other words: the shared options, and "the model options are those of `eval
# aflw2000-3d`" in `eval 300w`.
IMPLIED = {
    "image": {"--device", "--json", "--quiet", "--overwrite"},
    "mesh": {"--device", "--json", "--quiet", "--overwrite"},
    "eval": {"--device", "--json", "--quiet", "--overwrite"},
    "eval 300w": {"--bfm", "--onnx", "--mirror-average"},
}
# Flags a section names that belong to other commands: `models` says what the peers' --weights are.
NOT_ITS_OWN = {"models": {"--weights"}}


def documented_flags(command: str) -> set[str]:
    """The flags docs/cli.md gives under ``## `facegraph COMMAND` ``: in its prose and tables, and in its
    examples that run this command (examples of other commands, and their output, are left out)."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    section = docs.split(f"\n## `facegraph {command}`\n", 1)[1].split("\n## ", 1)[0]
    flags, runs_it = set(), False
    for i, part in enumerate(section.split("```")):
        if i % 2:  # a code block: only the lines of an example of this command (and its continuations)
            for line in part.splitlines():
                text = line.removeprefix("$ ").strip()
                runs_it = text.startswith(f"facegraph {command}") or (runs_it and text.startswith("--"))
                if runs_it:
                    flags |= set(re.findall(r"--[a-z][a-z0-9-]*", text))
                runs_it = runs_it and line.rstrip().endswith("\\")
        else:
            for span in re.findall(r"`([^`]+)`", part):
                if not (span.startswith("facegraph ") and not span.startswith(f"facegraph {command}")):
                    flags |= set(re.findall(r"--[a-z][a-z0-9-]*", span))
    return flags


@pytest.mark.parametrize("command", DOCUMENTED_COMMANDS)
def test_each_commands_help_shows_every_flag_its_documentation_names(command: str, capsys) -> None:
    """`facegraph COMMAND --help` exits 0 and lists each flag docs/cli.md documents for that command
    (and --debug, which every command shares)."""
    with pytest.raises(SystemExit) as exit_:
        main([*command.split(), "--help"])
    assert exit_.value.code == 0
    shown = set(re.findall(r"--[a-z][a-z0-9-]*", capsys.readouterr().out))
    expected = (documented_flags(command) - NOT_ITS_OWN.get(command, set())) | {"--debug"}
    expected |= IMPLIED.get(command.split()[0], set()) | IMPLIED.get(command, set())
    assert expected - shown == set()


def test_missing_data_folder_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    err = user_error(eval_args(tmp_path / "absent"), capsys)
    assert f"{tmp_path / 'absent'}: AFLW2000-3D folder not found" in err


def test_missing_data_folder_exits_2_from_a_real_process(tmp_path: Path) -> None:
    command = Path(sys.executable).with_name("facegraph")
    done = subprocess.run(
        [str(command), *eval_args(tmp_path / "absent")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"facegraph: error: {tmp_path / 'absent'}: AFLW2000-3D folder not found"
    ]


@pytest.mark.parametrize("missing", CONFIGS)
def test_data_folder_missing_a_config_file_names_it(tmp_path: Path, capsys, missing: str) -> None:
    data = write_layout(tmp_path / "aflw", omit=missing)
    err = user_error(eval_args(data), capsys)
    assert f"{data / 'configs' / missing}: missing file of the AFLW2000-3D layout" in err


def test_corrupt_mat_in_the_original_layout_is_named(tmp_path: Path, capsys) -> None:
    Image.fromarray(np.zeros((450, 450, 3), np.uint8)).save(tmp_path / "image00002.jpg")
    (tmp_path / "image00002.mat").write_bytes(np.random.default_rng(0).bytes(800))
    err = user_error(eval_args(tmp_path), capsys)
    assert f"{tmp_path / 'image00002.mat'}: not an AFLW2000-3D .mat" in err


def test_model_without_weights_says_where_they_come_from(tmp_path: Path, capsys) -> None:
    err = user_error(eval_args(write_layout(tmp_path / "aflw")), capsys)
    assert "model 3ddfa-v2-mb05 needs --weights" in err


def test_unknown_model_lists_the_known_ones(tmp_path: Path, capsys) -> None:
    argv = ["eval", "aflw2000-3d", "--data", str(write_layout(tmp_path / "aflw")), "--model", "nope"]
    err = user_error(argv, capsys)
    assert "unknown model 'nope'; known models: synergynet, 3ddfa-v2-mb05" in err


def test_weights_folder_without_the_checkpoint_is_named(tmp_path: Path, capsys) -> None:
    data = write_layout(tmp_path / "aflw")
    (tmp_path / "weights").mkdir()
    write_bfm_basis(tmp_path / "bfm")
    err = user_error(eval_args(data, "--weights", str(tmp_path / "weights")), capsys)
    assert f"{tmp_path / 'weights' / CHECKPOINT}: 3DDFA_V2 checkpoint not found" in err


def test_corrupt_checkpoint_is_named(tmp_path: Path, capsys) -> None:
    data = write_layout(tmp_path / "aflw")
    weights = weights_folder(tmp_path, np.random.default_rng(0).bytes(4096))
    err = user_error(eval_args(data, "--weights", str(weights)), capsys)
    assert f"{weights / CHECKPOINT}: not a readable PyTorch checkpoint" in err


def test_weights_of_the_wrong_shape_do_not_fit(tmp_path: Path, capsys) -> None:
    state = torch.load(shared(f"3ddfa-v2/{CHECKPOINT}"), map_location="cpu", weights_only=True)["state_dict"]
    state["module.fc_param.weight"] = torch.zeros(61, 512)
    data = write_layout(tmp_path / "aflw")
    weights = weights_folder(tmp_path, {"state_dict": state})
    err = user_error(eval_args(data, "--weights", str(weights)), capsys)
    assert f"{weights / CHECKPOINT}: weights do not fit MobileNetV1 x0.5" in err


def test_json_into_a_missing_folder_fails_before_reading_anything(tmp_path: Path, capsys) -> None:
    """The data folder is missing too: the error names the output's folder, so it was checked first."""
    report = tmp_path / "no-such-folder" / "report.json"
    err = user_error(eval_args(tmp_path / "absent", "--json", str(report)), capsys)
    assert f"{report.parent}: cannot write: the folder does not exist" in err


def test_debug_after_the_subcommand_shows_the_error_itself(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="AFLW2000-3D folder not found"):
        main(eval_args(tmp_path / "absent", "--debug"))


def test_300w_annotations_without_photos_point_to_the_images_flag(tmp_path: Path, capsys) -> None:
    record = {"imgpath": "test/1.jpg", "bbox": [0, 0, 10, 10], "landmarks": [[1.0, 2.0]] * 68}
    (tmp_path / "test.json").write_text(json.dumps([record]))
    err = user_error(["eval", "300w", "--data", str(tmp_path), "--quiet"], capsys)
    assert f"{tmp_path / 'test' / '1.jpg'}: photo not found" in err
    assert "--images" in err


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def test_eval_writes_its_report_and_nothing_into_the_data_folder(tmp_path: Path, capsys) -> None:
    weights = shared("3ddfa-v2")
    shared("bfm")  # found beside the weights
    data = write_layout(tmp_path / "aflw")
    before = snapshot(data)
    report_path = tmp_path / "out" / "report.json"
    report_path.parent.mkdir()

    assert main(eval_args(data, "--weights", str(weights), "--json", str(report_path))) == 0

    assert snapshot(data) == before
    assert "AFLW2000-3D, 3 faces, model 3ddfa-v2-mb05" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert (report["dataset"], report["model"], report["n"]) == ("aflw2000-3d", "3ddfa-v2-mb05", 3)
    assert all(np.isfinite(list(report["nme"].values())))
    assert list(tmp_path.joinpath("out").iterdir()) == [report_path]


def test_convert_pts_to_json(tmp_path: Path, capsys) -> None:
    source = sample_path("einstein.pts")
    assert main(["convert", str(source), str(tmp_path / "einstein.json")]) == 0
    written = json.loads((tmp_path / "einstein.json").read_text())
    assert written["scheme"] == "ibug68"
    np.testing.assert_allclose(written["points"], read_landmarks(source).points)
    assert "68 points, scheme ibug68" in capsys.readouterr().out


def test_convert_to_five_points(tmp_path: Path) -> None:
    source = sample_path("einstein.pts")
    assert main(["convert", str(source), str(tmp_path / "five.json"), "--to", "five"]) == 0
    written = json.loads((tmp_path / "five.json").read_text())
    assert written["scheme"] == "five"
    np.testing.assert_allclose(written["points"], convert(read_landmarks(source), "five").points)


def test_convert_to_an_unknown_scheme_is_a_user_error(tmp_path: Path, capsys) -> None:
    source = sample_path("einstein.pts")
    err = user_error(["convert", str(source), str(tmp_path / "x.json"), "--to", "nonsense"], capsys)
    assert f"{source}: unknown landmark scheme 'nonsense'" in err
    assert not (tmp_path / "x.json").exists()


def test_demo_writes_the_files_it_lists(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    listed = [
        Path(line.split()[-1]) for line in printed.splitlines() if line.split()[-1].startswith(str(out))
    ]
    assert len(listed) == 13
    assert sorted(listed) == sorted(out.iterdir())
    portrait = json.loads((out / "astronaut.json").read_text())
    assert len(portrait["faces"]) == 1
    x0, y0, x1, y1 = portrait["faces"][0]["box"]
    points = np.array(portrait["faces"][0]["points_2d"])
    margin = 0.3 * (x1 - x0)
    assert ((points >= [x0 - margin, y0 - margin]) & (points <= [x1 + margin, y1 + margin])).all()
    with Image.open(out / "einstein-annotated.png") as annotated:
        annotated.verify()
        assert annotated.format == "PNG"
        assert annotated.size == (817, 1024)
    landmarks = json.loads((out / "einstein.json").read_text())
    assert len(landmarks["points"]) == 68


def test_train_synergynet_refuses_a_negative_augmentation_factor_before_loading_anything(tmp_path, capsys):
    argv = ["train", "synergynet", "--out", str(tmp_path / "run"), "--teacher-weights", str(tmp_path)]
    err = user_error([*argv, "--augmentation", "-1"], capsys)
    assert "augmentation factor must be a number >= 0" in err
    assert not (tmp_path / "run").exists()


def test_convert_refuses_to_overwrite_its_input(tmp_path, capsys):
    source = tmp_path / "face.pts"
    source.write_text("version: 1\nn_points: 5\n{\n" + "1 2\n3 4\n5 6\n7 8\n9 10\n" + "}\n")
    before = source.read_bytes()
    assert main(["convert", str(source), str(source)]) == 2
    assert "is an input of this run" in capsys.readouterr().err
    assert source.read_bytes() == before
