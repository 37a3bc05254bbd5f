"""Training the mesh landmarker on synthetic BFM scans.

The scans are generated once into a cache of dense surface samples (``build_point_cache``); every time
a scan is used it gets a fresh rigid pose, scale and shift and a fresh thinning to the network's point
count. For two-pass configurations a share of the samples (``second_pass_fraction``, half by
default) are instead what the second pass sees: the face nearly in the canonical frame (the residual
of an alignment to the mean face), cut to the ball about a jittered face centre and centred there.
Randomness is seeded by (seed, epoch, sample), so a resumed run sees the same data as an unbroken one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from facegraph.datasets.synthetic_faces import Augmentation, PointCache, random_rigid
from facegraph.errors import InputError
from facegraph.mesh.preprocess import (
    CONFIGS,
    MeshConfig,
    NetworkInput,
    crop_to_ball,
    network_input,
    to_batch,
)
from facegraph.mesh.weights import CANONICAL_KEY, MEAN_KEY, load_weights, save_weights
from facegraph.nn.sgcn import SgcnConfig, StratifiedGcn, adaptive_wing_loss, decode_heatmaps, gaussian_targets
from facegraph.training import loop
from facegraph.training.loop import TrainResult


@dataclass(frozen=True)
class MeshRecipe:
    """How a mesh landmarker is trained: its configuration (``model``) and the training settings.

    Its flat dict (the configuration's fields, then the recipe's) is what checkpoints and weights store.
    """

    model: MeshConfig
    second_pass_fraction: float = 0.5  # share of the training samples that are second-pass crops
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"  # or "cosine": decays to zero over the run's epochs, step by step
    epochs: int = 20

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def network(self) -> SgcnConfig:
        return self.model.network

    @property
    def two_pass(self) -> bool:
        return self.model.two_pass

    def to_dict(self) -> dict:
        settings = asdict(self)
        del settings["model"]
        return {**self.model.to_dict(), **settings}


RECIPES = {
    "2s-sgcn-paper": MeshRecipe(CONFIGS["2s-sgcn-paper"], batch_size=4),
    "facegraph-mesh": MeshRecipe(CONFIGS["facegraph-mesh"]),
}

DEFAULT_AUGMENTATION = Augmentation()
# What is left after aligning a first estimate to the mean face: small turns and shifts.
ALIGNMENT_RESIDUAL = Augmentation(yaw=8.0, pitch=8.0, roll=5.0, shift=0.0)
CENTRE_JITTER_MM = 5.0


def augmented_sample(
    cache: PointCache,
    index: int,
    config: MeshRecipe,
    rng: np.random.Generator,
    augmentation: Augmentation,
    second_pass_fraction: float,
) -> tuple[NetworkInput, np.ndarray]:
    """One network input from a cached scan, and its landmarks in the normalised frame (68, 3)."""
    second_pass = config.two_pass and rng.random() < second_pass_fraction
    residual = replace(ALIGNMENT_RESIDUAL, scale=augmentation.scale)
    rotation, scale, shift = random_rigid(rng, residual if second_pass else augmentation)
    points = scale * cache.points[index].astype(np.float64) @ rotation.T + shift
    normals = cache.normals[index].astype(np.float64) @ rotation.T
    landmarks = scale * cache.landmarks[index].astype(np.float64) @ rotation.T + shift
    centre = None
    if second_pass:
        centre = landmarks.mean(axis=0) + rng.normal(0.0, CENTRE_JITTER_MM, 3)
        points, normals = crop_to_ball(points, normals, centre, config.model)
    sample = network_input(points, normals, config.model, rng, centre)
    return sample, ((landmarks - sample.centre) / sample.scale).astype(np.float32)


class CachedScans(Dataset):
    """Augmented network inputs drawn from a point cache; ``epoch`` re-seeds the augmentation."""

    def __init__(
        self,
        cache: PointCache,
        config: MeshRecipe,
        seed: int,
        augmentation: Augmentation,
        second_pass_fraction: float | None = None,
    ) -> None:
        self.cache, self.config, self.seed, self.augmentation = cache, config, seed, augmentation
        self.second_pass_fraction = (
            config.second_pass_fraction if second_pass_fraction is None else second_pass_fraction
        )
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> tuple[NetworkInput, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return augmented_sample(
            self.cache, index, self.config, rng, self.augmentation, self.second_pass_fraction
        )


def mean_landmarks(dataset: CachedScans, n: int = 200) -> np.ndarray:
    """The mean landmark positions in the normalised frame, over n augmented samples."""
    return np.mean([dataset[i % len(dataset)][1] for i in range(n)], axis=0).astype(np.float32)


def _collate(mean: np.ndarray | None):
    def collate(
        items: list[tuple[NetworkInput, np.ndarray]],
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        inputs = [item[0] for item in items]
        scales = torch.tensor([x.scale for x in inputs], dtype=torch.float32)
        return to_batch(inputs, mean), torch.from_numpy(np.stack([item[1] for item in items])), scales

    return collate


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (torchrun's RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @staticmethod
    def from_environment() -> Processes:
        env = os.environ
        return Processes(
            int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))
        )

    @property
    def main(self) -> bool:
        return self.rank == 0


def _stop_together(stop: bool, distributed: bool) -> bool:
    """The first process's decision to stop, shared with the others (it alone keeps the time)."""
    if not distributed:
        return stop
    decision = [stop]
    dist.broadcast_object_list(decision, src=0)
    return bool(decision[0])


