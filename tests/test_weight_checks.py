"""Weights files are checked at load: a damaged tensor or another model's file is one line naming both.

Each test damages a copy of real weights (the shipped ones, or the 3DDFA_V2 checkpoint from
../shared/data) and expects the loader's ``InputError`` and the command's one-line error, exit code 2.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image.synergynet import bundled_weights as photo_weights
from facegraph.image.synergynet import load_synergynet
from facegraph.image.tddfa_v2 import load_tddfa_v2
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.mesh.landmarker import bundled_weights as mesh_weights
from facegraph.mesh.shape_prior import ShapePrior
from facegraph.mesh.weights import load_weights
from tests.conftest import shared
from tests.test_cli import eval_args, write_bfm_basis, write_layout

Tensors = dict[str, torch.Tensor]


def rewrite(source: Path, path: Path, change: Callable[[Tensors], None]) -> Path:
    """A copy of the weights file ``source`` at ``path``, its tensors changed in place by ``change``."""
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(source))
    change(tensors)
    save_file(tensors, str(path), metadata=metadata)
    return path


def set_nan(*keys: str) -> Callable[[Tensors], None]:
    def change(tensors: Tensors) -> None:
        for key in keys:
            tensors[key] = torch.full_like(tensors[key], float("nan"))

    return change


def delete(*keys: str) -> Callable[[Tensors], None]:
    def change(tensors: Tensors) -> None:
        for key in keys:
            del tensors[key]

    return change


def replace_with(key: str, value: torch.Tensor) -> Callable[[Tensors], None]:
    def change(tensors: Tensors) -> None:
        tensors[key] = value

    return change


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command expecting a user error: exit code 2 and one line on stderr, which is returned."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err
    return err


def photo_error(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    photo = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), photo)
    return one_line_error(["image", str(photo), "--weights", str(weights), "--quiet"], capsys)


def scan_error(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    scan = tmp_path / "james.obj"
    shutil.copy(sample_path("james.obj"), scan)
    return one_line_error(["mesh", str(scan), "--weights", str(weights)], capsys)


# Photo weights (SynergyNet)

PHOTO_TENSOR = "network.backbone.body.0.weight"
PHOTO_FIT = "weights do not fit SynergyNet x1"


@pytest.mark.parametrize("key", [PHOTO_TENSOR, "param_std", "landmark_mean"])
def test_photo_weights_with_nan_name_the_tensor(key, tmp_path, capsys):
    weights = rewrite(photo_weights(), tmp_path / "w.safetensors", set_nan(key))
    problem = f"tensor {key!r} has NaN or infinite values"
    with pytest.raises(InputError) as error:
        load_synergynet(weights, None)
    assert error.value.path == weights and error.value.problem == problem
    assert photo_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_photo_weights_missing_tensors_name_the_first_and_count_the_rest(tmp_path, capsys):
    others = [key for key in load_file(str(photo_weights())) if key.startswith("network.")][-3:]
    weights = rewrite(photo_weights(), tmp_path / "w.safetensors", delete(PHOTO_TENSOR, *others))
    problem = f"{PHOTO_FIT}: missing tensor {PHOTO_TENSOR!r} (and 3 more)"
    with pytest.raises(InputError) as error:
        load_synergynet(weights, None)
    assert error.value.problem == problem
    assert photo_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_photo_weights_missing_a_whitening_statistic_name_it(tmp_path, capsys):
    weights = rewrite(photo_weights(), tmp_path / "w.safetensors", delete("param_std"))
    problem = f"{PHOTO_FIT}: missing tensor 'param_std'"
    assert photo_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


@pytest.mark.parametrize(
    ("key", "shape", "expected"),
    [("param_std", (5,), (62,)), (PHOTO_TENSOR, (3, 4), (32, 3, 3, 3))],
)
def test_photo_weights_of_the_wrong_shape_say_both_shapes(key, shape, expected, tmp_path, capsys):
    weights = rewrite(photo_weights(), tmp_path / "w.safetensors", replace_with(key, torch.ones(shape)))
    problem = f"{PHOTO_FIT}: tensor {key!r} has shape {shape}, expected {expected}"
    with pytest.raises(InputError) as error:
        load_synergynet(weights, None)
    assert error.value.problem == problem
    assert photo_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_photo_weights_with_an_extra_tensor_name_it(tmp_path, capsys):
    weights = rewrite(photo_weights(), tmp_path / "w.safetensors", replace_with("stray", torch.ones(2)))
    problem = f"{PHOTO_FIT}: unexpected tensor 'stray'"
    assert photo_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_mesh_weights_given_for_photos_say_what_they_hold(tmp_path, capsys):
    problem = "holds mesh landmarker weights, not SynergyNet weights"
    with pytest.raises(InputError) as error:
        load_synergynet(mesh_weights(), None)
    assert error.value.problem == problem
    assert photo_error(mesh_weights(), tmp_path, capsys) == f"facegraph: error: {mesh_weights()}: {problem}\n"


def test_safetensors_of_no_facegraph_model_are_not_photo_weights(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_file({"x": torch.ones(2)}, str(weights))
    err = photo_error(weights, tmp_path, capsys)
    assert err.startswith(f"facegraph: error: {weights}: not SynergyNet weights (") and "'width'" not in err


@pytest.mark.parametrize("content", [b"", b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":'], ids=["empty", "garbage"])
def test_empty_or_garbage_weights_are_one_line(content, tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(content)
    err = photo_error(weights, tmp_path, capsys)
    assert err.startswith(f"facegraph: error: {weights}: not SynergyNet weights (")
    err = scan_error(weights, tmp_path, capsys)
    assert err.startswith(f"facegraph: error: {weights}: not mesh landmarker weights (")


def test_truncated_weights_are_one_line(tmp_path, capsys):
    for source, run in ((photo_weights(), photo_error), (mesh_weights(), scan_error)):
        weights = tmp_path / "w.safetensors"
        weights.write_bytes(source.read_bytes()[:-1000])
        assert f"facegraph: error: {weights}: not " in run(weights, tmp_path, capsys)


# Mesh weights (the landmarker and its shape prior)

MESH_FIT = "weights do not match their configuration"


@pytest.mark.parametrize(
    "key", ["head.weight", "canonical_landmarks", "shape_prior_basis", "shape_prior_mean"]
)
def test_mesh_weights_with_nan_name_the_tensor(key, tmp_path, capsys):
    weights = rewrite(mesh_weights(), tmp_path / "w.safetensors", set_nan(key))
    problem = f"tensor {key!r} has NaN or infinite values"
    with pytest.raises(InputError) as error:
        load_weights(weights)
    assert error.value.path == weights and error.value.problem == problem
    assert scan_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_mesh_weights_missing_tensors_name_the_first(tmp_path, capsys):
    weights = rewrite(mesh_weights(), tmp_path / "w.safetensors", delete("head.weight", "head.bias"))
    problem = f"{MESH_FIT}: missing tensor 'head.weight' (and 1 more)"
    with pytest.raises(InputError) as error:
        load_weights(weights)
    assert error.value.problem == problem
    assert scan_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


@pytest.mark.parametrize(
    ("key", "shape", "expected"),
    [
        ("shape_prior_basis", (3, 4), (50, 204)),
        ("shape_prior_mean", (51, 3), (68, 3)),
        ("shape_prior_noise_mm", (68, 1), (68,)),
        ("canonical_landmarks", (67, 3), (68, 3)),
        ("head.weight", (136, 65), (136, 64)),
    ],
)
def test_mesh_weights_of_the_wrong_shape_say_both_shapes(key, shape, expected, tmp_path, capsys):
    weights = rewrite(mesh_weights(), tmp_path / "w.safetensors", replace_with(key, torch.ones(shape)))
    problem = f"{MESH_FIT}: tensor {key!r} has shape {shape}, expected {expected}"
    with pytest.raises(InputError) as error:
        load_weights(weights)
    assert error.value.problem == problem
    assert scan_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_a_shape_prior_stored_in_part_is_refused(tmp_path, capsys):
    weights = rewrite(mesh_weights(), tmp_path / "w.safetensors", delete("shape_prior_off_model_mm"))
    problem = f"{MESH_FIT}: missing tensor 'shape_prior_off_model_mm'"
    with pytest.raises(InputError) as error:
        load_weights(weights)
    assert error.value.problem == problem
    assert scan_error(weights, tmp_path, capsys) == f"facegraph: error: {weights}: {problem}\n"


def test_two_pass_weights_need_their_canonical_landmarks(tmp_path):
    weights = rewrite(mesh_weights(), tmp_path / "w.safetensors", delete("canonical_landmarks"))
    with pytest.raises(InputError) as error:
        MeshLandmarker(weights, "cpu")
    assert error.value.path == weights
    assert error.value.problem == f"{MESH_FIT}: missing tensor 'canonical_landmarks'"


def test_a_shape_prior_with_a_negative_variance_is_one_line(tmp_path, capsys):
    def negative(tensors: Tensors) -> None:
        tensors["shape_prior_variances"][0] = -1.0

    weights = rewrite(mesh_weights(), tmp_path / "w.safetensors", negative)
    with pytest.raises(InputError, match="shape prior") as error:
        MeshLandmarker(weights, "cpu")
    assert error.value.path == weights
    assert scan_error(weights, tmp_path, capsys).startswith(
        f"facegraph: error: {weights}: unusable shape prior"
    )


def test_photo_weights_given_for_scans_say_what_they_hold(tmp_path, capsys):
    problem = "holds SynergyNet weights, not mesh landmarker weights"
    with pytest.raises(InputError) as error:
        load_weights(photo_weights())
    assert error.value.problem == problem
    assert (
        scan_error(photo_weights(), tmp_path, capsys) == f"facegraph: error: {photo_weights()}: {problem}\n"
    )


def test_a_shape_prior_made_with_nan_is_refused():
    arrays = {key: value.numpy() for key, value in load_file(str(mesh_weights())).items()}
    assert ShapePrior.from_arrays(arrays) is not None
    arrays["shape_prior_mean"] = np.full((68, 3), np.nan)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ShapePrior.from_arrays(arrays)


# The peer 3DDFA_V2's checkpoints

CHECKPOINT = "mb05_120x120.pth"
STATS = "param_mean_std_62d_120x120.pkl"
PEER_FIT = "weights do not fit MobileNetV1 x0.5"


def peer_folder(tmp_path: Path, change: Callable[[Tensors], None] | None = None, stats=None) -> Path:
    """A copy of the 3DDFA_V2 folder with its checkpoint's state dict (and statistics) changed."""
    folder = tmp_path / "3ddfa-v2"
    folder.mkdir()
    raw = torch.load(shared(f"3ddfa-v2/{CHECKPOINT}"), map_location="cpu", weights_only=True)
    if change is not None:
        change(raw["state_dict"])
    torch.save(raw, folder / CHECKPOINT)
    if stats is None:
        shutil.copy(shared(f"3ddfa-v2/{STATS}"), folder / STATS)
    else:
        (folder / STATS).write_bytes(pickle.dumps(stats))
    return folder


