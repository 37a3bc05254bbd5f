"""Training SynergyNet: augmentations that keep image, human points and parameters together, the
validation figure, and a tiny run that writes, reloads and resumes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import facegraph.training.synergynet as synergynet_training
from facegraph.datasets.face_crops import FaceCrops, split_by_group
from facegraph.errors import InputError
from facegraph.image.crop_regressor import CropRegressor
from facegraph.image.synergynet import load_synergynet, read_figures
from facegraph.metrics.landmarks import landmark_box_size
from facegraph.morphable.bfm import ParamWhitening
from facegraph.nn.mobilenet_v1 import MobileNetV1
from facegraph.schemes.registry import get_scheme
from facegraph.training.mesh_offsets import to_teacher_convention
from facegraph.training.synergynet import (
    CONFIGS,
    MIRROR_X,
    PIXEL_OFFSET,
    Y_FLIP,
    align_human_points,
    augment,
    face_nme_percent,
    get_config,
    mirror_points,
    move_params,
    nme_percent,
    random_similarity,
    refitted_labels,
    scale_augmentation,
    target_whitening,
    to_y_down,
    train_synergynet,
    warp_images,
)
from tests.image.test_synergynet_model import CAMERA, face_whitening, synthetic_morphable
from tests.training.test_mesh_offsets_photos import convention_faces

FLIP_ORDER = np.array(get_scheme("ibug68").flip_order)
STILL = replace(get_config("facegraph-photo"), max_rotation=0.0, scale_range=0.0, shift=0.0, colour=0.0)
TINY = replace(  # one quick epoch of a small network on the 24 test crops, float32
    get_config("facegraph-photo"), batch_size=8, epochs=1, width=0.35, val_fraction=0.25, bf16_on_cpu=False
)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    from facegraph.geometry.pose import pose_to_matrix
    from facegraph.types import HeadPose

    return pose_to_matrix(HeadPose(yaw, pitch, roll))


def _camera_params(n: int, seed: int = 0) -> np.ndarray:
    """(n, 62) turned faces in the crop, with random shape and expression."""
    rng = np.random.default_rng(seed)
    params = np.zeros((n, 62))
    for i in range(n):
        camera = CAMERA.copy()
        camera[:, :3] = 1e-3 * _rotation(*rng.uniform(-30, 30, 3))
        camera[:2, 3] += rng.uniform(-5, 5, 2)
        params[i, :12] = camera.ravel()
    params[:, 12:] = rng.normal(0, 1, (n, 50))
    return params


def _similarity_of(angle: float, scale: float, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    cos, sin = scale * np.cos(np.radians(angle)), scale * np.sin(np.radians(angle))
    return np.array([[[cos, -sin], [sin, cos]]]), np.array([shift])


def _decoded_y_down(morphable, params: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        points = morphable.landmarks(torch.as_tensor(params, dtype=torch.float32))
    return to_y_down(points).numpy()


def test_configs_are_known_by_name():
    assert get_config("synergynet-paper").optimizer == "sgd"
    assert set(CONFIGS) == {"facegraph-photo", "synergynet-paper"}
    with pytest.raises(InputError, match="unknown training config 'nope'"):
        get_config("nope")


def test_y_down_frame_flips_y_about_the_crop_and_drops_z():
    points = torch.tensor([[[10.0, 20.0, 5.0], [60.0, 0.0, -3.0]]])
    assert to_y_down(points).tolist() == [[[10.0, Y_FLIP - 20.0], [60.0, Y_FLIP]]]


def test_moving_the_parameters_moves_their_landmarks_like_the_image():
    morphable = synthetic_morphable(seed=2)
    params = _camera_params(3)
    a, b = random_similarity(np.random.default_rng(0), get_config("facegraph-photo"), 3)
    a[0], b[0] = _similarity_of(90.0, 1.2, (-4.0, 7.0))[0][0], [-4.0, 7.0]  # a large one too
    moved = move_params(params, a, b)
    before = morphable.landmarks(torch.as_tensor(params, dtype=torch.float32)).numpy()
    after = morphable.landmarks(torch.as_tensor(moved, dtype=torch.float32)).numpy()
    xy_before = np.stack([before[..., 0], Y_FLIP - before[..., 1]], -1)
    expected = np.einsum("bij,bpj->bpi", a, xy_before) + b[:, None]
    np.testing.assert_allclose(np.stack([after[..., 0], Y_FLIP - after[..., 1]], -1), expected, atol=1e-3)
    # depth scales with the image, so the face keeps its proportions
    scale = np.sqrt(np.linalg.det(a))
    depth = lambda p: p[..., 2] - p[..., 2].mean(-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(depth(after), scale[:, None] * depth(before), atol=1e-3)
    # shape and expression do not move
    np.testing.assert_array_equal(moved[:, 12:], params[:, 12:])


def _centroid(image: torch.Tensor) -> np.ndarray:
    """(x, y) pixel centroid of an (H, W) image's bright part."""
    weights = image.clamp(min=0).numpy()
    rows, cols = np.indices(weights.shape)
    return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


