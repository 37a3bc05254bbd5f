"""How strongly ``train synergynet --targets refitted`` holds the teacher's fits: the prior's strength.

On 300-W's training faces (68 human points each), the teacher's (3DDFA_V2 x0.5) parameters are refitted
to the 14 points AFLW also labels, as the trainer refits AFLW faces, and scored on the 38 other inner
points, which the fit never saw (NME in percent of the teacher's 68-point box; the jaw is left out:
300-W annotates the silhouette). The parameters' spread is taken over aflw-train and 300-W together,
as the trainer's whitening does. Writes the ``refit-strength`` section of benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/refit_strength.py [--shared ../shared/data]
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
from facegraph.datasets.face_crops import load_aflw_train, load_faces68_crops, to_y_down
from facegraph.image.crop_regressor import regress_params
from facegraph.metrics.landmarks import landmark_box_size
from facegraph.registry import load_model
from facegraph.schemes import AFLW21_IBUG68_PAIRS
from facegraph.training.refit import DEFAULT_STRENGTH, refit_to_points

SECTION = "refit-strength"
AFLW_IBUG = sorted(ibug for _, ibug in AFLW21_IBUG68_PAIRS)  # the 14 iBUG points AFLW also labels
HELD_OUT = [i for i in range(17, 68) if i not in AFLW_IBUG]
STRENGTHS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    args = parser.parse_args()
    shared = Path(args.shared)
    teacher = load_model("3ddfa-v2-mb05", weights=shared / "3ddfa-v2")
    faces = load_faces68_crops(shared / "300w-train")
    params = regress_params(teacher, faces.crops, progress=True)
    aflw = load_aflw_train(shared / "aflw-train")
    spread = np.concatenate([params, regress_params(teacher, aflw.crops, progress=True)])
    param_std = np.maximum(spread.std(0), 1e-6)
    seen = np.full_like(faces.points, np.nan)
    seen[:, AFLW_IBUG] = faces.points[:, AFLW_IBUG]

    def decode(fits: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return to_y_down(teacher.morphable.landmarks(torch.as_tensor(fits))).numpy()

    size = landmark_box_size(decode(params))

    def nme(fits: np.ndarray, which: list[int]) -> float:
        error = np.linalg.norm(decode(fits)[:, which] - faces.points[:, which], axis=-1)
        return float(100 * (error.mean(1) / size).mean())

    rows = [("the teacher's fits", nme(params, AFLW_IBUG), nme(params, HELD_OUT))]
    for strength in STRENGTHS:
        fits = refit_to_points(params, seen, param_std, teacher.morphable, strength)
        rows.append((f"refitted, strength {strength:g}", nme(fits, AFLW_IBUG), nme(fits, HELD_OUT)))
        print(rows[-1], flush=True)
    best = min(rows[1:], key=lambda row: row[2])
    lines = [
        "## Refitted targets: the prior's strength (`train synergynet --targets refitted`)",
        "",
        f"Measured {datetime.date.today()} on {machine()}.",
        "",
        f"300-W training faces ({len(faces)}): the teacher's fits refitted to the 14 points AFLW also labels,"
        " scored on those and on the 38 other inner points (NME % of the teacher's box).",
        "",
        "| fits | 14 fitted points | 38 other inner points |",
        "|---|---|---|",
        *[f"| {name} | {fitted:.3f} | {held:.3f} |" for name, fitted, held in rows],
        "",
        f"Best on the other points: {best[0]} (the trainer's default: {DEFAULT_STRENGTH:g}).",
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'benchmarks/refit_strength.py', *sys.argv[1:]])}`",
    ]
    write_section(SECTION, "\n".join(lines))


if __name__ == "__main__":
    main()
