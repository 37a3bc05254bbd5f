"""Training SPIGA here (its authors released no training code): data, targets, augmentation, losses.

Faces are the photo trainer's 120 x 120 crops (``facegraph.datasets.face_crops``: AFLW's training crops
with 14 of the 68 points labelled, 300-W-style photos with all 68), so SPIGA and SynergyNet see faces
framed alike and SynergyNet's points can start SPIGA's cascade. Where no human labelled a point, the
package's photo model gives a pseudo-label: SynergyNet's fit of the face refitted to the human points
it has (``facegraph.training.refit``), decoded with the BFM, weighted ``pseudo_weight``.

Targets per face: the 68 points in unit crop coordinates with a weight each, and the head pose fitted
to them (``facegraph.geometry.pose_fit``, after augmentation, so that rotations move the roll).
Losses (the paper's are not public; chosen here): L1 on every cascade step's points and on the posed
mean face's projection (in percent of the crop), smooth L1 on the pose in ``POSE_SCALE`` units, and
mean squared error on Gaussian heatmaps (one map pixel wide) of the labelled points.

Augmentation follows SPIGA's published ranges: mirror 0.5, rotation +-45 degrees, scale +-15 %, shift
5 %, a random-coloured occluding rectangle, colour jitter and blur.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from facegraph.datasets.annotated_photos import SkippedFile, load_annotated_photos
from facegraph.datasets.face_crops import CROP_SIZE, FaceCrops, concatenate, split_by_group, to_y_down
from facegraph.devices import pick_device
from facegraph.errors import InputError
from facegraph.geometry.pose_fit import fit_pose
from facegraph.image.crop_regressor import CropRegressor, regress_params
from facegraph.image.spiga import from_unit, load_spiga, normalise, save_spiga, to_unit
from facegraph.io.atomic import atomic_path
from facegraph.metrics.landmarks import landmark_box_size
from facegraph.nn.spiga import CONFIGS as MODEL_CONFIGS
from facegraph.nn.spiga import POSE_SCALE, Spiga
from facegraph.schemes.registry import get_scheme
from facegraph.training.loop import (
    BEST,
    RunState,
    Trainer,
    TrainResult,
    load_checkpoint,
    resumed_state,
    run_epochs,
)
from facegraph.training.refit import refit_to_points
from facegraph.training.synergynet import (
    colour_jitter,
    load_training_faces,
    mirror_points,
    random_similarity,
    warmup_cosine,
    warp_images,
)

FLIP_ORDER = np.array(get_scheme("ibug68").flip_order)
OUTER_EYE_CORNERS = (36, 45)
TEST_SEED = 28  # fixes which 68-point photos are held out for the final report, whatever the run's seed
HEATMAP_SIGMA = 1.0  # map pixels
POSE_ITERATIONS = 8  # per batch, from a good start
SCORE = "val_nme"  # the figure the best epoch minimises


@dataclass(frozen=True)
class SpigaTrainConfig:
    """A training recipe; ``model`` names the network's configuration (``facegraph.nn.spiga.CONFIGS``)."""

    name: str
    model: str
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 20
    max_rotation: float = 45.0  # degrees
    scale_range: float = 0.15
    shift: float = 0.05  # of the crop size
    flip: float = 0.5
    colour: float = 0.3
    occlusion: float = 0.5  # probability of an occluding rectangle
    blur: float = 0.5  # probability of a Gaussian blur
    pseudo_weight: float = 0.5
    heatmap_weight: float = 1.0
    pose_weight: float = 0.1
    initial_weight: float = 0.5
    val_fraction: float = 0.05
    test_fraction: float = 0.25  # of the 68-point photos, never trained on
    backbone_from_synergynet: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    "spiga-fast": SpigaTrainConfig("spiga-fast", "spiga-fast"),
    "spiga-paper": SpigaTrainConfig("spiga-paper", "spiga-paper", backbone_from_synergynet=False),
}


def get_config(name: str) -> SpigaTrainConfig:
    if name not in CONFIGS:
        raise InputError(f"unknown SPIGA training configuration {name!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[name]


def pseudo_labels(model: CropRegressor, data: FaceCrops, progress: bool) -> np.ndarray:
    """(N, 68, 2) y-down crop points: the photo model's fit of each crop refitted to its human points."""
    morphable = model.morphable
    if morphable is None or morphable.whitening is None:
        raise InputError("pseudo-labels need the BFM with its parameter whitening (--bfm DIR)")
    params = regress_params(model, data.crops, progress)
    refitted = refit_to_points(params, data.points, morphable.whitening.std, morphable)
    with torch.inference_mode():
        points = morphable.landmarks(torch.as_tensor(refitted, device=morphable.mean.device))
    return to_y_down(points).cpu().numpy()


def cached_pseudo_labels(model: CropRegressor, data: FaceCrops, cache: Path, progress: bool) -> np.ndarray:
    """``pseudo_labels``, computed once and kept in ``cache``."""
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)["points"]
        if stored.shape[0] == len(data):
            return stored
    points = pseudo_labels(model, data, progress)
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, points=points)
    return points


