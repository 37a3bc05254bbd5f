"""The epoch loop every trainer shares: validation after each epoch, the best epoch's weights kept, a
resumable checkpoint and the history written atomically, and a time budget.

A trainer plugs in what differs (one epoch of training, its validation figures, how its best weights and
its checkpoint are stored) as a :class:`Trainer`; the loop owns the rest, so that resuming, choosing the
best epoch and stopping on time behave the same for every model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

from facegraph.errors import InputError
from facegraph.io.atomic import atomic_path

Settings = TypeVar("Settings")

CHECKPOINT = "last.pt"
BEST = "best.safetensors"
HISTORY = "history.json"


@dataclass
class Trainer:
    """What one model's training brings to the loop.

    train_epoch: trains one epoch (0-based) and returns its figures (e.g. mean losses).
    validate: the validation figures of the model as it is now; they include ``score``.
    score: the figure the best epoch minimises.
    save_best: writes the best weights, given the epoch's record.
    checkpoint: the tensors and settings a resumed run needs (the loop adds its own keys).
    describe: one line about an epoch's record, or "" to print nothing.
    """

    train_epoch: Callable[[int], dict]
    validate: Callable[[], dict]
    score: str
    save_best: Callable[[dict], None]
    checkpoint: Callable[[], dict]
    describe: Callable[[dict], str]


@dataclass
class RunState:
    """Where a run stands: the next epoch, the records so far and the best epoch (1-based; -1: none)."""

    start_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_score: float = math.inf
    best_epoch: int = -1


@dataclass
class TrainResult:
    """The best epoch (1-based), its score and record, and every epoch's record."""

    best_epoch: int
    best_score: float
    best: dict
    history: list[dict]


def with_settings(config: Settings, **settings: object) -> Settings:
    """``config`` with the settings given on the command line; None keeps the configuration's."""
    return replace(config, **{key: value for key, value in settings.items() if value is not None})


def check_resumable(state: dict, config: dict, path: Path, older: dict | None = None) -> None:
    """Refuse to resume a checkpoint ``state`` (its ``config``, JSON) with another configuration than
    ``config`` (a dict): only the number of epochs may change. Checkpoints from before configurations
    were stored pass; ``older`` gives settings added since, with the value runs had before them."""
    if "config" not in state:
        return
    stored = {**(older or {}), **json.loads(state["config"]), "epochs": config["epochs"]}
    given = json.loads(json.dumps(config))
    changed = sorted(key for key in given.keys() | stored.keys() if stored.get(key) != given.get(key))
    if changed:
        raise InputError(
            f"the run was trained with other settings ({', '.join(changed)}); resume it as it was", path
        )


def load_checkpoint(out: Path, config: dict, device: torch.device, older: dict | None = None) -> dict | None:
    """The run's ``last.pt`` (tensors only: it is a user file), checked against ``config``; None when the
    folder holds none."""
    path = out / CHECKPOINT
    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    check_resumable(state, config, path, older)
    return state


def resumed_state(state: dict, out: Path, score: str, keep_best: bool = True) -> RunState:
    """Where the checkpointed run stands. Its history is in the checkpoint (older photo runs: in
    ``history.json``); ``keep_best=False`` chooses the best epoch afresh among the epochs to come, for a
    run whose earlier epochs were validated another way."""
    if "history" in state:
        history = json.loads(state["history"])
    else:
        stored = json.loads((out / HISTORY).read_text())
        history = stored["epochs"] if isinstance(stored, dict) else stored
    run = RunState(int(state["epoch"]) + 1, history)
    scored = [record for record in history if score in record] if keep_best else []
    if scored:
        best = min(scored, key=lambda record: record[score])
        run.best_score, run.best_epoch = float(best[score]), int(best["epoch"])
    return run


def _alone(stop: bool) -> bool:
    return stop


def run_epochs(
    trainer: Trainer,
    out: Path,
    epochs: int,
    run: RunState,
    header: dict,
    max_minutes: float | None = None,
    main: bool = True,
    stop_together: Callable[[bool], bool] = _alone,
) -> TrainResult:
    """Train from ``run.start_epoch`` to ``epochs``: after each epoch, validate, keep the best weights,
    write ``last.pt`` and ``history.json`` (``header`` and the records under "epochs"), and stop once
    ``max_minutes`` are spent. With several processes only the ``main`` one validates and writes;
    ``stop_together`` shares its decision to stop with the others."""
    began = time.monotonic()
    for epoch in range(run.start_epoch, epochs):
        figures = trainer.train_epoch(epoch)
        if not main:
            if stop_together(False):
                break
            continue
        record = {"epoch": epoch + 1, **figures, **trainer.validate()}
        record["minutes"] = (time.monotonic() - began) / 60
        run.history.append(record)
        line = trainer.describe(record)
        if line:
            tqdm.write(line)
        if record[trainer.score] < run.best_score:
            run.best_score, run.best_epoch = float(record[trainer.score]), epoch + 1
            trainer.save_best(record)
        _write_checkpoint(trainer, out, epoch, run)
        write_history(out, header, run.history)
        spent = max_minutes is not None and record["minutes"] > max_minutes
        if spent:
            tqdm.write(f"stopping after epoch {epoch + 1}: the {max_minutes:g}-minute budget is spent")
        if stop_together(spent):
            break
    best = next((r for r in run.history if r["epoch"] == run.best_epoch), {})
    return TrainResult(run.best_epoch, run.best_score, best, run.history)


def _write_checkpoint(trainer: Trainer, out: Path, epoch: int, run: RunState) -> None:
    state = {**trainer.checkpoint(), "epoch": epoch, "history": json.dumps(run.history)}
    with atomic_path(out / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def write_history(out: Path, header: dict, history: list[dict]) -> None:
    """``history.json``: the run's settings and every epoch's record under "epochs"."""
    with atomic_path(out / HISTORY) as tmp:
        tmp.write_text(json.dumps({**header, "epochs": history}, indent=1))