def pick_device(processes: Processes = Processes()) -> torch.device:
    """This process's GPU when there is one, else the CPU."""
    return torch.device(f"cuda:{processes.local_rank}" if torch.cuda.is_available() else "cpu")


def evaluate(
    model: StratifiedGcn, loader: DataLoader, config: MeshRecipe, device: torch.device, coarse: bool = False
) -> float:
    """Mean landmark error in mm of the decoded heatmaps over a loader; ``coarse`` decodes the wide ones
    when the network has them (as the landmarker's first pass does)."""
    model.eval()
    errors = []
    n = config.network.n_landmarks
    with torch.no_grad():
        for batch, landmarks, scales in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            heat = model(**batch)
            heat = heat[:, n:] if coarse and config.network.coarse else heat[:, :n]
            estimate, _ = decode_heatmaps(heat, batch["features"][..., :3], config.network.decode_top)
            distance = (estimate.cpu() - landmarks).norm(dim=-1) * scales[:, None]
            errors.append(distance.mean(dim=1))
    model.train()
    return float(torch.cat(errors).mean())


def validation_sets(
    cache: PointCache, config: MeshRecipe, seed: int, augmentation: Augmentation
) -> tuple[CachedScans, CachedScans | None]:
    """The samples whose error chooses the checkpoint, and (two-pass configurations) the whole scans
    whose first-pass error is only reported.

    A two-pass landmarker answers with its second pass's narrow heatmaps on face crops and uses the
    first pass only to find the face, with the wide heatmaps: validation measures each for its job.
    """
    if not config.two_pass:
        return CachedScans(cache, config, seed, augmentation), None
    return (
        CachedScans(cache, config, seed, augmentation, second_pass_fraction=1.0),
        CachedScans(cache, config, seed, augmentation, second_pass_fraction=0.0),
    )


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(config: MeshRecipe, progress: float) -> float:
    """The learning rate after ``progress`` epochs (fractional) of the run's ``config.epochs``."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "cosine":
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(progress / config.epochs, 1.0)))
    raise ValueError(
        f"unknown learning-rate schedule {config.lr_schedule!r} (known: {', '.join(LR_SCHEDULES)})"
    )


def initial_weights(model: StratifiedGcn, config: MeshRecipe, path: Path) -> None:
    """Start from trained weights (fine-tuning); their network must be the configuration's."""
    trained, trained_config, _, _ = load_weights(path)
    if trained_config.network != config.network:
        raise InputError(
            f"the weights' network ({trained_config.name}) differs from the configuration's ({config.name})",
            path,
        )
    model.load_state_dict(trained.state_dict())


