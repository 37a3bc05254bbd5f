"""Training the mesh landmarker for a few steps on a cache of fake synthetic scans."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from torch.utils.data import DataLoader

from facegraph.datasets.synthetic_faces import SyntheticFaces, build_point_cache
from facegraph.errors import InputError
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.mesh.preprocess import crop_to_ball, get_config
from facegraph.mesh.weights import load_weights
from facegraph.nn.sgcn import SgcnConfig
from facegraph.training import mesh as mesh_training
from facegraph.training.mesh import (
    DEFAULT_AUGMENTATION,
    CachedScans,
    MeshRecipe,
    _collate,
    augmented_sample,
    evaluate,
    learning_rate,
    train_mesh,
    validation_sets,
)
from facegraph.types import Mesh
from tests.datasets.test_synthetic_faces import fake_bfm

TINY = MeshRecipe(
    replace(
        get_config("facegraph-mesh"),
        n_points=128,
        network=SgcnConfig(hidden=8, depth=2, neighbours=8, global_branch="pool"),
    ),
    batch_size=2,
    epochs=1,
)


@pytest.fixture(scope="module")
def faces() -> SyntheticFaces:
    return SyntheticFaces(fake_bfm())


@pytest.fixture(scope="module")
def caches(faces):
    """Six training scans and two validation scans of 512 points."""
    return (
        build_point_cache(faces, 6, 512, seed=0, progress=False),
        build_point_cache(faces, 2, 512, seed=1, progress=False),
    )


def test_train_writes_weights_checkpoint_and_history_and_resumes(caches, faces, tmp_path):
    train, val = caches
    first = train_mesh(TINY, train, val, tmp_path, workers=0)
    assert first.best_epoch == 1 and np.isfinite(first.best_score)
    for name in ("best.safetensors", "last.pt", "history.json"):
        assert (tmp_path / name).is_file()
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())["epochs"]] == [1]
    # A two-pass landmarker is chosen on face crops; its first pass on whole scans is reported beside.
    assert np.isfinite(first.history[0]["first_pass_mm"])

    resumed = train_mesh(replace(TINY, epochs=2), train, val, tmp_path, resume=True, workers=0)
    history = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history == resumed.history
    assert history[0] == first.history[0]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1

    landmarker = MeshLandmarker(tmp_path / "best.safetensors")
    assert landmarker.config.n_points == 128
    assert landmarker.figures["epoch"] == resumed.best_epoch
    scan = faces.sample(np.random.default_rng(5))
    result = landmarker(Mesh(scan.vertices, scan.faces))
    assert result.points.shape == (68, 3) and np.isfinite(result.points).all()


def test_a_resumed_run_matches_an_unbroken_one(caches, tmp_path):
    train, val = caches
    train_mesh(TINY, train, val, tmp_path / "resumed", workers=0)
    resumed = train_mesh(replace(TINY, epochs=2), train, val, tmp_path / "resumed", resume=True, workers=0)
    unbroken = train_mesh(replace(TINY, epochs=2), train, val, tmp_path / "unbroken", workers=0)
    assert _without_times(resumed.history) == _without_times(unbroken.history)


def _without_times(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key != "minutes"} for record in history]


@pytest.mark.parametrize(
    "config", [TINY, replace(TINY, model=replace(TINY.model, normalisation="bbox", two_pass=False))]
)
def test_augmented_sample_landmarks_share_the_features_frame(caches, config):
    cache = caches[0]
    rng = np.random.default_rng(9)
    sample, landmarks = augmented_sample(cache, 3, config, rng, DEFAULT_AUGMENTATION, 0.5)
    assert sample.features.shape == (128, 6) and landmarks.shape == (68, 3)
    assert sample.neighbours.shape == (128, 8)
    # Back in mm, the landmarks are the cached ones under one similarity transform, and the features'
    # points lie on the cached points under that same transform.
    recovered = landmarks.astype(np.float64) * sample.scale + sample.centre
    source = cache.landmarks[3].astype(np.float64)
    centred_source, centred_target = source - source.mean(axis=0), recovered - recovered.mean(axis=0)
    u, singular, vt = np.linalg.svd(centred_source.T @ centred_target)
    rotation = (u @ vt).T
    scale = singular.sum() / (centred_source**2).sum()
    shift = recovered.mean(axis=0) - scale * source.mean(axis=0) @ rotation.T
    np.testing.assert_allclose(scale * source @ rotation.T + shift, recovered, atol=1e-3)
    posed_points = scale * cache.points[3].astype(np.float64) @ rotation.T + shift
    distances, _ = cKDTree(posed_points).query(sample.features[:, :3] * sample.scale + sample.centre)
    assert distances.max() < 1e-3
    normals = sample.features[:, 3:]
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    if config.model.normalisation == "bbox":
        assert np.abs(sample.features[:, :3]).max() == pytest.approx(1.0, abs=1e-6)
    else:
        assert sample.scale == config.model.metric_scale


def test_the_super_point_design_trains_and_keeps_its_mean_landmarks(caches, tmp_path):
    train, val = caches
    config = replace(TINY, model=replace(TINY.model, network=replace(TINY.network, global_branch="super")))
    train_mesh(config, train, val, tmp_path, workers=0)
    landmarker = MeshLandmarker(tmp_path / "best.safetensors")
    mean = landmarker.mean_landmarks
    assert mean.shape == (68, 3) and np.isfinite(mean).all()
    # In the normalised frame (100 mm per unit): the fake faces' landmarks lie within 80 mm of their centre.
    assert np.abs(mean).max() < 1.0
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    np.testing.assert_array_equal(checkpoint["mean_landmarks"].numpy(), mean)


def _distributed_worker(rank: int, world: int, port: int, caches, out: str) -> None:
    """One of the processes torchrun would start, on the CPU (gloo)."""
    import os

    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1"}
    )
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    train_mesh(replace(TINY, epochs=2), caches[0], caches[1], Path(out), workers=0)


def test_distributed_training_on_two_cpu_processes(caches, tmp_path):
    """DistributedDataParallel over two processes: they share each epoch, the first writes the files."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.multiprocessing.spawn(_distributed_worker, args=(2, port, caches, str(tmp_path)), nprocs=2)
    history = json.loads((tmp_path / "history.json").read_text())["epochs"]
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert MeshLandmarker(tmp_path / "best.safetensors").config.n_points == 128