@pytest.mark.parametrize(
    ("angle", "scale", "shift"),
    [(0.0, 1.0, (3.5, -2.0)), (12.0, 1.07, (2.0, 5.0)), (-15.0, 0.92, (-6.0, 0.0))],
)
def test_warping_moves_a_pixel_where_the_point_transform_sends_it(angle, scale, shift):
    row, col = 40, 75
    image = torch.zeros(1, 1, 120, 120)
    image[0, 0, row, col] = 1.0
    a, b = _similarity_of(angle, scale, shift)
    warped = warp_images(image, a, b)
    target = a[0] @ np.array([col + PIXEL_OFFSET, row + PIXEL_OFFSET]) + b[0] - PIXEL_OFFSET
    assert np.linalg.norm(_centroid(warped[0, 0]) - target) < 0.6


def test_the_mirror_line_maps_every_pixel_onto_its_mirror_pixel():
    columns = np.arange(120)
    np.testing.assert_allclose(MIRROR_X - (columns + PIXEL_OFFSET), (119 - columns) + PIXEL_OFFSET, atol=1e-9)
    # and warping by that mirror is flipping the image
    image = torch.rand(1, 3, 120, 120)
    warped = warp_images(image, np.diag([-1.0, 1.0])[None], np.array([[MIRROR_X, 0.0]]))
    assert torch.allclose(warped, image.flip(-1), atol=1e-4)


def _symmetric_morphable():
    """A face whose mean is mirror symmetric under the iBUG flip order (x -> -x), so that a mirrored
    camera decodes the mirror image's landmarks; shape and expression are left at zero."""
    rng = np.random.default_rng(5)
    mean = np.zeros((68, 3))
    for i, j in enumerate(FLIP_ORDER):
        if i < j:
            mean[i] = rng.uniform(-2e4, 2e4, 3)
            mean[j] = mean[i] * [-1, 1, 1]
        elif i == j:
            mean[i] = [0, *rng.uniform(-2e4, 2e4, 2)]
    from facegraph.morphable.bfm import MorphableModel

    return MorphableModel(mean.ravel(), np.zeros((204, 40)), np.zeros((204, 10)), np.arange(68))


def _mirrored_params(params: np.ndarray) -> np.ndarray:
    """The camera of the mirror image: x -> MIRROR_X - x applied to a symmetric face."""
    flip = np.diag([-1.0, 1.0, 1.0])
    camera = params[:, :12].reshape(-1, 3, 4)
    mirrored = camera.copy()
    mirrored[:, :, :3] = flip @ camera[:, :, :3] @ flip
    mirrored[:, :, 3] = camera[:, :, 3] @ flip
    mirrored[:, 0, 3] += MIRROR_X
    out = params.copy()
    out[:, :12] = mirrored.reshape(-1, 12)
    return out


def _crops_with_labels(morphable, n: int = 4):
    params = _camera_params(n, seed=3)
    params[:, 12:] = 0
    points = _decoded_y_down(morphable, params)[..., :2].astype(np.float64)
    points[0, :5] = np.nan  # unlabelled points stay unlabelled
    crops = np.zeros((n, 120, 120, 3), np.uint8)
    data = FaceCrops(crops, points, np.arange(n).astype(str), np.full(n, "test"))
    return data, (params.astype(np.float32), _mirrored_params(params).astype(np.float32))