def spiga_pseudo_labels(faces: FaceCrops, bfm: str | None, out: Path, progress: bool) -> np.ndarray | None:
    """The shipped photo model's refitted fits as pseudo-labels, cached in the run folder ``out``; None
    when humans labelled every point."""
    from facegraph.registry import load_model

    if np.isfinite(faces.points).all():
        return None

    model = load_model("synergynet", bfm=bfm, kind="image")
    return cached_pseudo_labels(model, faces, out / "pseudo-labels.npz", progress)


def load_spiga_faces(
    aflw: list[str], faces68: list[str], folders: list[str], skip_bad: bool, progress: bool
) -> tuple[FaceCrops, list[SkippedFile]]:
    """Every training face: AFLW's crops, 68-point photo folders and users' annotated folders
    (``facegraph.datasets.annotated_photos``), with the files ``skip_bad`` left out."""
    parts, skipped = [], []
    if aflw or faces68:
        parts.append(load_training_faces(aflw, faces68, progress))
    for folder in folders:
        faces, left_out = load_annotated_photos(folder, skip_bad, progress)
        parts.append(faces)
        skipped += left_out
    if not parts:
        raise InputError("no training data: pass --aflw DIR, --faces68 DIR or --data DIR")
    return concatenate(parts), skipped


def targets(
    data: FaceCrops, pseudo: np.ndarray | None, pseudo_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) target points (human where labelled, else the pseudo-label) and (N, 68) weights
    (1, ``pseudo_weight``, or 0 where neither exists)."""
    human = np.isfinite(data.points).all(axis=-1)
    points = np.where(human[..., None], data.points, 0.0)
    weights = human.astype(np.float32)
    if pseudo is not None:
        points = np.where(human[..., None], points, pseudo)
        weights = np.where(human, 1.0, pseudo_weight).astype(np.float32)
    return points.astype(np.float32), weights


def split(data: FaceCrops, config: SpigaTrainConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices. The test side is ``test_fraction`` of the 68-point faces'
    photos, chosen with ``TEST_SEED`` whatever ``seed`` is (the report's faces stay the same); the rest is
    split into training and validation by photo with ``seed``. Each side gets at least one photo."""
    full = np.flatnonzero(data.source == "68pt")
    test = np.array([], dtype=np.int64)
    if len(full) and config.test_fraction > 0:
        test = full[_held_photos(data.groups[full], config.test_fraction, TEST_SEED)]
    rest = np.setdiff1d(np.arange(len(data)), test)
    if len(np.unique(data.groups[rest])) < 2:
        raise InputError(
            "too few photos to train and validate on (at least two are needed besides the test ones)"
        )
    val = _held_photos(data.groups[rest], config.val_fraction, seed)
    return np.setdiff1d(rest, rest[val]), rest[val], test


