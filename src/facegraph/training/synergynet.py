"""Training SynergyNet on the real faces at hand: distilled from a teacher, corrected by human labels.

Targets. The teacher (a crop-to-3DMM peer, by default 3DDFA_V2 x0.5) gives 62 parameters for every
crop and for its mirror image, once, cached in the run folder. Augmentations move image, human points
and parameters together: a flip uses the mirror's parameters and the points' flip order; a rotation,
scale and shift in the image plane is applied to the parameters' affine camera exactly (the camera is
left-multiplied by the same similarity, so it stays a scaled rotation). Colour changes touch the image
only. With ``targets="refitted"`` the teacher's parameters are first refitted to each face's human
points (``training.refit``), as AFLW2000-3D's ground truth was made (figures in the model card).

Losses (the published weights): Wing (omega 10, epsilon 2) on the 3D landmarks before and after the
refiner (x 0.05 each), root mean square error of the whitened parameters (x 0.02), the reverse
network's parameters against the targets (x 0.02) and against the prediction (x 0.001), all 62 against
all 62. facegraph adds: Wing on the landmark head (x 0.05), and Wing in 2D between the human-labelled
points and the landmarks decoded from the parameters and from the landmark head (``human_weight``).
The parameters are whitened by their mean and spread over the training targets as augmentation moves
them (``whitening="augmented"``): measured before augmentation, the depth offset's spread is so small
that the image scale's effect on it alone made up nearly all of the parameter losses (the earliest
runs, ``"plain"``). Fine-tuning from such a run converts its output layers to the new whitening.

Conventions. Annotators and the teacher's 3DMM keypoints disagree on average about where some points
lie (AFLW's chin sits higher than the model's contour point 8; 300-W's inner brow ends lie nearer the
midline), by up to 5 % of the face's box. With ``human_convention="teacher"`` each dataset's human
points are first moved into the teacher's convention: one 3D offset per landmark in the model's frame,
fitted robustly on the training side (``training.mesh_offsets``), projected by each face's teacher camera
and subtracted, so that the human labels correct only the teacher's per-face errors. The default,
``"annotators"``, uses them as labelled: on a fine-tune the teacher's convention lowered the validation
error in that convention but raised AFLW2000-3D's NME (the model card has the figures): the
benchmark's ground truth sits nearer AFLW's annotators than the teacher's keypoints.

Checkpoints are chosen by the validation split's error against the human labels, in the convention
trained on (NME in percent of the teacher's 68-point box, sqrt(w h)), the one figure on this data that
is not the teacher's opinion.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from facegraph.datasets.face_crops import CROP_SIZE, Y_FLIP, FaceCrops, split_by_group, to_y_down
from facegraph.devices import pick_device
from facegraph.errors import InputError
from facegraph.geometry.crops import CROP_PIXEL_OFFSET, crop_mirror_x
from facegraph.image.crop_regressor import CropRegressor, regress_params
from facegraph.image.synergynet import LandmarkWhitening, load_synergynet, save_synergynet
from facegraph.io.atomic import atomic_path
from facegraph.metrics.landmarks import landmark_box_size
from facegraph.morphable.bfm import N_CAMERA, N_SHAPE, MorphableModel, ParamWhitening
from facegraph.nn.synergynet import LandmarkRefiner, LandmarksToParams, SynergyNet, wing_loss
from facegraph.schemes.registry import get_scheme
from facegraph.training.loop import (
    BEST,
    CHECKPOINT,
    RunState,
    Trainer,
    TrainResult,
    load_checkpoint,
    resumed_state,
    run_epochs,
    with_settings,
)
from facegraph.training.mesh_offsets import fit_convention_offsets, to_teacher_convention
from facegraph.training.refit import DEFAULT_STRENGTH, refit_to_points

PIXEL_OFFSET = CROP_PIXEL_OFFSET  # where pixel column j's centre lies in the crop frame (geometry.crops)
MIRROR_X = crop_mirror_x(CROP_SIZE)
MIN_STD = 1e-6  # whitening never divides by a zero spread
HUMAN_CONVENTIONS = ("teacher", "annotators")
TARGETS = ("teacher", "refitted")
WHITENINGS = ("augmented", "plain")
WHITENING_DRAWS = 4  # augmentations drawn per training face to measure the cameras' spread


@dataclass(frozen=True)
class PhotoTrainConfig:
    """A training recipe. ``synergynet-paper`` is the published one (for GPUs); ``facegraph-photo``
    is what fits a CPU budget (AdamW, bfloat16 autocast on CPUs that compute it natively)."""

    name: str
    width: float = 1.0
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    epochs: int = 24
    warmup_epochs: float = 1.0
    bf16_on_cpu: bool = True
    human_weight: float = 0.1
    human_convention: str = "annotators"  # or "teacher": human points moved into its convention first
    targets: str = "teacher"  # or "refitted": the teacher's fits refitted to the human points
    refit_strength: float = DEFAULT_STRENGTH
    whitening: str = "augmented"  # or "plain": the spread before augmentation (the earliest runs)
    max_rotation: float = 15.0  # degrees
    scale_range: float = 0.08
    shift: float = 0.05  # of the crop size
    flip: float = 0.5
    colour: float = 0.3
    val_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.human_convention not in HUMAN_CONVENTIONS:
            known = ", ".join(HUMAN_CONVENTIONS)
            raise InputError(f"unknown human convention {self.human_convention!r}; known: {known}")
        if self.targets not in TARGETS:
            raise InputError(f"unknown targets {self.targets!r}; known: {', '.join(TARGETS)}")
        if self.whitening not in WHITENINGS:
            raise InputError(f"unknown whitening {self.whitening!r}; known: {', '.join(WHITENINGS)}")

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS = {
    "facegraph-photo": PhotoTrainConfig("facegraph-photo"),
    "synergynet-paper": PhotoTrainConfig(
        "synergynet-paper", optimizer="sgd", lr=0.08, weight_decay=5e-4, batch_size=1024, epochs=80,
        warmup_epochs=5.0, bf16_on_cpu=False,
    ),
}  # fmt: skip


def scale_augmentation(config: PhotoTrainConfig, factor: float) -> PhotoTrainConfig:
    """``config`` with its rotation, scale, shift and colour strengths times ``factor`` (flips and the
    share of grayscale unchanged): gentler augmentation for a last fine-tuning stage."""
    if not (math.isfinite(factor) and factor >= 0):
        raise InputError(f"the augmentation factor must be a number >= 0, not {factor}")
    return replace(
        config,
        max_rotation=config.max_rotation * factor,
        scale_range=config.scale_range * factor,
        shift=config.shift * factor,
        colour=config.colour * factor,
    )


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX). Elsewhere PyTorch emulates it:
    emulated bfloat16 autocast made training steps many times slower than float32 (the model card has
    the timing), so ``bf16_on_cpu`` applies only where it pays."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def get_config(name: str) -> PhotoTrainConfig:
    if name not in CONFIGS:
        raise InputError(f"unknown training config {name!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[name]


def training_config(
    name: str,
    epochs: int | None = None,
    learning_rate: float | None = None,
    human_convention: str | None = None,
    targets: str | None = None,
    whitening: str | None = None,
    augmentation: float | None = None,
) -> PhotoTrainConfig:
    """The named recipe with the settings given (None keeps the recipe's)."""
    config = with_settings(
        get_config(name), epochs=epochs, lr=learning_rate, human_convention=human_convention, targets=targets,
        whitening=whitening,
    )  # fmt: skip
    return config if augmentation is None else scale_augmentation(config, augmentation)


def load_training_faces(aflw: list[str], faces68: list[str], progress: bool) -> FaceCrops:
    """The face crops of every AFLW training folder and every folder of 68-point photos, as one set."""
    from facegraph.datasets.face_crops import concatenate, load_aflw_train, load_faces68_crops

    parts = [load_aflw_train(folder, progress=progress) for folder in aflw]
    parts += [load_faces68_crops(folder, progress=progress) for folder in faces68]
    if not parts:
        raise InputError("no training data: pass --aflw DIR and/or --faces68 DIR")
    return concatenate(parts)


def cached_teacher_labels(
    teacher: CropRegressor, data: FaceCrops, cache: Path, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher parameters for every crop and its mirror, computed once and kept in ``cache``."""
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if stored["plain"].shape[0] == len(data):
            return stored["plain"], stored["mirrored"]
    plain = regress_params(teacher, data.crops, progress)
    mirrored = regress_params(teacher, data.crops[:, :, ::-1], progress)
    with atomic_path(cache) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, plain=plain, mirrored=mirrored)
    return plain, mirrored


class SimilarityRanges(Protocol):
    """How far augmentation rotates (degrees), scales (a fraction) and shifts (of the crop) a face."""

    max_rotation: float
    scale_range: float
    shift: float


def random_similarity(
    rng: np.random.Generator, config: SimilarityRanges, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2, 2) scaled rotations and (n, 2) shifts in the y-down crop frame, about the crop centre."""
    angle = np.radians(rng.uniform(-config.max_rotation, config.max_rotation, n))
    scale = 1.0 + rng.uniform(-config.scale_range, config.scale_range, n)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    a = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    centre = np.full(2, (CROP_SIZE - 1) / 2 + PIXEL_OFFSET)
    b = centre - a @ centre + rng.uniform(-config.shift, config.shift, (n, 2)) * CROP_SIZE
    return a, b


def warp_images(images: torch.Tensor, a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """Move (B, C, H, W) images by c' = a c + b (y-down crop frame); outside the crop is black."""
    size = images.shape[-1]
    # pixel index j -> normalised grid coordinate u = (2 j + 1) / size - 1; frame coordinate c = j + offset
    to_frame = np.array(
        [
            [size / 2, 0, size / 2 - 0.5 + PIXEL_OFFSET],
            [0, size / 2, size / 2 - 0.5 + PIXEL_OFFSET],
            [0, 0, 1],
        ]
    )
    forward = np.zeros((len(a), 3, 3))
    forward[:, :2, :2], forward[:, :2, 2], forward[:, 2, 2] = a, b, 1
    theta = np.linalg.inv(to_frame) @ np.linalg.inv(forward) @ to_frame
    grid = torch.nn.functional.affine_grid(
        torch.as_tensor(theta[:, :2], dtype=images.dtype), list(images.shape), align_corners=False
    )
    return torch.nn.functional.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


def move_params(params: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Left-multiply (B, 62) parameters' cameras by the image similarity (a, b) of the y-down frame."""
    flip_y = np.diag([1.0, -1.0])
    a_up = flip_y @ a @ flip_y
    e = np.array([0.0, Y_FLIP])
    b_up = (flip_y @ (a @ e + b)[..., None])[..., 0] + e
    camera = params[:, :N_CAMERA].reshape(-1, 3, 4).copy()
    scale = np.sqrt(np.abs(np.linalg.det(a)))
    moved = camera.copy()
    moved[:, :2] = a_up @ camera[:, :2]
    moved[:, :2, 3] += b_up
    moved[:, 2] = scale[:, None] * camera[:, 2]
    out = params.copy()
    out[:, :N_CAMERA] = moved.reshape(-1, N_CAMERA)
    return out


def target_whitening(
    labels: tuple[np.ndarray, np.ndarray], train_idx: np.ndarray, config: PhotoTrainConfig, seed: int
) -> ParamWhitening:
    """The parameters' mean and spread over the training faces. With ``config.whitening ==
    "augmented"`` the 12 camera numbers are measured as augmentation moves them (flips, rotations,
    scales, shifts; ``WHITENING_DRAWS`` per face): a scale moves the depth offset t_z (about -66) by up
    to ``scale_range`` x 66, so that t_z spreads about 700 times wider under augmentation than without;
    whitened by the plain spread it would dominate the root mean square of the parameter losses while
    leaving every 2D point where it is."""
    params = labels[0][train_idx]
    mean, std = params.mean(0), np.maximum(params.std(0), MIN_STD)
    if config.whitening == "augmented":
        rng = np.random.default_rng([seed, len(train_idx)])
        faces = np.tile(train_idx, WHITENING_DRAWS)
        flipped = rng.random(len(faces)) < config.flip
        drawn = np.where(flipped[:, None], labels[1][faces], labels[0][faces])
        cameras = move_params(drawn, *random_similarity(rng, config, len(faces)))[:, :N_CAMERA]
        mean[:N_CAMERA], std[:N_CAMERA] = cameras.mean(0), np.maximum(cameras.std(0), MIN_STD)
    return ParamWhitening(mean, std)


def same_whitening(a: ParamWhitening, b: ParamWhitening, rows: slice = slice(None)) -> bool:
    """Whether two whitenings agree on parameters ``rows``."""
    return bool(np.allclose(a.mean[rows], b.mean[rows]) and np.allclose(a.std[rows], b.std[rows]))


@torch.no_grad()
def rewhiten_outputs(layer: torch.nn.Linear, first: int, old: ParamWhitening, new: ParamWhitening) -> None:
    """Change a linear layer whose outputs are parameters ``first``.. whitened by ``old`` so that it
    gives the same parameters whitened by ``new``."""
    rows = slice(first, first + layer.out_features)
    ratio = torch.as_tensor(old.std[rows] / new.std[rows], dtype=layer.weight.dtype)
    shift = torch.as_tensor((old.mean[rows] - new.mean[rows]) / new.std[rows], dtype=layer.weight.dtype)
    layer.weight.mul_(ratio.to(layer.weight.device)[:, None])
    layer.bias.copy_(layer.bias * ratio.to(layer.bias.device) + shift.to(layer.bias.device))


def mirror_points(points: np.ndarray, flip_order: np.ndarray) -> np.ndarray:
    """(N, 68, 2) crop points as they lie on the mirrored crops (partners swapped, x mirrored)."""
    mirrored = points[:, flip_order].copy()
    mirrored[..., 0] = MIRROR_X - mirrored[..., 0]
    return mirrored


def refitted_labels(
    labels: tuple[np.ndarray, np.ndarray],
    points: np.ndarray,
    param_std: np.ndarray,
    morphable: MorphableModel,
    strength: float,
    flip_order: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's parameters for every crop and its mirror, refitted to the human points."""
    plain = refit_to_points(labels[0], points, param_std, morphable, strength)
    mirrored = refit_to_points(labels[1], mirror_points(points, flip_order), param_std, morphable, strength)
    return plain, mirrored


def augment(
    batch: np.ndarray,
    data: FaceCrops,
    labels: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    config: PhotoTrainConfig,
    flip_order: np.ndarray,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Augmented normalised images (B, 3, 120, 120), target parameters (B, 62), human points (B, 68, 2)."""
    images = torch.from_numpy(data.crops[batch]).permute(0, 3, 1, 2).float()
    points = data.points[batch].copy()
    params = labels[0][batch].copy()
    flipped = rng.random(len(batch)) < config.flip
    if flipped.any():
        images[flipped] = images[flipped].flip(-1)
        params[flipped] = labels[1][batch[flipped]]
        points[flipped] = mirror_points(points[flipped], flip_order)
    a, b = random_similarity(rng, config, len(batch))
    images = warp_images(images, a, b)
    points = np.einsum("bij,bpj->bpi", a, points) + b[:, None]
    params = move_params(params, a, b)
    images = colour_jitter(images, rng, config.colour)
    return (images - 127.5) / 128.0, params.astype(np.float32), points.astype(np.float32)


def colour_jitter(images: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Random brightness, contrast and saturation, some grayscale, on (B, 3, H, W) images in 0..255."""
    n = len(images)
    shape = (n, 1, 1, 1)

    def factor() -> torch.Tensor:
        return torch.as_tensor(rng.uniform(1 - strength, 1 + strength, n), dtype=images.dtype).reshape(shape)

    gray = (images * images.new_tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    saturation = torch.where(torch.as_tensor(rng.random(n) < 0.1).reshape(shape), 0.0, factor())
    images = gray + (images - gray) * saturation
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * factor()
    return (images * factor()).clamp(0, 255)


class Networks(torch.nn.Module):
    """Everything trained together: the image network and the two point networks."""

    def __init__(self, width: float) -> None:
        super().__init__()
        self.image = SynergyNet(width)
        self.refiner = LandmarkRefiner(self.image.feature_dim)
        self.reverse = LandmarksToParams()

    def rewhiten(self, old: ParamWhitening, new: ParamWhitening, path: Path) -> None:
        """Keep every parameter output's meaning when the whitening changes from ``old`` (that of the
        checkpoint at ``path``) to ``new``. The refiner reads the whitened shape and expression codes,
        so those statistics must be the same: same data, same seed."""
        if not same_whitening(old, new, slice(N_CAMERA, None)):
            raise InputError("the run was trained on other faces; fine-tune with its data and --seed", path)
        heads = self.image.backbone.heads
        rewhiten_outputs(heads["camera"], 0, old, new)
        rewhiten_outputs(heads["shape"], N_CAMERA, old, new)
        rewhiten_outputs(heads["expression"], N_CAMERA + N_SHAPE, old, new)
        rewhiten_outputs(self.reverse.head[-1], 0, old, new)


def losses(
    nets: Networks,
    images: torch.Tensor,
    target_params: torch.Tensor,
    human: torch.Tensor,
    morphable: MorphableModel,
    whitening: ParamWhitening,
    landmark_whitening: LandmarkWhitening,
    human_weight: float,
) -> dict[str, torch.Tensor]:
    """The training losses of one batch (see the module docstring); ``total`` is their sum."""
    out = nets.image(images)
    predicted = out["params"].float()
    target_white = whitening.whiten(target_params)
    target_points = morphable.landmarks(target_params)
    points = morphable.landmarks(whitening.unwhiten(predicted))
    head_points = landmark_whitening.unwhiten(out["landmarks"].float())
    refined = nets.refiner(points, out["feature"].float(), predicted[:, N_CAMERA:])
    reverse = nets.reverse(refined)
    terms = {
        "params": 0.02 * (predicted - target_white).square().mean().sqrt(),
        "landmarks": 0.05 * wing_loss(points, target_points),
        "refined": 0.05 * wing_loss(refined, target_points),
        "reverse": 0.02 * (reverse - target_white).square().mean().sqrt()
        + 0.001 * (reverse - predicted).square().mean().sqrt(),
        "head": 0.05 * wing_loss(head_points, target_points),
        "human": human_weight
        * (wing_loss(to_y_down(points), human) + wing_loss(to_y_down(head_points), human)),
    }
    terms["total"] = sum(terms.values())
    return terms


def face_nme_percent(predicted: np.ndarray, target: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Each face's mean point error (finite targets only) over ``size``, in percent; NaN for a face
    with no labelled point."""
    error = np.linalg.norm(predicted - target, axis=-1)
    keep = np.isfinite(error)
    per_face = 100 * np.where(keep, error, 0).sum(1) / np.maximum(keep.sum(1), 1) / size
    return np.where(keep.any(1), per_face, np.nan)


def nme_percent(predicted: np.ndarray, target: np.ndarray, size: np.ndarray) -> float:
    """Mean over faces of the mean point error (finite targets only) over ``size``, in percent."""
    return float(np.nanmean(face_nme_percent(predicted, target, size)))


def align_human_points(
    data: FaceCrops, params: np.ndarray, teacher_points: np.ndarray, fit_side: np.ndarray
) -> tuple[FaceCrops, dict[str, np.ndarray]]:
    """``data`` with every dataset's human points in the teacher's convention, and the offsets per
    dataset, fitted on the faces ``fit_side`` indexes (the training side only)."""
    points = data.points.copy()
    offsets = {}
    for source in np.unique(data.source):
        fit = fit_side[data.source[fit_side] == source]
        offsets[str(source)] = fit_convention_offsets(data.points[fit], teacher_points[fit], params[fit])
        members = data.source == source
        points[members] = to_teacher_convention(data.points[members], params[members], offsets[str(source)])
    return replace(data, points=points), offsets


@torch.inference_mode()
def crop_landmarks(
    network: SynergyNet,
    crops: np.ndarray,
    morphable: MorphableModel,
    whitening: ParamWhitening,
    landmark_whitening: LandmarkWhitening,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 68, 2) y-down crop-frame landmarks of (N, 120, 120, 3) crops: decoded from the parameters
    with ``morphable``, and from the landmark head (``network`` as it is: put it in eval mode first)."""
    decoded, head = [], []
    for first in range(0, len(crops), 256):
        images = torch.from_numpy(crops[first : first + 256]).permute(0, 3, 1, 2).float().to(device)
        out = network((images - 127.5) / 128.0)
        decoded.append(to_y_down(morphable.landmarks(whitening.unwhiten(out["params"]))).cpu().numpy())
        head.append(to_y_down(landmark_whitening.unwhiten(out["landmarks"])).cpu().numpy())
    return np.concatenate(decoded), np.concatenate(head)


@torch.inference_mode()
def validate(
    nets: Networks,
    data: FaceCrops,
    teacher_points: np.ndarray,
    morphable: MorphableModel,
    whitening: ParamWhitening,
    landmark_whitening: LandmarkWhitening,
    device: torch.device,
    as_labelled: np.ndarray | None = None,
    refitted: np.ndarray | None = None,
) -> dict[str, float]:
    """NME (percent of the teacher's box) of the decoded and the head landmarks against the human
    labels and against the teacher, on unaugmented validation crops; with ``as_labelled`` (the human
    points before a change of convention), also against those, and with ``refitted`` (the teacher's
    fits refitted to the human points, all 68), against those."""
    nets.eval()
    decoded, head = crop_landmarks(nets.image, data.crops, morphable, whitening, landmark_whitening, device)
    nets.train()
    size = landmark_box_size(teacher_points)
    figures = {
        "nme_human": nme_percent(decoded, data.points, size),
        "nme_human_head": nme_percent(head, data.points, size),
        "nme_teacher": nme_percent(decoded, teacher_points, size),
        "nme_teacher_head": nme_percent(head, teacher_points, size),
    }
    if as_labelled is not None:
        figures["nme_human_as_labelled"] = nme_percent(decoded, as_labelled, size)
    if refitted is not None:
        figures["nme_refitted"] = nme_percent(decoded, refitted, size)
    return figures


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """The learning rate's factor at ``step`` of ``total``: a linear warm-up, then a cosine to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _stored_whitening(state: dict) -> ParamWhitening | None:
    """The whitening a ``last.pt`` was trained with (None for checkpoints from before it was stored)."""
    if "param_mean" not in state:
        return None
    return ParamWhitening(state["param_mean"].cpu().numpy(), state["param_std"].cpu().numpy())


def _load_nets(
    nets: Networks, path: Path, device: torch.device, landmark_whitening: LandmarkWhitening
) -> ParamWhitening | None:
    """Every network's weights from a run's ``last.pt`` (a user file: tensors only, checked), and the
    whitening they were trained with (None for checkpoints from before it was stored). A weights file
    (``.safetensors``: a run's ``best.safetensors`` or the shipped one) holds the image network only:
    the refiner and the reverse network then start afresh."""
    if path.suffix == ".safetensors":
        regressor = load_synergynet(path, None)
        if not same_whitening(regressor.landmark_whitening, landmark_whitening):
            raise InputError(
                "the weights were trained on other faces; fine-tune with their data and --seed", path
            )
        try:
            nets.image.load_state_dict(regressor.network.state_dict())
        except RuntimeError as exc:
            raise InputError(f"weights of another width ({str(exc).splitlines()[0]})", path) from None
        return regressor.whitening
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        nets.load_state_dict(state["nets"])
    except (OSError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as exc:
        raise InputError(f"not a checkpoint of this network ({str(exc).splitlines()[0]})", path) from exc
    return _stored_whitening(state)


@dataclass
class Targets:
    """What a run learns from and is validated against: the data (human points possibly moved into the
    teacher's convention), the teacher's labels, the split, the whitenings and the reference figures."""

    data: FaceCrops
    labels: tuple[np.ndarray, np.ndarray]
    train_idx: np.ndarray
    val_idx: np.ndarray
    whitening: ParamWhitening
    plain_whitening: ParamWhitening
    landmark_whitening: LandmarkWhitening
    val_teacher: np.ndarray
    val_data: FaceCrops
    as_labelled: np.ndarray | None
    val_refitted: np.ndarray | None
    reference: dict
    flip_order: np.ndarray


def prepare_targets(
    data: FaceCrops,
    teacher: CropRegressor,
    morphable: MorphableModel,
    out: Path,
    config: PhotoTrainConfig,
    seed: int,
    dev: torch.device,
    progress: bool,
) -> Targets:
    """Label the faces with the teacher (cached in ``out``), split them, and measure the whitenings and
    the teacher's own validation figures."""
    labels = cached_teacher_labels(teacher, data, out / "teacher-labels.npz", progress)
    train_idx, val_idx = split_by_group(data.groups, config.val_fraction, seed)
    plain_whitening = target_whitening(labels, train_idx, replace(config, whitening="plain"), seed)
    whitening = target_whitening(labels, train_idx, config, seed)
    with torch.inference_mode():
        teacher_points = morphable.landmarks(torch.as_tensor(labels[0], device=dev)).cpu().numpy()
    flat = teacher_points[train_idx].reshape(len(train_idx), -1)
    landmark_whitening = LandmarkWhitening(flat.mean(0), np.maximum(flat.std(0), MIN_STD))
    teacher_2d = to_y_down(torch.from_numpy(teacher_points)).numpy()
    val_teacher = teacher_2d[val_idx]
    val_size = landmark_box_size(val_teacher)
    as_labelled = None
    reference: dict = {"human_convention": config.human_convention}
    if config.human_convention == "teacher":
        as_labelled = data.points[val_idx]
        reference["teacher_nme_human_as_labelled"] = nme_percent(val_teacher, as_labelled, val_size)
        data, offsets = align_human_points(data, labels[0], teacher_2d, train_idx)
        reference["convention_offsets"] = {name: value.round(6).tolist() for name, value in offsets.items()}
    val_data = data.subset(val_idx)
    reference["teacher_nme_human"] = nme_percent(val_teacher, val_data.points, val_size)
    flip_order = np.array(get_scheme("ibug68").flip_order)
    val_refitted = None
    if config.targets == "refitted":
        strength = config.refit_strength
        labels = refitted_labels(labels, data.points, plain_whitening.std, morphable, strength, flip_order)
        with torch.inference_mode():
            refitted_points = morphable.landmarks(torch.as_tensor(labels[0][val_idx], device=dev))
        val_refitted = to_y_down(refitted_points).cpu().numpy()
        reference["refitted_nme_human"] = nme_percent(val_refitted, val_data.points, val_size)
    return Targets(
        data, labels, train_idx, val_idx, whitening, plain_whitening, landmark_whitening, val_teacher,
        val_data, as_labelled, val_refitted, reference, flip_order,
    )  # fmt: skip


def _optimiser(nets: Networks, config: PhotoTrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            nets.parameters(), config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True
        )
    return torch.optim.AdamW(nets.parameters(), config.lr, weight_decay=config.weight_decay)


SCORE = "nme_human"


def train_synergynet(
    data: FaceCrops,
    teacher: CropRegressor,
    morphable: MorphableModel,
    out: str | Path,
    config: PhotoTrainConfig,
    seed: int = 0,
    resume: bool = False,
    max_minutes: float | None = None,
    device: str | None = None,
    progress: bool = True,
    init: Path | None = None,
) -> TrainResult:
    """Train on ``data`` (``facegraph.training.loop``); write ``best.safetensors`` (by validation NME
    against human labels), ``last.pt`` (to resume) and ``history.json`` into ``out``.

    ``init`` (another run's ``last.pt``, or weights such as the shipped ones) starts the networks from
    those weights with a fresh optimiser and schedule: fine-tuning. Keep that run's data and seed, or
    its training faces leak into this run's validation split."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(seed)
    morphable = morphable.to(dev)
    targets = prepare_targets(data, teacher, morphable, out, config, seed, dev, progress)
    nets = Networks(config.width).to(dev).to(memory_format=torch.channels_last)

    def score() -> dict[str, float]:
        """The validation figures of the networks as they are now."""
        reference_points = (
            targets.val_teacher,
            morphable,
            targets.whitening,
            targets.landmark_whitening,
            dev,
        )
        return validate(nets, targets.val_data, *reference_points, targets.as_labelled, targets.val_refitted)

    if init is not None:
        loaded = _load_nets(nets, init, dev, targets.landmark_whitening)
        nets.rewhiten(loaded or targets.plain_whitening, targets.whitening, init)
        targets.reference["init_figures"] = score()  # what fine-tuning has to beat, on the same split
    optimiser = _optimiser(nets, config)
    run = _resume(nets, optimiser, out, config, dev, targets) if resume else RunState()
    split = {
        "config": config.to_dict(),
        "seed": seed,
        "n_train": len(targets.train_idx),
        "n_val": len(targets.val_idx),
    }

    def checkpoint() -> dict:
        stats = {f"param_{k}": torch.from_numpy(getattr(targets.whitening, k)) for k in ("mean", "std")}
        return {
            "nets": nets.state_dict(),
            "optimiser": optimiser.state_dict(),
            **stats,
            "config": json.dumps(config.to_dict()),
        }

    trainer = Trainer(
        train_epoch=_epoch_trainer(nets, optimiser, targets, morphable, config, seed, dev, progress),
        validate=score,
        score=SCORE,
        save_best=lambda record: save_synergynet(
            out / BEST,
            nets.image,
            targets.whitening,
            targets.landmark_whitening,
            config.width,
            {**split, **targets.reference, **record},
        ),  # fmt: skip
        checkpoint=checkpoint,
        describe=lambda record: _describe(record, targets.reference) if progress else "",
    )
    header = {"config": config.to_dict(), "reference": targets.reference}
    return run_epochs(trainer, out, config.epochs, run, header, max_minutes)


def _resume(
    nets: Networks, optimiser: torch.optim.Optimizer, out: Path, config: PhotoTrainConfig, dev: torch.device,
    targets: Targets,
) -> RunState:  # fmt: skip
    """Continue from the run's ``last.pt`` when it has one (trained with the same whitening)."""
    state = load_checkpoint(out, config.to_dict(), dev, older={"whitening": "plain"})
    if state is None:
        return RunState()
    if not same_whitening(_stored_whitening(state) or targets.plain_whitening, targets.whitening):
        raise InputError("the run was trained with other whitening; resume it as it was", out / CHECKPOINT)
    nets.load_state_dict(state["nets"])
    optimiser.load_state_dict(state["optimiser"])
    return resumed_state(state, out, SCORE)


def _describe(record: dict, reference: dict) -> str:
    return (
        f"epoch {record['epoch']}: val NME vs human {record['nme_human']:.3f} "
        f"(head {record['nme_human_head']:.3f}; "
        f"teacher {reference['teacher_nme_human']:.3f}), vs teacher {record['nme_teacher']:.3f}"
    )


def _epoch_trainer(
    nets: Networks,
    optimiser: torch.optim.Optimizer,
    targets: Targets,
    morphable: MorphableModel,
    config: PhotoTrainConfig,
    seed: int,
    dev: torch.device,
    progress: bool,
):
    """One epoch of training, returning its mean losses."""
    steps_per_epoch = len(targets.train_idx) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    autocast = dev.type == "cuda" or (config.bf16_on_cpu and cpu_has_bfloat16())
    whitenings = (targets.whitening, targets.landmark_whitening)

    def train_epoch(epoch: int) -> dict:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(targets.train_idx)
        sums: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress)
        for i in bar:
            for group in optimiser.param_groups:
                group["lr"] = config.lr * warmup_cosine(epoch * steps_per_epoch + i, total_steps, warmup)
            batch = order[i * config.batch_size : (i + 1) * config.batch_size]
            images, params, human = augment(
                batch, targets.data, targets.labels, rng, config, targets.flip_order
            )
            images = images.to(dev).contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
                terms = losses(
                    nets, images, torch.as_tensor(params, device=dev), torch.as_tensor(human, device=dev),
                    morphable, *whitenings, config.human_weight,
                )  # fmt: skip
            optimiser.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(nets.parameters(), 10.0)
            optimiser.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            bar.set_postfix(loss=f"{sums['total'] / (i + 1):.3f}")
        return {f"loss_{k}": v / steps_per_epoch for k, v in sums.items()}

    return train_epoch