def test_the_mirrored_camera_decodes_the_mirrored_landmarks():
    morphable = _symmetric_morphable()
    data, (plain, mirrored) = _crops_with_labels(morphable)
    points = _decoded_y_down(morphable, plain)[..., :2]
    expected = points[:, FLIP_ORDER]
    expected[..., 0] = MIRROR_X - expected[..., 0]
    np.testing.assert_allclose(_decoded_y_down(morphable, mirrored)[..., :2], expected, atol=1e-3)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_parameters_decode_onto_the_augmented_human_points(flip):
    morphable = _symmetric_morphable()
    data, labels = _crops_with_labels(morphable)
    config = replace(get_config("facegraph-photo"), flip=flip)
    batch = np.arange(len(data))
    _, params, points = augment(batch, data, labels, np.random.default_rng(1), config, FLIP_ORDER)
    assert params.shape == (4, 62) and points.shape == (4, 68, 2)
    decoded = _decoded_y_down(morphable, params)[..., :2]
    labelled = np.isfinite(points).all(-1)
    assert labelled.sum() == 4 * 68 - 5
    np.testing.assert_allclose(decoded[labelled], points[labelled], atol=1e-2)
    # and the similarity did move them
    assert np.abs(points[labelled] - data.points[np.isfinite(data.points).all(-1)]).max() > 0.5


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_image_moves_with_its_human_points(flip):
    data, labels = _crops_with_labels(_symmetric_morphable(), n=2)
    # a white pixel where the right eye's outer corner (36) is labelled
    data.points[:, 36] = [[50 + PIXEL_OFFSET, 45 + PIXEL_OFFSET], [70 + PIXEL_OFFSET, 52 + PIXEL_OFFSET]]
    data.crops[0, 45, 50] = data.crops[1, 52, 70] = 255
    config = replace(get_config("facegraph-photo"), flip=flip, colour=0.0)
    images, _, points = augment(np.arange(2), data, labels, np.random.default_rng(4), config, FLIP_ORDER)
    # after a flip the corner is the left eye's (45) in the mirror image
    index = FLIP_ORDER[36] if flip else 36
    assert index == (45 if flip else 36)
    for i in range(2):
        pixels = images[i, 0] * 128 + 127.5
        assert torch.allclose(images[i, 0], images[i, 1]) and torch.allclose(images[i, 0], images[i, 2])
        assert np.linalg.norm(_centroid(pixels - 1) - (points[i, index] - PIXEL_OFFSET)) < 0.6


def test_the_augmentation_factor_scales_rotation_scale_shift_and_colour_but_not_flips():
    config = get_config("facegraph-photo")
    half = scale_augmentation(config, 0.5)
    strengths = (half.max_rotation, half.scale_range, half.shift, half.colour)
    assert strengths == pytest.approx((7.5, 0.04, 0.025, 0.15))
    assert half.flip == config.flip
    assert scale_augmentation(config, 0.0) == replace(STILL, flip=config.flip)
    a, b = random_similarity(np.random.default_rng(0), half, 2000)
    angles = np.degrees(np.arctan2(a[:, 1, 0], a[:, 0, 0]))
    assert 7.0 < np.abs(angles).max() <= 7.5
    assert 0.035 < np.abs(np.linalg.norm(a[:, 0], axis=-1) - 1).max() <= 0.04


@pytest.mark.parametrize("factor", [-0.5, float("nan"), float("inf")])
def test_an_augmentation_factor_that_is_not_a_finite_non_negative_number_is_refused(factor):
    with pytest.raises(InputError, match="augmentation factor"):
        scale_augmentation(get_config("facegraph-photo"), factor)


def test_augmented_images_are_normalised_like_the_model_input():
    data, labels = _crops_with_labels(_symmetric_morphable(), n=2)
    data.crops[:] = 255
    images, _, _ = augment(np.arange(2), data, labels, np.random.default_rng(0), STILL, FLIP_ORDER)
    assert images.shape == (2, 3, 120, 120) and images.dtype == torch.float32
    assert torch.allclose(images, torch.full_like(images, 127.5 / 128))


def test_nme_counts_labelled_points_and_labelled_faces_only():
    target = np.zeros((3, 68, 2))
    predicted = target + [3.0, 4.0]  # 5 pixels off everywhere
    predicted[0, :10] += 100  # ... except at points without a label
    target[0, :10] = np.nan
    target[2] = np.nan  # a face without labels
    sizes = np.array([50.0, 100.0, 1.0])
    assert nme_percent(predicted, target, sizes) == pytest.approx((10.0 + 5.0) / 2)
    np.testing.assert_allclose(face_nme_percent(predicted, target, sizes), [10.0, 5.0, np.nan])