def training_config(
    name: str,
    n_points: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    lr_schedule: str | None = None,
    second_pass_fraction: float | None = None,
) -> MeshRecipe:
    """The named recipe with the settings given (None keeps the configuration's)."""
    if name not in RECIPES:
        raise InputError(f"unknown --config {name!r} (known: {', '.join(RECIPES)})")
    config = RECIPES[name]
    if n_points is not None:
        config = replace(config, model=replace(config.model, n_points=n_points))
    config = loop.with_settings(config, epochs=epochs, learning_rate=learning_rate, lr_schedule=lr_schedule)
    if second_pass_fraction is not None:
        # Both kinds of sample are needed: whole scans teach the first pass to find the face, face
        # crops teach the passes that answer.
        if not config.two_pass or not 0.0 < second_pass_fraction < 1.0:
            raise InputError(
                f"--second-pass-fraction needs a two-pass configuration and a value strictly between 0 and 1 "
                f"(got {second_pass_fraction:g} for {config.name})"
            )
        config = replace(config, second_pass_fraction=second_pass_fraction)
    return config


def check_warp(warp: float) -> None:
    """Refuse a share of bent faces outside [0, 1]."""
    if not 0.0 <= warp <= 1.0:
        raise InputError(f"--warp is a share of the faces, between 0 and 1 (got {warp:g})")


def _validation_measure(config: MeshRecipe) -> str:
    """What a run's validation error measures (checkpoints store it, so a resume compares like with like)."""
    return "face crops" if config.two_pass else "whole scans"


def train_mesh(
    config: MeshRecipe,
    train_cache: PointCache,
    val_cache: PointCache,
    out: Path,
    seed: int = 0,
    resume: bool = False,
    augmentation: Augmentation = DEFAULT_AUGMENTATION,
    workers: int = 1,
    max_minutes: float | None = None,
    init: Path | None = None,
) -> TrainResult:
    """Train, validating every epoch (``facegraph.training.loop``); writes last.pt (resumable),
    best.safetensors and history.json atomically. The score is the validation error in mm.

    ``init`` starts from trained weights instead of random ones (a resumed run continues from last.pt).

    Launched by ``torchrun --nproc_per_node G``, it trains with DistributedDataParallel (NCCL on GPUs,
    gloo on CPUs): each process takes its share of every epoch in batches of ``config.batch_size``, and
    the first one validates and writes the checkpoints.
    """
    if len(train_cache) < config.batch_size:
        raise InputError(f"{len(train_cache)} training scans is fewer than one batch of {config.batch_size}")
    processes = Processes.from_environment()
    distributed = processes.world > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    device = pick_device(processes)
    train_set = CachedScans(train_cache, config, seed, augmentation)
    mean = mean_landmarks(train_set) if config.network.global_branch == "super" else None
    model = StratifiedGcn(config.network)
    if init is not None:
        initial_weights(model, config, init)
    model = model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    run = loop.RunState()
    if resume:
        run, mean = _resume(model, optimiser, out, config, device, run, mean)
    arrays = {} if mean is None else {MEAN_KEY: mean}
    if config.two_pass:
        arrays[CANONICAL_KEY] = train_cache.landmarks.mean(axis=0)
    trained = (
        DistributedDataParallel(model, device_ids=[device.index] if device.index is not None else None)
        if distributed
        else model
    )
    epoch = _epoch_trainer(trained, optimiser, train_set, config, mean, device, processes, seed, workers)
    validate = _validator(model, val_cache, config, mean, device, seed, augmentation, workers)

    def checkpoint() -> dict:
        return {
            "config": json.dumps(config.to_dict()),
            "validation": _validation_measure(config),
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "mean_landmarks": None if mean is None else torch.from_numpy(mean),
        }

    trainer = loop.Trainer(
        train_epoch=epoch,
        validate=validate,
        score=SCORE,
        save_best=lambda record: save_weights(out / loop.BEST, model, config, arrays, record),
        checkpoint=checkpoint,
        describe=_describe,
    )
    result = loop.run_epochs(
        trainer, out, config.epochs, run, {"config": config.to_dict()}, max_minutes, processes.main,
        lambda stop: _stop_together(stop, distributed),
    )  # fmt: skip
    if distributed:
        # Every process reaches the end before any tears the group down: a process destroying it while
        # another still writes its files was seen to abort (gloo, "terminate called without an active
        # exception") about once in ten test runs.
        dist.barrier()
        dist.destroy_process_group()
    return result


