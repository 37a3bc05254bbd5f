"""Is a SynergyNet candidate better than the weights it would replace? A paired test on the validation split.

``train synergynet`` holds out 5 % of the training photos (by photo, from its ``--seed``) and chooses
checkpoints on them; this script scores two weights files on exactly those faces against the human
labels (NME in percent of the teacher's 68-point box, as the trainer reports it), for the landmarks
decoded with the 3DMM and for the landmark head, and gives the mean per-face difference with a 95 %
interval from a bootstrap over photos (a photo's faces stay together). AFLW2000-3D is not touched: it
is for the final report. Writes the ``synergynet-validation`` section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/synergynet_validation.py CANDIDATE [--baseline FILE] [--seed 1]
        [--mirror-average]

``--mirror-average`` scores the candidate with test-time mirroring (each crop's landmarks averaged with
those of its mirror image, mirrored back, as ``--mirror-average`` does in the CLI) and writes its own
section, ``synergynet-validation-mirror``.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from common import HERE, machine, write_section
from facegraph.datasets.face_crops import (
    concatenate,
    load_aflw_train,
    load_faces68_crops,
    split_by_group,
    to_y_down,
)
from facegraph.image.crop_regressor import regress_params
from facegraph.image.synergynet import bundled_weights, load_synergynet
from facegraph.metrics.landmarks import landmark_box_size
from facegraph.registry import load_model
from facegraph.schemes import get_scheme
from facegraph.training.synergynet import crop_landmarks, face_nme_percent, get_config, mirror_points

SECTION = "synergynet-validation"
RESAMPLES = 10_000


def paired_interval(difference: np.ndarray, groups: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of per-face ``difference``, resampling whole groups."""
    names, inverse = np.unique(groups, return_inverse=True)
    sums = np.bincount(inverse, weights=difference, minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names))
    draws = np.random.default_rng(seed).integers(0, len(names), (RESAMPLES, len(names)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", help="a weights file, e.g. runs/NAME/best.safetensors")
    parser.add_argument("--baseline", help="the weights it would replace (default: the shipped ones)")
    parser.add_argument("--seed", type=int, default=1, help="the training runs' --seed (their split)")
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument(
        "--mirror-average", action="store_true", help="score the candidate with test-time mirroring"
    )
    args = parser.parse_args()
    shared = Path(args.shared)
    candidate = Path(args.candidate)
    baseline = Path(args.baseline) if args.baseline else bundled_weights()
    aflw = load_aflw_train(shared / "aflw-train", progress=False)
    parts = [aflw, load_faces68_crops(shared / "300w-train", progress=False)]
    data = concatenate(parts)
    _, val_idx = split_by_group(data.groups, get_config("facegraph-photo").val_fraction, args.seed)
    val = data.subset(val_idx)
    teacher = load_model("3ddfa-v2-mb05", weights=shared / "3ddfa-v2")
    morphable = teacher.morphable
    with torch.inference_mode():
        params = torch.as_tensor(regress_params(teacher, val.crops, progress=False))
        size = landmark_box_size(to_y_down(morphable.landmarks(params)).numpy())
    scores = {}
    for name, weights in (("baseline", baseline), ("candidate", candidate)):
        model = load_synergynet(weights, morphable)
        networks = (model.network, val.crops, morphable, model.whitening, model.landmark_whitening)
        landmarks = dict(
            zip(("decoded", "head"), crop_landmarks(*networks, torch.device("cpu")), strict=True)
        )
        if name == "candidate" and args.mirror_average:
            mirrored = crop_landmarks(
                model.network, val.crops[:, :, ::-1].copy(), *networks[2:], torch.device("cpu")
            )
            flip_order = np.asarray(get_scheme("ibug68").flip_order)
            for kind, points in zip(("decoded", "head"), mirrored, strict=True):
                landmarks[kind] = (landmarks[kind] + mirror_points(points, flip_order)) / 2
        scores[name] = {kind: face_nme_percent(p, val.points, size) for kind, p in landmarks.items()}
    labelled = np.isfinite(scores["baseline"]["decoded"])
    rows = []
    for kind in ("decoded", "head"):
        before, after = scores["baseline"][kind][labelled], scores["candidate"][kind][labelled]
        low, high = paired_interval(after - before, val.groups[labelled])
        verdict = "better" if high < 0 else "worse" if low > 0 else "no clear difference"
        rows.append(
            f"| {kind} | {before.mean():.3f} | {after.mean():.3f} | {(after - before).mean():+.3f} "
            f"| [{low:+.3f}, {high:+.3f}] | {(after < before).mean():.1%} | {verdict} |"
        )
        print(rows[-1])
    command = shlex.join([".venv/bin/python", "benchmarks/synergynet_validation.py", *sys.argv[1:]])
    mirror = " with test-time mirroring (`--mirror-average`)" if args.mirror_average else ""
    lines = [
        f"## SynergyNet candidates on the validation split (paired){mirror}",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        f"Baseline `{baseline.name if args.baseline is None else baseline}` (when not named: the weights "
        "shipped when this was measured), "
        f"candidate `{candidate}`: {int(labelled.sum())} validation faces of "
        f"{len(np.unique(val.groups))} photos (seed {args.seed}), NME % of the teacher's box against "
        f"the human labels; interval: 95 % bootstrap over photos, {RESAMPLES:,} resamples.",
        "",
        "| landmarks | baseline | candidate | difference | 95 % interval | faces better | verdict |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Command: `{command}`",
    ]
    write_section(f"{SECTION}-mirror" if args.mirror_average else SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