def test_box_size_is_the_geometric_mean_of_the_point_box_sides():
    points = np.array([[[0.0, 0.0], [40.0, 10.0], [20.0, 90.0]]])
    assert landmark_box_size(points) == pytest.approx([60.0])


def test_conventions_are_fitted_per_dataset_on_the_training_side_only():
    teacher, params, offsets, human = convention_faces(240, seed=4)
    human[120:] = to_teacher_convention(human[120:], params[120:], offsets)  # a second dataset: no offset
    source = np.repeat(["aflw", "68pt"], 120)
    data = FaceCrops(np.zeros((240, 1, 1, 3), np.uint8), human, np.arange(240).astype(str), source)
    training = np.flatnonzero(np.arange(240) % 4 != 0)
    aligned, fitted = align_human_points(data, params, teacher, training)
    assert np.abs(fitted["68pt"]).max() < 0.2 * np.abs(fitted["aflw"]).max()
    corrupted = data.points.copy()
    corrupted[::4] += 50.0  # the held-out faces' labels do not move the offsets
    _, refitted = align_human_points(replace(data, points=corrupted), params, teacher, training)
    np.testing.assert_array_equal(refitted["aflw"], fitted["aflw"])
    np.testing.assert_array_equal(data.points, human)  # the input is left as it was
    assert np.abs(aligned.points - teacher).mean() < np.abs(human - teacher).mean()


def test_an_unknown_human_convention_is_refused():
    with pytest.raises(InputError, match="human convention"):
        replace(get_config("facegraph-photo"), human_convention="dlib")


@pytest.fixture(scope="module")
def crops() -> FaceCrops:
    rng = np.random.default_rng(0)
    n = 24
    points = 60 + rng.normal(0, 15, (n, 68, 2))
    points[::3, 20:40] = np.nan  # e.g. AFLW's points without an iBUG counterpart
    images = rng.integers(0, 256, (n, 120, 120, 3), dtype=np.uint8)
    groups = np.repeat(np.arange(n // 2).astype(str), 2)  # two faces per photo
    return FaceCrops(images, points, groups, np.full(n, "test"))


def _teacher(morphable) -> CropRegressor:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = MobileNetV1({"params": 62}, width=0.25)
        for module in network.modules():  # PyTorch's default initialisation leaves no signal after 14 layers
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, 0, 0.3)
    return CropRegressor(network, face_whitening(), morphable).eval()


def test_training_writes_weights_checkpoint_and_history_and_resumes(crops, tmp_path, monkeypatch):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    config = TINY
    first = train_synergynet(crops, teacher, morphable, tmp_path, config, device="cpu", progress=False)
    for name in ("best.safetensors", "last.pt", "history.json", "teacher-labels.npz"):
        assert (tmp_path / name).is_file()
    history = json.loads((tmp_path / "history.json").read_text())
    assert [h["epoch"] for h in history["epochs"]] == [1]
    assert history["config"]["width"] == 0.35
    assert first.best["epoch"] == first.best_epoch == 1
    for key in ("loss_total", "loss_human", "nme_human", "nme_human_head", "nme_teacher"):
        assert np.isfinite(first.best[key]), key
    assert np.isfinite(history["reference"]["teacher_nme_human"])
    assert history["reference"]["human_convention"] == "annotators"
    assert "nme_human_as_labelled" not in first.best  # the labels are used as annotated

    model = load_synergynet(tmp_path / "best.safetensors", None)
    prediction = model.predict(crops.crops[:2], np.tile([0.0, 0.0, 120.0, 120.0], (2, 1)))
    assert np.isfinite(prediction.landmarks).all()
    figures = read_figures(tmp_path / "best.safetensors")
    assert figures["epoch"] == 1 and figures["n_train"] + figures["n_val"] == len(crops)
    assert figures["n_val"] == 6  # 3 of the 12 photos, both faces of each

    # resuming reads the cached teacher labels instead of running the teacher again
    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher ran again")

    monkeypatch.setattr(teacher, "forward", no_teacher)
    resumed = train_synergynet(
        crops,
        teacher,
        morphable,
        tmp_path,
        replace(config, epochs=2),
        resume=True,
        device="cpu",
        progress=False,
    )
    history = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["nme_human"] == first.best["nme_human"]
    assert resumed.best == min(history, key=lambda h: h["nme_human"])
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_fine_tuning_starts_every_network_from_the_given_run(crops, tmp_path, monkeypatch):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    config = TINY
    config = replace(config, bf16_on_cpu=False)
    aligned = replace(config, human_convention="teacher")
    fitted_on = []

    def spy(data, params, teacher_points, fit_side):
        fitted_on.append(fit_side)
        return align_human_points(data, params, teacher_points, fit_side)

    monkeypatch.setattr(synergynet_training, "align_human_points", spy)
    train_synergynet(crops, teacher, morphable, tmp_path / "a", aligned, device="cpu", progress=False)
    _, held_out = split_by_group(crops.groups, config.val_fraction, 0)
    assert len(fitted_on) == 1 and not set(fitted_on[0]) & set(
        held_out
    )  # conventions from training faces only
    history = json.loads((tmp_path / "a" / "history.json").read_text())
    assert history["reference"]["human_convention"] == "teacher"
    assert np.isfinite(history["epochs"][0]["nme_human_as_labelled"])  # beside the aligned labels' figure
    frozen = replace(config, lr=0.0)  # a zero learning rate leaves the weights where they started
    train_synergynet(
        crops, teacher, morphable, tmp_path / "b", frozen, device="cpu", progress=False,
        init=tmp_path / "a" / "last.pt",
    )  # fmt: skip
    before = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["nets"]
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["nets"]
    weights = [k for k in before if not k.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))]
    assert any(k.startswith("refiner.") for k in weights) and any(k.startswith("reverse.") for k in weights)
    for key in weights:
        torch.testing.assert_close(after[key], before[key], msg=key)