def _held_photos(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of the faces on the held side of ``split_by_group``, which holds one photo at least."""
    at_least_one = max(fraction, 1 / len(np.unique(groups)))
    return split_by_group(groups, at_least_one, seed)[1]


def build_model(config: SpigaTrainConfig, mean_face: np.ndarray) -> Spiga:
    """A fresh network for ``config``, its backbone started from the shipped SynergyNet when asked."""
    model_config = MODEL_CONFIGS[config.model]
    face = torch.as_tensor(mean_face, dtype=torch.float32)
    distance = typical_distance(face, model_config.focal)
    model = Spiga(model_config, face, distance)
    if config.backbone_from_synergynet:
        from facegraph.image.synergynet import load_synergynet

        trained = load_synergynet(None, None).network.backbone.body.state_dict()
        own = model.backbone.body.state_dict()
        model.backbone.body.load_state_dict({key: trained[key] for key in own})
    return model


# The crops frame faces as 3DDFA's landmark box does: the 68 points' longest side is 1 / sqrt(2) of it.
FACE_FRACTION = 1 / np.sqrt(2)


def typical_distance(mean_face: torch.Tensor, focal: float) -> float:
    """The tz at which the mean face's width spans the crops' typical face width."""
    width = float(mean_face[:, 0].max() - mean_face[:, 0].min())
    return float(focal * width / FACE_FRACTION)


def crops_to_input(crops: np.ndarray, size: int) -> torch.Tensor:
    """(B, 120, 120, 3) uint8 crops -> (B, 3, size, size) network input."""
    images = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    if size != images.shape[-1]:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return normalise(images)


def augment(
    crops: np.ndarray,
    points: np.ndarray,
    weights: np.ndarray,
    rng: np.random.Generator,
    config: SpigaTrainConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Augmented network input (B, 3, S, S), unit target points (B, 68, 2), their weights (B, 68) and
    which faces were mirrored (B,)."""
    images = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float()
    points, weights = points.copy(), weights.copy()
    flipped = rng.random(len(crops)) < config.flip
    if flipped.any():
        images[flipped] = images[flipped].flip(-1)
        points[flipped] = mirror_points(points[flipped], FLIP_ORDER)
        weights[flipped] = weights[flipped][:, FLIP_ORDER]
    a, b = random_similarity(rng, config, len(crops))
    images = warp_images(images, a, b)
    points = np.einsum("bij,bpj->bpi", a, points) + b[:, None]
    images = _occlude(images, rng, config.occlusion)
    images = _blur(images, rng, config.blur)
    images = colour_jitter(images, rng, config.colour)
    size = MODEL_CONFIGS[config.model].input_size
    if size != CROP_SIZE:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    unit = torch.as_tensor(to_unit(points, CROP_SIZE), dtype=torch.float32)
    return normalise(images), unit, torch.as_tensor(weights), torch.as_tensor(flipped)


def _occlude(images: torch.Tensor, rng: np.random.Generator, probability: float) -> torch.Tensor:
    """A rectangle of one random colour, 10-40 % of the crop on each side, over some of the images."""
    size = images.shape[-1]
    for k in np.flatnonzero(rng.random(len(images)) < probability):
        w, h = (rng.uniform(0.1, 0.4, 2) * size).astype(int) + 1
        x, y = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        images[k, :, y : y + h, x : x + w] = torch.as_tensor(rng.uniform(0, 255, 3), dtype=images.dtype)[
            :, None, None
        ]
    return images


def _blur(images: torch.Tensor, rng: np.random.Generator, probability: float) -> torch.Tensor:
    """A Gaussian blur (sigma 0.5-1.5 pixels) on some of the images."""
    chosen = np.flatnonzero(rng.random(len(images)) < probability)
    for k in chosen:
        sigma = rng.uniform(0.5, 1.5)
        taps = torch.arange(-2, 3, dtype=images.dtype)
        kernel = torch.exp(-(taps**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        image = images[k : k + 1].reshape(3, 1, *images.shape[-2:])
        image = F.conv2d(F.pad(image, (2, 2, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 5))
        image = F.conv2d(F.pad(image, (0, 0, 2, 2), mode="replicate"), kernel.view(1, 1, 5, 1))
        images[k] = image.reshape(3, *images.shape[-2:])
    return images


def heatmaps(points: torch.Tensor, size: int, sigma: float = HEATMAP_SIGMA) -> torch.Tensor:
    """(B, L, 2) unit points -> (B, L, size, size) Gaussians of peak 1 centred on them (map pixels)."""
    centres = (torch.arange(size, dtype=points.dtype, device=points.device) + 0.5) / size
    dx = (centres[None, None, :] - points[..., 0:1]) * size
    dy = (centres[None, None, :] - points[..., 1:2]) * size
    return torch.exp(-(dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / (2 * sigma**2))


def losses(
    out: dict, points: torch.Tensor, weights: torch.Tensor, pose: torch.Tensor, config: SpigaTrainConfig
) -> dict[str, torch.Tensor]:
    """The training losses of one batch (see the module's docstring); "total" is their weighted sum."""
    total_weight = weights.sum().clamp_min(1.0)

    def point_l1(predicted: torch.Tensor) -> torch.Tensor:
        return 100 * ((predicted - points).abs().sum(-1) * weights).sum() / total_weight

    steps = torch.stack([point_l1(p) for p in out["steps"]]).mean()
    initial = point_l1(out["initial"])
    scale = pose.new_tensor(POSE_SCALE)
    pose_loss = F.smooth_l1_loss(out["pose"] / scale, pose / scale)
    maps = out["heatmaps"]
    target = heatmaps(points, maps[0].shape[-1])
    labelled = (weights > 0).to(target.dtype)[..., None, None]
    heatmap = torch.stack([((m - target) ** 2 * labelled).mean() for m in maps]).mean() * 100
    total = steps + config.initial_weight * initial + config.pose_weight * pose_loss
    total = total + config.heatmap_weight * heatmap
    return {"total": total, "steps": steps, "initial": initial, "pose": pose_loss, "heatmap": heatmap}


@torch.inference_mode()
def predict_points(
    model: Spiga, crops: np.ndarray, batch: int = 128, initial: np.ndarray | None = None
) -> np.ndarray:
    """(N, 68, 2) y-down crop points the model gives for (N, 120, 120, 3) crops (``initial``: crop points
    to start the cascade from instead of the posed mean face, such as SynergyNet's)."""
    device = next(model.parameters()).device
    out = []
    for first in range(0, len(crops), batch):
        images = crops_to_input(crops[first : first + batch], model.config.input_size).to(device)
        start = None
        if initial is not None:
            start = torch.as_tensor(
                to_unit(initial[first : first + batch], CROP_SIZE), dtype=torch.float32, device=device
            )
        out.append(model(images, start)["steps"][-1].float().cpu().numpy())
    return from_unit(np.concatenate(out), CROP_SIZE)


def face_nme(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) per-face mean error over the labelled points (NaN: unlabelled), in percent of the outer-eye-
    corner distance where both corners are labelled, else of the labelled points' box size."""
    labelled = np.isfinite(truth).all(axis=-1)
    errors = np.linalg.norm(predicted - np.nan_to_num(truth), axis=-1)
    mean = (errors * labelled).sum(1) / np.maximum(labelled.sum(1), 1)
    corners = truth[:, list(OUTER_EYE_CORNERS)]
    ocular = np.linalg.norm(corners[:, 0] - corners[:, 1], axis=-1)
    size = landmark_box_size(truth, labelled)
    return 100 * mean / np.where(np.isfinite(ocular), ocular, size)


FREEZABLE = ("backbone", "pose")


def freeze(model: Spiga, parts: tuple[str, ...]) -> None:
    """Stop training ``parts`` ("backbone": the CNN; "pose": the pose head), batch statistics included."""
    for part in parts:
        if part not in FREEZABLE:
            raise InputError(f"--freeze takes {' or '.join(FREEZABLE)}, not {part!r}")
        module = model.backbone if part == "backbone" else model.pose_head
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def set_training(model: Spiga, frozen: tuple[str, ...]) -> None:
    """Train mode for the parts being trained; a frozen backbone keeps its batch statistics."""
    model.train()
    if "backbone" in frozen:
        model.backbone.eval()


def pose_targets(
    points: torch.Tensor, weights: torch.Tensor, model: Spiga, yaws: torch.Tensor
) -> torch.Tensor:
    """(B, 6) poses of the mean face fitted to a batch's target points (their labelled ones), each fit
    started from the face's yaw before augmentation (``yaws``, mirrored where the face was)."""
    shape = model.mean_face.cpu()
    pose, _ = fit_pose(points, shape, model.config.focal, weights > 0, POSE_ITERATIONS, start_yaws=yaws)
    return pose


def face_yaws(points: np.ndarray, weights: np.ndarray, mean_face: torch.Tensor, focal: float) -> np.ndarray:
    """(N,) yaw of the mean face fitted to each face's un-augmented target points (full fits)."""
    out = []
    for first in range(0, len(points), 1024):
        unit = torch.as_tensor(to_unit(points[first : first + 1024], CROP_SIZE), dtype=torch.float32)
        visible = torch.as_tensor(weights[first : first + 1024] > 0)
        out.append(fit_pose(unit, mean_face, focal, visible)[0][:, 0].numpy())
    return np.concatenate(out)


def train_step(
    model: Spiga,
    optimiser: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, ...],
    config: SpigaTrainConfig,
    yaws: np.ndarray,
) -> dict[str, float]:
    """One optimisation step on an augmented batch (``augment``'s output) whose faces had ``yaws`` before
    augmentation; the losses as numbers."""
    images, points, weights, flipped = batch
    start = torch.as_tensor(yaws, dtype=torch.float32) * torch.where(flipped, -1.0, 1.0)
    pose = pose_targets(points, weights, model, start)
    device = next(model.parameters()).device
    out = model(images.to(device))
    terms = losses(out, points.to(device), weights.to(device), pose.to(device), config)
    optimiser.zero_grad(set_to_none=True)
    terms["total"].backward()
    optimiser.step()
    return {key: float(value.detach()) for key, value in terms.items()}


def validate(model: Spiga, crops: np.ndarray, truth: np.ndarray, sources: np.ndarray) -> dict[str, float]:
    """Validation NME (%) over the human-labelled points: all faces ("val_nme", the score) and the
    68-point faces by their outer eye corners ("val_nme_68")."""
    model.eval()
    errors = face_nme(predict_points(model, crops), truth)
    figures = {"val_nme": float(errors.mean())}
    full = sources == "68pt"
    if full.any():
        figures["val_nme_68"] = float(errors[full].mean())
    return figures


@dataclass
class SpigaData:
    """Everything a run trains and validates on: crops, target points and weights, and the split."""

    faces: FaceCrops
    points: np.ndarray  # (N, 68, 2) y-down crop points: human, else pseudo-labels
    weights: np.ndarray  # (N, 68)
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    yaws: np.ndarray | None = None  # (N,) each face's fitted yaw before augmentation, set by train_spiga


def prepare_data(
    faces: FaceCrops, pseudo: np.ndarray | None, config: SpigaTrainConfig, seed: int
) -> SpigaData:
    points, weights = targets(faces, pseudo, config.pseudo_weight)
    return SpigaData(faces, points, weights, *split(faces, config, seed))


def train_spiga(
    data: SpigaData,
    mean_face: np.ndarray | None,
    out: str | Path,
    config: SpigaTrainConfig,
    seed: int = 0,
    resume: bool = False,
    max_minutes: float | None = None,
    init: Path | None = None,
    frozen: tuple[str, ...] = (),
    progress: bool = True,
    device: str | None = None,
) -> TrainResult:
    """Train (``facegraph.training.loop``); write ``best.safetensors`` (by validation NME against the
    human points), ``last.pt`` and ``history.json`` into ``out``. ``init`` starts from a SPIGA weights
    file (fine-tuning: fresh optimiser and schedule); ``frozen`` parts are not trained."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dev = pick_device(device)
    model = load_spiga(init)[0] if init is not None else build_model(config, mean_face)
    if model.config.name != config.model:
        raise InputError(f"the weights are {model.config.name}, not {config.model}", init)
    if data.yaws is None:
        data.yaws = face_yaws(data.points, data.weights, model.mean_face, model.config.focal)
    model.to(dev)
    freeze(model, frozen)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    settings = {**config.to_dict(), "frozen": list(frozen), "init": str(init) if init else None}
    run = RunState()
    if resume and (state := load_checkpoint(out, settings, dev)) is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        run = resumed_state(state, out, SCORE)
    val = data.faces.subset(data.val)
    split_sizes = {"n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test), "seed": seed}

    trainer = Trainer(
        train_epoch=_epoch_trainer(model, optimiser, data, config, frozen, seed, progress),
        validate=lambda: validate(model, val.crops, val.points, val.source),
        score=SCORE,
        save_best=lambda record: save_spiga(out / BEST, model, {**settings, **split_sizes, **record}),
        checkpoint=lambda: {
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "config": json.dumps(settings),
        },
        describe=lambda r: f"epoch {r['epoch']}: val NME {r['val_nme']:.3f} %" if progress else "",
    )
    return run_epochs(trainer, out, config.epochs, run, {"config": settings, **split_sizes}, max_minutes)


def _epoch_trainer(
    model: Spiga,
    optimiser: torch.optim.Optimizer,
    data: SpigaData,
    config: SpigaTrainConfig,
    frozen: tuple[str, ...],
    seed: int,
    progress: bool,
):
    """One epoch of training, returning its mean losses."""
    steps_per_epoch = max(1, len(data.train) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = min(steps_per_epoch, total_steps // 10)

    def train_epoch(epoch: int) -> dict:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(data.train)
        set_training(model, frozen)
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress)
        for i in bar:
            for group in optimiser.param_groups:
                group["lr"] = config.lr * warmup_cosine(epoch * steps_per_epoch + i, total_steps, warmup)
            chosen = order[i * config.batch_size : (i + 1) * config.batch_size]
            batch = augment(data.faces.crops[chosen], data.points[chosen], data.weights[chosen], rng, config)
            for key, value in train_step(model, optimiser, batch, config, data.yaws[chosen]).items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{sums['total'] / (i + 1):.3f}")
        return {f"loss_{k}": v / steps_per_epoch for k, v in sums.items()}

    return train_epoch