def test_peer_checkpoint_with_nan_names_the_tensor(tmp_path, capsys):
    folder = peer_folder(tmp_path, set_nan("module.fc_param.weight"))
    problem = "tensor 'module.fc_param.weight' has NaN or infinite values"
    with pytest.raises(InputError) as error:
        load_tddfa_v2("3ddfa-v2-mb05", folder, None)
    assert error.value.path == folder / CHECKPOINT and error.value.problem == problem
    write_bfm_basis(tmp_path / "bfm")  # beside the weights' folder, where the loader looks for it
    argv = eval_args(write_layout(tmp_path / "aflw"), "--weights", str(folder))
    assert one_line_error(argv, capsys) == f"facegraph: error: {folder / CHECKPOINT}: {problem}\n"


def test_peer_checkpoint_of_the_wrong_shape_names_the_tensor_as_the_file_does(tmp_path):
    folder = peer_folder(tmp_path, replace_with("module.fc_param.weight", torch.zeros(61, 512)))
    with pytest.raises(InputError) as error:
        load_tddfa_v2("3ddfa-v2-mb05", folder, None)
    expected = f"{PEER_FIT}: tensor 'module.fc_param.weight' has shape (61, 512), expected (62, 512)"
    assert error.value.problem == expected


@pytest.mark.parametrize("key", ["module.dw9_1.conv_dw.weight", "module.stray"])
def test_peer_checkpoint_with_a_foreign_tensor_names_it(key, tmp_path):
    folder = peer_folder(tmp_path, replace_with(key, torch.zeros(3)))
    with pytest.raises(InputError) as error:
        load_tddfa_v2("3ddfa-v2-mb05", folder, None)
    assert error.value.problem == f"{PEER_FIT}: unexpected tensor {key!r}"


def test_peer_statistics_with_nan_are_refused(tmp_path):
    stats = {"mean": np.zeros(62, np.float32), "std": np.full(62, np.nan, np.float32)}
    folder = peer_folder(tmp_path, stats=stats)
    with pytest.raises(InputError, match="NaN or infinite") as error:
        load_tddfa_v2("3ddfa-v2-mb05", folder, None)
    assert error.value.path == folder / STATS
