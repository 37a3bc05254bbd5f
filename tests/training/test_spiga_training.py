"""SPIGA's training: targets and their weights, the held-out split, augmentation that moves points with
the image, heatmaps, the NME, and tiny runs that write, reload, resume and fine-tune with a frozen CNN."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facegraph.datasets.face_crops import FaceCrops
from facegraph.errors import InputError
from facegraph.geometry.crops import CROP_PIXEL_OFFSET
from facegraph.image.spiga import from_unit, load_spiga, save_spiga, to_unit
from facegraph.training.spiga import (
    FLIP_ORDER,
    augment,
    face_nme,
    get_config,
    heatmaps,
    predict_points,
    prepare_data,
    split,
    targets,
    train_spiga,
)
from tests.geometry.test_pinhole import face_like_points

QUIET = {"flip": 0.0, "colour": 0.0, "occlusion": 0.0, "blur": 0.0}


def tiny_faces(n: int = 24, seed: int = 0) -> FaceCrops:
    """Noise crops with points: the first half AFLW-like (14 labelled), the rest with all 68; two faces
    per photo."""
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 255, (n, 120, 120, 3), dtype=np.uint8)
    points = 30 + rng.random((n, 68, 2)) * 60
    points[: n // 2, 20:] = np.nan
    groups = np.array([f"photo{i // 2}" for i in range(n)])
    source = np.array(["aflw"] * (n // 2) + ["68pt"] * (n - n // 2))
    return FaceCrops(crops, points, groups, source)


def test_targets_are_human_where_labelled_else_pseudo_labels_weighted_less() -> None:
    faces = tiny_faces(4)
    pseudo = np.full((4, 68, 2), 7.0)
    points, weights = targets(faces, pseudo, 0.5)
    human = np.isfinite(faces.points).all(-1)
    np.testing.assert_array_equal(points[human], faces.points[human].astype(np.float32))
    assert (points[~human] == 7.0).all() and (weights[human] == 1).all() and (weights[~human] == 0.5).all()
    _, without = targets(faces, None, 0.5)
    np.testing.assert_array_equal(without, human.astype(np.float32))


def test_the_test_faces_are_68_point_photos_the_same_for_every_seed_and_no_photo_is_shared() -> None:
    faces = tiny_faces(80)
    config = replace(get_config("spiga-fast"), val_fraction=0.2, test_fraction=0.25)
    train, val, test = split(faces, config, seed=0)
    assert set(faces.source[test]) == {"68pt"} and len(test) > 0
    assert np.array_equal(test, split(faces, config, seed=5)[2])
    assert len({*train, *val, *test}) == 80
    photos = [set(faces.groups[side]) for side in (train, val, test)]
    assert not (photos[0] & photos[1] or photos[0] & photos[2] or photos[1] & photos[2])


def test_unit_coordinates_put_pixel_centres_at_half_steps() -> None:
    centre_of_pixel_0 = np.array([0.0 + CROP_PIXEL_OFFSET, 119.0 + CROP_PIXEL_OFFSET])
    np.testing.assert_allclose(to_unit(centre_of_pixel_0, 120), [0.5 / 120, 119.5 / 120])
    np.testing.assert_allclose(from_unit(to_unit(centre_of_pixel_0, 120), 120), centre_of_pixel_0)


def _bright_centroid(image: torch.Tensor) -> np.ndarray:
    weights = (image - image.min()).clamp(min=0).numpy()
    rows, cols = np.indices(weights.shape)
    return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_images_move_with_their_points(flip: float) -> None:
    """A white pixel where the right eye's outer corner is labelled lands where its unit point says,
    after rotation, scaling, shifting and (when flipped) mirroring, which relabels it the left eye's."""
    crops = np.zeros((2, 120, 120, 3), dtype=np.uint8)
    points = np.full((2, 68, 2), 60.0)
    for k, (row, col) in enumerate([(45, 50), (52, 70)]):
        crops[k, row, col] = 255
        points[k, 36] = [col + CROP_PIXEL_OFFSET, row + CROP_PIXEL_OFFSET]
    config = replace(get_config("spiga-fast"), **{**QUIET, "flip": flip})
    images, unit, weights, flipped = augment(
        crops, points, np.ones((2, 68), np.float32), np.random.default_rng(3), config
    )
    index = FLIP_ORDER[36] if flip else 36
    size = images.shape[-1]
    for k in range(2):
        expected = unit[k, index].numpy() * size - 0.5  # pixel-index coordinates
        assert np.linalg.norm(_bright_centroid(images[k, 0]) - expected) < 0.6
    assert weights.shape == (2, 68) and flipped.tolist() == [bool(flip)] * 2