def test_fine_tuning_from_a_weights_file_starts_the_image_network_there_and_reports_its_figures(
    crops, tmp_path
):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    first = train_synergynet(crops, teacher, morphable, tmp_path / "a", TINY, device="cpu", progress=False)
    frozen = replace(TINY, lr=0.0)
    train_synergynet(
        crops, teacher, morphable, tmp_path / "b", frozen, device="cpu", progress=False,
        init=tmp_path / "a" / "best.safetensors",
    )  # fmt: skip
    reference = json.loads((tmp_path / "b" / "history.json").read_text())["reference"]
    assert reference["init_figures"]["nme_human"] == pytest.approx(first.best["nme_human"], rel=1e-5)
    shipped = load_file(tmp_path / "a" / "best.safetensors")
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["nets"]
    for key, value in shipped.items():
        if key.startswith("network.") and not key.endswith(
            ("running_mean", "running_var", "num_batches_tracked")
        ):
            torch.testing.assert_close(
                after["image." + key.removeprefix("network.")], torch.as_tensor(value), msg=key
            )


def test_fine_tuning_from_a_weights_file_with_other_augmentation_keeps_every_predicted_parameter(
    crops, tmp_path
):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    train_synergynet(crops, teacher, morphable, tmp_path / "a", TINY, device="cpu", progress=False)
    frozen = scale_augmentation(replace(TINY, lr=0.0), 0.5)  # the cameras' spread changes, nothing else
    train_synergynet(
        crops, teacher, morphable, tmp_path / "b", frozen, device="cpu", progress=False,
        init=tmp_path / "a" / "best.safetensors",
    )  # fmt: skip
    weights = load_file(tmp_path / "a" / "best.safetensors")
    nets = {"image." + k.removeprefix("network."): torch.as_tensor(v) for k, v in weights.items()}
    before = {"nets": nets, **{k: torch.as_tensor(weights[k]) for k in ("param_mean", "param_std")}}
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert np.abs(np.log(_whitening_of(after).std[:12] / _whitening_of(before).std[:12])).max() > 0.05
    _assert_same_parameters(before, after, image_only=True)


def test_fine_tuning_refuses_weights_trained_on_other_faces(crops, tmp_path):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    train_synergynet(crops, teacher, morphable, tmp_path / "a", TINY, device="cpu", progress=False)
    with pytest.raises(InputError, match="the weights were trained on other faces"):
        train_synergynet(
            crops, teacher, morphable, tmp_path / "b", TINY, seed=1, device="cpu", progress=False,
            init=tmp_path / "a" / "best.safetensors",
        )  # fmt: skip