def test_cosine_schedule_starts_at_the_rate_halves_midway_and_ends_at_zero():
    cosine = replace(TINY, epochs=4, learning_rate=1e-3, lr_schedule="cosine")
    assert learning_rate(cosine, 0.0) == pytest.approx(1e-3)
    assert learning_rate(cosine, 2.0) == pytest.approx(5e-4)
    assert learning_rate(cosine, 4.0) == pytest.approx(0.0, abs=1e-12)
    rates = [learning_rate(cosine, 0.25 * i) for i in range(17)]
    assert all(a > b for a, b in zip(rates[:-1], rates[1:], strict=True))
    assert learning_rate(replace(cosine, lr_schedule="constant"), 3.5) == 1e-3
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(replace(cosine, lr_schedule="step"), 1.0)


def test_fine_tuning_starts_from_the_given_weights(caches, tmp_path):
    train, val = caches
    train_mesh(TINY, train, val, tmp_path / "first", workers=0)
    start, _, _, _ = load_weights(tmp_path / "first" / "best.safetensors")
    # With a zero learning rate nothing moves: the fine-tuned weights are the initial ones.
    frozen = replace(TINY, learning_rate=0.0)
    tuned = train_mesh(
        frozen, train, val, tmp_path / "tuned", workers=0, init=tmp_path / "first" / "best.safetensors"
    )
    after, _, _, _ = load_weights(tmp_path / "tuned" / "best.safetensors")
    for key, value in start.state_dict().items():
        torch.testing.assert_close(after.state_dict()[key], value)
    assert tuned.best_score == pytest.approx(
        json.loads((tmp_path / "first" / "history.json").read_text())["epochs"][0]["val_mm"], rel=1e-5
    )


