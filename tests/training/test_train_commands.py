"""`facegraph train synergynet` and `facegraph train mesh` run for one tiny epoch from the command line,
each flag asserted in the run's stored configuration (issue 26). The recipes' networks are swapped for
the tiny ones of the training tests, so an epoch takes seconds."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.io

import facegraph.training.mesh as mesh_training
import facegraph.training.synergynet as synergynet_training
from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.mesh.weights import load_weights
from tests.conftest import shared
from tests.datasets.test_synthetic_faces import fake_bfm
from tests.training.test_mesh_training import TINY as TINY_MESH
from tests.training.test_synergynet_training import TINY as TINY_PHOTO


def write_full_layout(model, folder: Path, with_whitening: bool = True) -> Path:
    """A morphable model in the BFM's full layout (dense bases, keypoints, tri.mat and, unless told
    not to, param_whitening.pkl)."""
    folder.mkdir(parents=True)
    np.save(folder / "u_shp.npy", model.mean.numpy().reshape(-1, 1))
    np.save(folder / "u_exp.npy", np.zeros((model.mean.numel(), 1), np.float32))
    np.save(folder / "w_shp_sim.npy", model.shape_basis.numpy())
    np.save(folder / "w_exp_sim.npy", model.expression_basis.numpy())
    keypoints = 3 * model.landmark_vertices.numpy()[:, None] + np.arange(3)
    np.save(folder / "keypoints_sim.npy", keypoints.reshape(-1).astype(np.int64))
    scipy.io.savemat(folder / "tri.mat", {"tri": (model.triangles + 1).T.astype(np.float64)})
    if with_whitening:
        stats = {"param_mean": model.whitening.mean, "param_std": model.whitening.std}
        (folder / "param_whitening.pkl").write_bytes(pickle.dumps(stats))
    return folder


def test_train_mesh_flags_reach_the_runs_configuration(tmp_path, monkeypatch, capsys):
    """`train mesh` with --points, --epochs, --learning-rate, --lr-schedule, --second-pass-fraction,
    --warp, --scans, --val-scans, --seed: each value is in history.json's config and the weights' stored
    one, and the scan caches are named by the scans, seed and warp asked for."""
    tiny = replace(
        TINY_MESH, model=replace(mesh_training.RECIPES["facegraph-mesh"].model, network=TINY_MESH.network)
    )
    monkeypatch.setitem(mesh_training.RECIPES, "facegraph-mesh", tiny)
    bfm = write_full_layout(fake_bfm(), tmp_path / "bfm")
    out = tmp_path / "run"
    argv = [
        "train", "mesh", "--config", "facegraph-mesh", "--out", str(out), "--bfm", str(bfm), "--quiet",
        "--scans", "4", "--val-scans", "2", "--seed", "5", "--points", "96", "--epochs", "1",
        "--learning-rate", "0.0025", "--lr-schedule", "cosine", "--second-pass-fraction", "0.3",
        "--warp", "0.5", "--workers", "1",
    ]  # fmt: skip
    assert main(argv) == 0
    assert f"-> {out / 'best.safetensors'}" in capsys.readouterr().out

    history = json.loads((out / "history.json").read_text())
    config = history["config"]
    assert (config["n_points"], config["epochs"], config["learning_rate"]) == (96, 1, 0.0025)
    assert (config["lr_schedule"], config["second_pass_fraction"]) == ("cosine", 0.3)
    assert [record["epoch"] for record in history["epochs"]] == [1]
    assert sorted(p.name for p in out.glob("cache-*.npz")) == [
        "cache-train-4-seed5-warp0.5.npz",
        "cache-val-2-seed7924-warp0.5.npz",
    ]
    stored = load_weights(out / "best.safetensors")[1]
    assert stored.n_points == 96


def test_train_synergynet_flags_reach_the_runs_configuration(tmp_path, monkeypatch, capsys):
    """`train synergynet` with --faces68, --teacher-weights, --human-convention, --targets, --whitening,
    --augmentation, --epochs, --learning-rate: each value is in history.json's config (augmentation as
    the rotation, scale, shift and colour strengths times the factor, flips unchanged)."""
    teacher = shared("3ddfa-v2")
    shared("bfm")  # the teacher's BFM, found beside its weights
    monkeypatch.setitem(synergynet_training.CONFIGS, "facegraph-photo", TINY_PHOTO)
    photos = tmp_path / "faces68"
    photos.mkdir()
    for i in range(8):
        shutil.copy(sample_path("einstein.jpg"), photos / f"photo{i}.jpg")
        shutil.copy(sample_path("einstein.pts"), photos / f"photo{i}.pts")
    out = tmp_path / "run"
    argv = [
        "train", "synergynet", "--out", str(out), "--faces68", str(photos), "--teacher-weights", str(teacher),
        "--quiet", "--epochs", "1", "--learning-rate", "0.0005", "--human-convention", "teacher",
        "--targets", "refitted", "--whitening", "plain", "--augmentation", "0.5",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(human convention: teacher; targets: refitted)" in printed

    config = json.loads((out / "history.json").read_text())["config"]
    assert (config["epochs"], config["lr"]) == (1, 0.0005)
    assert (config["human_convention"], config["targets"], config["whitening"]) == (
        "teacher",
        "refitted",
        "plain",
    )
    assert (config["max_rotation"], config["scale_range"]) == (
        0.5 * TINY_PHOTO.max_rotation,
        0.5 * TINY_PHOTO.scale_range,
    )
    assert (config["shift"], config["colour"]) == (0.5 * TINY_PHOTO.shift, 0.5 * TINY_PHOTO.colour)
    assert config["flip"] == TINY_PHOTO.flip
    assert (out / "best.safetensors").is_file()


def test_train_mesh_with_a_bfm_lacking_its_parameter_statistics_is_a_one_line_error(tmp_path, capsys):
    """docs/cli.md, bad input: a BFM missing a layout file is one line naming it, exit code 2."""
    bfm = write_full_layout(fake_bfm(), tmp_path / "bfm", with_whitening=False)
    argv = ["train", "mesh", "--out", str(tmp_path / "run"), "--bfm", str(bfm), "--quiet", "--scans", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("facegraph: error: ") and err.count("\n") == 1
    assert "param_whitening.pkl" in err
    assert not (tmp_path / "run").exists()  # refused before the run's folder is made


def write_spiga_mean_face(path: Path) -> Path:
    """A face-like 68-point mean face in SPIGA's ``id|x|y|z`` file layout."""
    from facegraph.io.landmarks import SPIGA_MEAN_FACE_ORDER
    from tests.geometry.test_pinhole import face_like_points

    points = face_like_points().numpy()
    lines = [f"{100 + k}|{x}|{y}|{z}" for k, (x, y, z) in enumerate(points[list(SPIGA_MEAN_FACE_ORDER)])]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_spiga_flags_reach_the_runs_configuration(tmp_path, capsys):
    """`train spiga` with --faces68, --mean-face, --pseudo-labels none, --epochs, --learning-rate,
    --seed, --freeze: each value is in history.json's config; a second run with --init starts from the
    first one's weights, and its frozen backbone stays as it was."""
    from facegraph.image.spiga import load_spiga
    from tests.datasets.test_faces68 import write_face

    photos = tmp_path / "faces68"
    for k in range(12):
        write_face(photos / f"photo{k // 2}_{k % 2 + 1}", seed=k)
    mean_face = write_spiga_mean_face(tmp_path / "mean_face_3D_68.txt")
    out = tmp_path / "run"
    argv = [
        "train", "spiga", "--out", str(out), "--faces68", str(photos), "--mean-face", str(mean_face),
        "--pseudo-labels", "none", "--epochs", "1", "--learning-rate", "0.002", "--seed", "3",
        "--freeze", "pose", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    assert f"-> {out / 'best.safetensors'}" in capsys.readouterr().out
    config = json.loads((out / "history.json").read_text())["config"]
    assert (config["name"], config["epochs"], config["lr"], config["frozen"]) == (
        "spiga-fast",
        1,
        0.002,
        ["pose"],
    )
    first = load_spiga(out / "best.safetensors")[0]
    tuned = tmp_path / "tuned"
    argv = [
        "train", "spiga", "--out", str(tuned), "--faces68", str(photos),
        "--init", str(out / "best.safetensors"), "--pseudo-labels", "none", "--epochs", "1",
        "--freeze", "backbone", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((tuned / "history.json").read_text())["config"]
    assert config["init"] == str(out / "best.safetensors") and config["frozen"] == ["backbone"]
    second = load_spiga(tuned / "best.safetensors")[0]
    np.testing.assert_array_equal(
        first.backbone.state_dict()["smooth.0.weight"], second.backbone.state_dict()["smooth.0.weight"]
    )
    np.testing.assert_array_equal(first.mean_face, second.mean_face)


def test_train_spiga_from_scratch_without_a_mean_face_is_a_one_line_error(tmp_path, capsys):
    argv = ["train", "spiga", "--out", str(tmp_path / "run"), "--faces68", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    assert "pass --mean-face FILE" in capsys.readouterr().err


def test_train_spiga_on_a_users_folder_names_a_bad_file_or_skips_it_when_asked(tmp_path, capsys):
    """Fine-tuning data with one malformed annotation: exit code 2 and one line naming it; with
    --skip-bad the run trains on the other faces and says which file it left out."""
    from tests.datasets.test_faces68 import write_face

    photos = tmp_path / "thermal"
    for k in range(8):
        write_face(photos / f"photo{k}", seed=k)
    write_face(photos / "five", seed=9, n_points=5)
    mean_face = write_spiga_mean_face(tmp_path / "mean_face_3D_68.txt")
    argv = [
        "train", "spiga", "--out", str(tmp_path / "run"), "--data", str(photos),
        "--mean-face", str(mean_face), "--epochs", "1", "--quiet",
    ]  # fmt: skip

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(photos / "five.pts") in err

    assert main([*argv, "--skip-bad"]) == 0
    assert f"skipped {photos / 'five.pts'}: expected 68" in capsys.readouterr().err
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["n_train"] + history["n_val"] == 8 and history["n_test"] == 0