@pytest.mark.parametrize("native", [False, True])
def test_bfloat16_autocast_runs_on_a_cpu_only_where_the_cpu_computes_it_natively(
    crops, tmp_path, monkeypatch, native
):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: native, raising=False)
    requested = []
    real_autocast = torch.autocast

    def spy(device_type, *args, enabled: bool = True, **kwargs):
        requested.append(enabled)
        return real_autocast(device_type, *args, enabled=False, **kwargs)  # the test itself stays quick

    monkeypatch.setattr(torch, "autocast", spy)
    morphable = synthetic_morphable()
    config = replace(TINY, bf16_on_cpu=True)
    train_synergynet(crops, _teacher(morphable), morphable, tmp_path, config, device="cpu", progress=False)
    assert requested and set(requested) == {native}  # emulated bfloat16 was 10x slower than float32


def test_fine_tuning_refuses_a_file_that_is_not_a_checkpoint(crops, tmp_path):
    morphable = synthetic_morphable()
    bad = tmp_path / "last.pt"
    bad.write_text("not a checkpoint")
    config = TINY
    with pytest.raises(InputError, match="not a checkpoint of this network"):
        train_synergynet(
            crops, _teacher(morphable), morphable, tmp_path / "run", config, device="cpu", progress=False,
            init=bad,
        )  # fmt: skip


def test_training_on_refitted_targets_trains_on_them_and_resumes_only_on_them(crops, tmp_path, monkeypatch):
    morphable = synthetic_morphable()
    config = replace(TINY, targets="refitted", refit_strength=0.1)
    trained_on = []
    real_augment = synergynet_training.augment

    def spy(batch, data, labels, *args):
        trained_on.append(labels)
        return real_augment(batch, data, labels, *args)

    monkeypatch.setattr(synergynet_training, "augment", spy)
    teacher = _teacher(morphable)
    best = train_synergynet(crops, teacher, morphable, tmp_path, config, device="cpu", progress=False)
    cached = np.load(tmp_path / "teacher-labels.npz")
    train_idx, _ = split_by_group(crops.groups, config.val_fraction, 0)
    spread = np.maximum(cached["plain"][train_idx].std(0), synergynet_training.MIN_STD)
    teacher_labels = (cached["plain"], cached["mirrored"])
    expected = refitted_labels(teacher_labels, crops.points, spread, morphable, 0.1, FLIP_ORDER)
    for used, wanted in zip(trained_on[0], expected, strict=True):
        np.testing.assert_allclose(used, wanted)
    assert np.abs((trained_on[0][0] - cached["plain"]) / spread).max() > 0.1  # not the teacher's
    reference = json.loads((tmp_path / "history.json").read_text())["reference"]
    assert reference["refitted_nme_human"] < reference["teacher_nme_human"]
    assert np.isfinite(best.best["nme_refitted"])
    with pytest.raises(InputError, match="other settings \\(targets\\)"):
        train_synergynet(
            crops, teacher, morphable, tmp_path, replace(config, epochs=2, targets="teacher"),
            resume=True, device="cpu", progress=False,
        )  # fmt: skip


def test_augmented_whitening_gives_every_augmented_camera_number_a_unit_spread():
    n = 400
    plain = _camera_params(n, seed=1)
    plain[:, 11] = -66.0 + np.random.default_rng(2).normal(0, 0.01, n)  # the teacher's near-constant t_z
    mirrored = _camera_params(n, seed=3)
    mirrored[:, 11] = plain[:, 11]
    config = get_config("facegraph-photo")
    rng = np.random.default_rng(4)  # augmentations as training draws them
    drawn = np.where((rng.random(n) < config.flip)[:, None], mirrored, plain)
    moved = move_params(drawn, *random_similarity(rng, config, n))
    augmented = target_whitening((plain, mirrored), np.arange(n), config, seed=0)
    spread = ((moved - augmented.mean) / augmented.std)[:, :12].std(0)
    assert np.all((spread > 0.8) & (spread < 1.25)), spread
    old = target_whitening((plain, mirrored), np.arange(n), replace(config, whitening="plain"), seed=0)
    assert ((moved - old.mean) / old.std)[:, 11].std() > 100  # t_z would swamp the parameter losses
    np.testing.assert_array_equal(augmented.std[12:], old.std[12:])  # augmentation leaves shapes alone


