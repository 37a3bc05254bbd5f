"""Record the shipped weights' regression-guard figures: small fixed sets that a regression must move.

Measures the photo model (`synergynet.safetensors`, the shipped default without a BFM) on the first
50 faces of AFLW2000-3D (NME over all of them against the original ground truth, and mean pose MAE),
and the mesh landmarker (`facegraph-mesh.safetensors`, default refinement) on menpo3d's james and on
10 seeded Surrey Face Model faces (mean error in mm over the 68 and the inner 51 points). Writes them

- into the ``regression-guards`` section of benchmarks/RESULTS.md (date, machine, command),
- into a "Regression guard" paragraph of each model card (after its figures),
- and, with the weights' SHA-256 and the sets' definition, into tests/regression_guards.json, the copy
  `tests/test_regression_guards.py` checks against (within 5 %); never edit that file by hand.

The measuring functions are the test module's own, so both measure the same way.

    .venv/bin/python benchmarks/regression_guards.py [--shared ../shared/data]

Re-run it when the weights change on purpose (the test then fails on the SHA-256 until it is).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
from pathlib import Path

from common import HERE, machine, write_section

sys.path.insert(0, str(HERE.parent))  # the repository root, for tests/

from facegraph.morphable.bfm import BFM_ENV  # noqa: E402
from tests.conftest import SHARED_DATA  # noqa: E402
from tests.test_regression_guards import (  # noqa: E402
    PHOTO_FACES,
    RECORD,
    SFM_SCANS,
    SFM_SEED,
    TOLERANCE,
    james_scans,
    mesh_figures,
    mesh_weights,
    photo_figures,
    photo_weights,
    set_definitions,
    sfm_scans,
    sha256,
)

SECTION = "regression-guards"
CARD_START, CARD_END = "<!-- regression-guard:start -->", "<!-- regression-guard:end -->"


def card_paragraph(card: Path, paragraph: str) -> None:
    """Replace the card's guard paragraph, or put it at the end of its "## Figures" section."""
    text = card.read_text()
    block = f"{CARD_START}\n{paragraph.strip()}\n{CARD_END}"
    if CARD_START in text:
        text = text[: text.index(CARD_START)] + block + text[text.index(CARD_END) + len(CARD_END) :]
    else:
        figures = text.index("\n## Figures")
        following = text.find("\n## ", figures + 1)
        following = len(text) if following < 0 else following + 1
        text = text[:following].rstrip("\n") + "\n\n" + block + "\n\n" + text[following:].lstrip("\n")
    card.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=SHARED_DATA, help="../shared/data")
    args = parser.parse_args()
    os.environ.pop(BFM_ENV, None)  # the shipped default: no BFM, landmarks from the landmark head

    photo = photo_figures(args.shared / "aflw2000-3d")
    james = mesh_figures(james_scans())
    sfm = mesh_figures(sfm_scans(args.shared / "sfm"))
    date = datetime.date.today().isoformat()
    command = shlex.join([".venv/bin/python", "benchmarks/regression_guards.py", *sys.argv[1:]])
    photo_sha, mesh_sha = sha256(photo_weights()), sha256(mesh_weights())

    record = {
        "written_by": "benchmarks/regression_guards.py; do not edit by hand",
        "date": date,
        "machine": machine(),
        "command": command,
        "sets": set_definitions(),
        "photo": {
            "weights": photo_weights().name,
            "sha256": photo_sha,
            "figures": {k: round(v, 6) for k, v in photo.items()},
        },
        "mesh": {
            "weights": mesh_weights().name,
            "sha256": mesh_sha,
            "figures": {
                "james": {k: round(v, 6) for k, v in james.items()},
                "sfm": {k: round(v, 6) for k, v in sfm.items()},
            },
        },
    }
    RECORD.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")

    write_section(
        SECTION,
        "\n".join(
            [
                "## Regression guards for the shipped weights",
                "",
                f"Measured {date} on {machine()}.",
                "",
                "Small fixed sets that `tests/test_regression_guards.py` re-measures on every run, "
                f"failing when a figure moves by more than {TOLERANCE * 100:.0f} % or a weights file's "
                "SHA-256 changes (the test's copy: `tests/regression_guards.json`).",
                "",
                "| model | set | figure | value |",
                "|---|---|---|---|",
                f"| `synergynet` (no BFM: landmark head) | AFLW2000-3D, first {PHOTO_FACES} faces "
                f"| NME %, all, original ground truth | {photo['nme_all']:.3f} |",
                f"| | | pose MAE, mean of yaw, pitch, roll (°) | {photo['pose_mae_mean']:.3f} |",
                f"| `facegraph-mesh` (default refinement) | menpo3d james | mean mm, 68 points "
                f"| {james['mean_mm']:.3f} |",
                f"| | | mean mm, inner 51 | {james['mean_mm_51']:.3f} |",
                f"| | {SFM_SCANS} Surrey Face Model faces, seed {SFM_SEED} | mean mm, 68 points "
                f"(50 defined) | {sfm['mean_mm']:.3f} |",
                f"| | | mean mm, inner 51 (49 defined) | {sfm['mean_mm_51']:.3f} |",
                "",
                f"Weights: `synergynet.safetensors` {photo_sha[:12]}…, "
                f"`facegraph-mesh.safetensors` {mesh_sha[:12]}… (SHA-256).",
                "",
                f"Command: `{command}`",
            ]
        ),
    )

    weights = HERE.parent / "src" / "facegraph" / "data" / "weights"
    guard = f"(`tests/test_regression_guards.py`, recorded {date} by `benchmarks/regression_guards.py`)"
    fails = (
        f"The test fails when a figure moves by more than {TOLERANCE * 100:.0f} % or the weights' SHA-256 "
        "changes; re-record with the script when new weights are shipped on purpose."
    )
    card_paragraph(
        weights / "synergynet.md",
        f"**Regression guard** {guard}: on the first {PHOTO_FACES} faces of AFLW2000-3D (3DDFA "
        "protocol, no BFM, so from the landmark head), NME "
        f"{photo['nme_all']:.3f} % over all of them against the original ground truth and pose MAE "
        f"{photo['pose_mae_mean']:.3f}° (mean of yaw, pitch and roll): a guard on a few faces, not a "
        f"figure to compare with the whole benchmark's. {fails}",
    )
    card_paragraph(
        weights / "facegraph-mesh.md",
        f"**Regression guard** {guard}: with the default refinement and no offsets, menpo3d james "
        f"{james['mean_mm']:.2f} mm over the 68 points and {james['mean_mm_51']:.2f} mm over the inner 51; "
        f"{SFM_SCANS} Surrey Face Model faces (seed {SFM_SEED}, posed as set (b)) {sfm['mean_mm']:.2f} mm "
        f"over their 50 defined points and {sfm['mean_mm_51']:.2f} mm over the 49 inner ones. {fails}",
    )
    print(json.dumps(record["photo"]["figures"]), json.dumps(record["mesh"]["figures"]))


if __name__ == "__main__":
    main()