def test_heatmaps_peak_on_their_points() -> None:
    points = torch.tensor([[[0.25, 0.75], [0.6, 0.1]]])
    maps = heatmaps(points, 32)
    for k in range(2):
        row, col = np.unravel_index(int(maps[0, k].argmax()), (32, 32))
        assert (col + 0.5) / 32 == pytest.approx(points[0, k, 0].item(), abs=1 / 32)
        assert (row + 0.5) / 32 == pytest.approx(points[0, k, 1].item(), abs=1 / 32)
    assert float(maps.max()) <= 1.0


def test_nme_uses_the_outer_eye_corners_when_labelled_else_the_box() -> None:
    truth = np.zeros((2, 68, 2))
    truth[:, :, 0] = np.arange(68)  # points on a line: box 67 wide, 0 high
    truth[:, :, 1] = np.arange(68) % 2
    truth[1, 36] = np.nan  # no corner: the box size normalises
    predicted = truth.copy()
    predicted[:, :, 0] += 1.0
    predicted[1, 36] = 0.0
    errors = face_nme(np.nan_to_num(predicted), truth)
    assert errors[0] == pytest.approx(100 * 1.0 / np.linalg.norm(truth[0, 36] - truth[0, 45]))
    box = truth[1][np.isfinite(truth[1]).all(-1)]
    size = np.sqrt((box[:, 0].max() - box[:, 0].min()) * (box[:, 1].max() - box[:, 1].min()))
    assert errors[1] == pytest.approx(100 * 1.0 / size)


def test_a_tiny_run_writes_weights_that_reload_and_resumes(tmp_path: Path) -> None:
    faces = tiny_faces()
    config = replace(get_config("spiga-fast"), batch_size=4, epochs=1, val_fraction=0.2, **QUIET)
    data = prepare_data(faces, None, config, seed=0)
    mean_face = face_like_points().numpy()
    result = train_spiga(data, mean_face, tmp_path, config, progress=False)
    assert result.best_epoch == 1 and np.isfinite(result.best_score)
    model, figures = load_spiga(tmp_path / "best.safetensors")
    assert figures["val_nme"] == pytest.approx(result.best_score)
    assert figures["n_test"] == len(data.test) > 0
    val = faces.subset(data.val)
    assert face_nme(predict_points(model, val.crops), val.points).mean() == pytest.approx(
        result.best_score, rel=1e-4
    )
    resumed = train_spiga(data, mean_face, tmp_path, replace(config, epochs=2), resume=True, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    with pytest.raises(InputError, match="other settings"):
        train_spiga(data, mean_face, tmp_path, replace(config, lr=0.5, epochs=3), resume=True, progress=False)


def test_fine_tuning_with_a_frozen_backbone_leaves_it_unchanged(tmp_path: Path) -> None:
    faces = tiny_faces()
    config = replace(get_config("spiga-fast"), batch_size=4, epochs=1, val_fraction=0.2, **QUIET)
    data = prepare_data(faces, None, config, seed=0)
    train_spiga(data, face_like_points().numpy(), tmp_path / "first", config, progress=False)
    start = tmp_path / "first" / "best.safetensors"
    train_spiga(data, None, tmp_path / "tuned", config, init=start, frozen=("backbone",), progress=False)
    before, after = load_spiga(start)[0], load_spiga(tmp_path / "tuned" / "best.safetensors")[0]
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values(), strict=True):
        if name.startswith("backbone."):
            assert torch.equal(a, b), name
    changed = [n for (n, a), b in zip(before.state_dict().items(), after.state_dict().values(), strict=True)
               if n.startswith("steps.") and not torch.equal(a, b)]  # fmt: skip
    assert changed


def test_a_damaged_weights_file_is_refused_naming_it(tmp_path: Path) -> None:
    from facegraph.nn.spiga import CONFIGS, Spiga

    path = tmp_path / "spiga.safetensors"
    save_spiga(path, Spiga(CONFIGS["spiga-fast"], face_like_points(), 3.0), {})
    path.write_bytes(path.read_bytes()[:50_000])
    with pytest.raises(InputError, match="not SPIGA weights") as raised:
        load_spiga(path)
    assert raised.value.path == path
