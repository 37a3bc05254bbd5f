"""Mesh landmarker selection measures: candidate weights against the shipped ones, never on a test set.

The model card's choices between training runs were made on these sets (the 100 further SFM faces
since the sixth run), each drawn with a seed that neither the training nor the test sets of
``benchmarks/mesh.py`` use:

- 60 held-out synthetic BFM scans (seed 31337): 30 without and 30 with head context;
- Surrey Face Model calibration faces: 20 neutral, 30 with expressions (the calibration seeds of
  ``benchmarks/mesh.py``) and 100 more neutral ones (seed 20261124), to tell a real difference from the
  noise of 20 faces.

The SFM faces are measured with ``--offsets spiga`` (where the goal is measured) and without. The spiga
offsets are measured from each weights file's own canonical face, so for every candidate they are made
anew (``facegraph fit mesh-offsets --mean-face``); the shipped weights use their shipped file.

    .venv/bin/python benchmarks/mesh_selection.py --bfm BFM [--candidate W ...] \
        [--shared ../shared/data] [--work /tmp/facegraph-mesh-selection]

Writes the ``mesh-selection`` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from common import RESULTS, machine, write_section
from facegraph.mesh.landmarker import DEFAULT_REFINE, bundled_weights
from mesh import (
    CALIBRATION_SCANS,
    CALIBRATION_SEED,
    EXPRESSION_SCANS,
    EXPRESSION_SEED,
    SEED,
    add_data_arguments,
    commands_block,
    evaluate,
    facegraph,
    parse_data_arguments,
    sfm_set,
    synthetic_set,
)

SECTION = "mesh-selection"
HELD_OUT_SEED = 31337
HELD_OUT_SCANS = 30  # per set
MORE_CALIBRATION_SCANS = 100
MORE_CALIBRATION_SEED = SEED + 3


def spiga_offsets(shared: Path, weights: Path, out: Path) -> tuple[str, list[str]]:
    """Make the spiga offsets for a candidate's canonical face; the command and the arguments to use."""
    mean_face = shared / "spiga-annotations" / "models3D" / "mean_face_3D_68.txt"
    args = ["fit", "mesh-offsets", "--mean-face", str(mean_face), "--weights", str(weights)]
    return facegraph([*args, "--out", str(out), "--quiet"]), ["--offsets", str(out)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, "/tmp/facegraph-mesh-selection")
    parser.add_argument("--candidate", action="append", default=[], help="weights to compare (repeatable)")
    args, shared, work = parse_data_arguments(parser)
    held_out = {
        f"{HELD_OUT_SCANS} held-out BFM scans": synthetic_set(
            work / "held-out", args.bfm, 0.0, HELD_OUT_SEED, HELD_OUT_SCANS
        ),
        f"{HELD_OUT_SCANS} held-out BFM scans with head context": synthetic_set(
            work / "held-out-context", args.bfm, 1.0, HELD_OUT_SEED, HELD_OUT_SCANS
        ),
    }
    calibration = {
        f"{CALIBRATION_SCANS} neutral SFM faces": sfm_set(
            work / "sfm-calibration", shared, CALIBRATION_SEED, CALIBRATION_SCANS
        ),
        f"{EXPRESSION_SCANS} SFM faces with expressions": sfm_set(
            work / "sfm-calibration-expressions", shared, EXPRESSION_SEED, EXPRESSION_SCANS, expressions=True
        ),
        f"{MORE_CALIBRATION_SCANS} more neutral SFM faces": sfm_set(
            work / "sfm-calibration-more", shared, MORE_CALIBRATION_SEED, MORE_CALIBRATION_SCANS
        ),
    }
    models = {"shipped": bundled_weights(), **{f"`{c}`": Path(c) for c in args.candidate}}
    rows = [
        *((name, folder, None) for name, folder in held_out.items()),
        *((f"{name}, `spiga`", folder, "spiga") for name, folder in calibration.items()),
        *((f"{name}, no offsets", folder, None) for name, folder in calibration.items()),
    ]
    figures: dict[str, list[str]] = {row[0]: [] for row in rows}
    commands = []
    for index, (name, weights) in enumerate(models.items()):
        spiga = ["--offsets", "spiga"]
        if name != "shipped":
            command, spiga = spiga_offsets(shared, weights, work / f"spiga-{index}.json")
            commands.append(command)
        for row_name, folder, convention in rows:
            tag = f"selection-{index}-{folder.name}-{convention or 'none'}"
            command, report = evaluate(folder, weights, DEFAULT_REFINE, tag, spiga if convention else None)
            commands.append(command)
            figures[row_name].append(f"{report['mean_mm_51']:.3f}")
    lines = [
        "## Mesh landmarker: selection measures (not test sets)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "Command: `.venv/bin/python benchmarks/mesh_selection.py --bfm BFM [--candidate W ...]`.",
        "",
        f"Inner-51 error (mm, `{DEFAULT_REFINE}`) on the sets that the model card's choices between training"
        " runs were made on (the 100 more neutral faces since the sixth run); the SFM faces with"
        " `--offsets spiga` (offsets made for each candidate's own"
        " canonical face) and without offsets.",
        "",
        "| set | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
        *(f"| {row} | " + " | ".join(values) + " |" for row, values in figures.items()),
    ]
    lines += commands_block(commands)
    write_section(SECTION, "\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