def test_fine_tuning_refuses_weights_of_another_network(caches, tmp_path):
    train, val = caches
    train_mesh(TINY, train, val, tmp_path / "first", workers=0)
    wider = replace(TINY, model=replace(TINY.model, network=replace(TINY.network, hidden=16)))
    with pytest.raises(InputError, match="network"):
        train_mesh(
            wider, train, val, tmp_path / "wider", workers=0, init=tmp_path / "first" / "best.safetensors"
        )


def test_the_second_pass_fraction_sets_the_share_of_face_crops(caches, monkeypatch):
    cache, crops = caches[0], []

    def spy(*args):
        crops.append(args)
        return crop_to_ball(*args)

    monkeypatch.setattr(mesh_training, "crop_to_ball", spy)
    for fraction, expected in ((0.1, 4), (0.9, 36)):
        crops.clear()
        dataset = CachedScans(cache, replace(TINY, second_pass_fraction=fraction), 7, DEFAULT_AUGMENTATION)
        for epoch in range(8):
            dataset.epoch = epoch
            for i in range(len(cache) - 1):
                dataset[i]
        assert abs(len(crops) - expected) <= 8


class _FixedHeat(torch.nn.Module):
    """Narrow heatmaps that peak at the points of largest x, wide ones at the smallest (or the reverse)."""

    def __init__(self, narrow_sign: float) -> None:
        super().__init__()
        self.narrow_sign = narrow_sign

    def forward(self, features: torch.Tensor, **_) -> torch.Tensor:
        x = features[..., 0][:, None, :].expand(-1, 68, -1)
        return torch.cat([self.narrow_sign * x, -self.narrow_sign * x], dim=1)


def test_validation_decodes_the_wide_heatmaps_for_the_first_pass(caches):
    config = replace(TINY, model=replace(TINY.model, network=replace(TINY.network, coarse=True)))
    loader = DataLoader(
        CachedScans(caches[1], config, 3, DEFAULT_AUGMENTATION, second_pass_fraction=0.0),
        batch_size=2,
        collate_fn=_collate(None),
    )
    cpu = torch.device("cpu")
    narrow = evaluate(_FixedHeat(1.0), loader, config, cpu)
    assert evaluate(_FixedHeat(-1.0), loader, config, cpu, coarse=True) == pytest.approx(narrow)
    assert evaluate(_FixedHeat(1.0), loader, config, cpu, coarse=True) != pytest.approx(narrow)


def test_resuming_with_other_settings_is_refused(caches, tmp_path):
    train, val = caches
    train_mesh(TINY, train, val, tmp_path, workers=0)
    with pytest.raises(InputError, match="second_pass_fraction"):
        changed = replace(TINY, epochs=2, second_pass_fraction=0.75)
        train_mesh(changed, train, val, tmp_path, resume=True, workers=0)


def test_resuming_a_run_validated_another_way_chooses_its_best_epoch_afresh(caches, tmp_path):
    train, val = caches
    train_mesh(TINY, train, val, tmp_path, workers=0)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    for key in ("config", "validation"):  # as checkpoints written before they were stored
        del state[key]
    state["best_val_mm"] = 0.0
    torch.save(state, tmp_path / "last.pt")
    resumed = train_mesh(replace(TINY, epochs=2), train, val, tmp_path, resume=True, workers=0)
    assert resumed.best_epoch == 2


def test_two_pass_validation_scores_face_crops_and_reports_whole_scans(caches):
    val = caches[1]
    chosen, first_pass = validation_sets(val, TINY, 5, DEFAULT_AUGMENTATION)
    assert chosen.second_pass_fraction == 1.0 and first_pass.second_pass_fraction == 0.0
    single_pass = replace(TINY, model=replace(TINY.model, two_pass=False, normalisation="bbox"))
    chosen, first_pass = validation_sets(val, single_pass, 5, DEFAULT_AUGMENTATION)
    assert first_pass is None and len(chosen) == len(val)