SCORE = "val_mm"


def _resume(
    model: StratifiedGcn,
    optimiser: torch.optim.Optimizer,
    out: Path,
    config: MeshRecipe,
    device: torch.device,
    run: loop.RunState,
    mean: np.ndarray | None,
) -> tuple[loop.RunState, np.ndarray | None]:
    """Continue from the run's ``last.pt`` when it has one: the weights, the optimiser, where the run
    stands and the mean landmarks it was trained with."""
    state = loop.load_checkpoint(out, config.to_dict(), device)
    if state is None:
        return run, mean
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    same_measure = state.get("validation") == _validation_measure(config)
    if not same_measure:
        tqdm.write(f"{out / loop.CHECKPOINT}: validated another way before; the best epoch is chosen afresh")
    if state.get("mean_landmarks") is not None:
        mean = state["mean_landmarks"].cpu().numpy()
    return loop.resumed_state(state, out, SCORE, keep_best=same_measure), mean


def _describe(record: dict) -> str:
    line = f"epoch {record['epoch']}: loss {record['loss']:.4f}, validation {record['val_mm']:.3f} mm"
    if "first_pass_mm" in record:
        line += f" on face crops; first pass on whole scans {record['first_pass_mm']:.3f} mm"
    return line


def _epoch_trainer(
    trained: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    train_set: CachedScans,
    config: MeshRecipe,
    mean: np.ndarray | None,
    device: torch.device,
    processes: Processes,
    seed: int,
    workers: int,
) -> Callable[[int], dict]:
    """One epoch of training (this process's share of it), returning its mean loss."""
    collate = _collate(mean)
    n = config.network.n_landmarks

    def train_epoch(epoch: int) -> dict:
        train_set.epoch = epoch
        order = {"generator": torch.Generator().manual_seed(seed * 1000 + epoch), "shuffle": True}
        if processes.world > 1:
            sampler = DistributedSampler(
                train_set, processes.world, processes.rank, seed=seed, drop_last=True
            )
            sampler.set_epoch(epoch)
            order = {"sampler": sampler}
        loader = DataLoader(
            train_set, batch_size=config.batch_size, collate_fn=collate, num_workers=workers, drop_last=True,
            **order,
        )  # fmt: skip
        losses = []
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not processes.main
        )
        for step, (batch, landmarks, _) in enumerate(bar):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(config, epoch + step / len(loader))
            batch = {key: value.to(device) for key, value in batch.items()}
            heat = trained(**batch)
            points, landmarks = batch["features"][..., :3], landmarks.to(device)
            loss = adaptive_wing_loss(heat[:, :n], gaussian_targets(points, landmarks, config.model.sigma))
            if config.network.coarse:
                wide = gaussian_targets(points, landmarks, config.model.coarse_sigma)
                loss = loss + adaptive_wing_loss(heat[:, n:], wide)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        return {"loss": float(np.mean(losses))}

    return train_epoch


def _validator(
    model: StratifiedGcn,
    val_cache: PointCache,
    config: MeshRecipe,
    mean: np.ndarray | None,
    device: torch.device,
    seed: int,
    augmentation: Augmentation,
    workers: int,
) -> Callable[[], dict]:
    """The validation figures: the error that chooses the best epoch and, for two-pass configurations,
    the first pass's on whole scans."""
    collate = _collate(mean)
    val_set, first_pass_set = validation_sets(val_cache, config, seed + 1_000_003, augmentation)

    def loader(dataset: CachedScans) -> DataLoader:
        return DataLoader(dataset, batch_size=config.batch_size, collate_fn=collate, num_workers=workers)

    val_loader = loader(val_set)
    first_pass_loader = None if first_pass_set is None else loader(first_pass_set)

    def validate() -> dict:
        figures = {SCORE: evaluate(model, val_loader, config, device)}
        if first_pass_loader is not None:
            figures["first_pass_mm"] = evaluate(model, first_pass_loader, config, device, coarse=True)
        return figures

    return validate