def test_fine_tuning_an_older_run_into_another_whitening_keeps_every_predicted_parameter(crops, tmp_path):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    plain = replace(TINY, whitening="plain")
    train_synergynet(crops, teacher, morphable, tmp_path / "a", plain, device="cpu", progress=False)
    before = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    older = {key: value for key, value in before.items() if not key.startswith("param_")}
    torch.save(older, tmp_path / "older.pt")  # checkpoints before 2026-11-22 did not store their whitening
    frozen = replace(TINY, lr=0.0)  # a zero learning rate: only the change of whitening moves the heads
    train_synergynet(
        crops, teacher, morphable, tmp_path / "b", frozen, device="cpu", progress=False,
        init=tmp_path / "older.pt",
    )  # fmt: skip
    after = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    old, new = (_whitening_of(state) for state in (before, after))
    assert np.abs(np.log(new.std[:12] / old.std[:12])).max() > 0.05
    _assert_same_parameters(before, after)
    shipped = load_file(tmp_path / "b" / "best.safetensors")
    np.testing.assert_array_equal(shipped["param_std"], new.std)  # the weights carry what they trained with
    # and back, from a checkpoint that stores its whitening
    train_synergynet(
        crops, teacher, morphable, tmp_path / "c", replace(frozen, whitening="plain"), device="cpu",
        progress=False, init=tmp_path / "b" / "last.pt",
    )  # fmt: skip
    _assert_same_parameters(after, torch.load(tmp_path / "c" / "last.pt", weights_only=True))


def _whitening_of(state: dict) -> ParamWhitening:
    return ParamWhitening(state["param_mean"].numpy(), state["param_std"].numpy())


def _assert_same_parameters(before: dict, after: dict, image_only: bool = False) -> None:
    """The parameter outputs of two checkpoints' heads, unwhitened, agree on the same features."""
    layers = {"image.backbone.heads.camera": 0, "image.backbone.heads.shape": 12}
    layers |= {"image.backbone.heads.expression": 52} | ({} if image_only else {"reverse.head.2": 0})
    for name, first in layers.items():
        inputs = torch.randn(5, before["nets"][f"{name}.weight"].shape[1])
        outputs = []
        for state in (before, after):
            weight, bias = state["nets"][f"{name}.weight"], state["nets"][f"{name}.bias"]
            white = torch.nn.functional.linear(inputs, weight, bias).numpy()
            rows = slice(first, first + white.shape[1])
            outputs.append(white * _whitening_of(state).std[rows] + _whitening_of(state).mean[rows])
        np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-4, atol=1e-6 * np.abs(outputs[0]).max())


def test_resuming_an_older_run_refuses_another_whitening(crops, tmp_path):
    morphable = synthetic_morphable()
    teacher = _teacher(morphable)
    plain = replace(TINY, whitening="plain")
    train_synergynet(crops, teacher, morphable, tmp_path, plain, device="cpu", progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    older = {key: value for key, value in state.items() if key not in ("config", "param_mean", "param_std")}
    torch.save(older, tmp_path / "last.pt")  # as the first checkpoints were: weights and optimiser only
    with pytest.raises(InputError, match="other whitening"):
        train_synergynet(
            crops, teacher, morphable, tmp_path, replace(TINY, epochs=2), resume=True, device="cpu",
            progress=False,
        )  # fmt: skip
    train_synergynet(
        crops, teacher, morphable, tmp_path, replace(plain, epochs=2), resume=True, device="cpu",
        progress=False,
    )  # fmt: skip
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 2


def test_fine_tuning_refuses_a_run_trained_on_other_faces():
    nets = synergynet_training.Networks(0.35)
    mine = ParamWhitening(np.zeros(62), np.ones(62))
    theirs = ParamWhitening(np.zeros(62), np.r_[np.ones(12), np.full(50, 2.0)])
    with pytest.raises(InputError, match="other faces"):
        nets.rewhiten(theirs, mine, Path("last.pt"))


def test_refitted_mirror_targets_are_the_mirror_images_of_the_refitted_ones():
    morphable = _symmetric_morphable()
    data, labels = _crops_with_labels(morphable)
    points = data.points + np.random.default_rng(4).normal(0, 1.5, data.points.shape)  # annotators disagree
    plain, mirrored = refitted_labels(labels, points, face_whitening().std, morphable, 0.1, FLIP_ORDER)
    assert np.abs(plain - labels[0]).max() > 1e-3  # the fits moved
    expected = mirror_points(_decoded_y_down(morphable, plain)[..., :2], FLIP_ORDER)
    np.testing.assert_allclose(_decoded_y_down(morphable, mirrored)[..., :2], expected, atol=0.02)
