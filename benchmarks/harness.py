"""Reproduce the peer 3DDFA_V2 x0.5 with facegraph's evaluation harness and record the figures.

Runs the CLI exactly as a user would, on ../shared/data (or --shared DIR), and rewrites the harness
section of benchmarks/RESULTS.md with the date, the machine and the commands.

    .venv/bin/python benchmarks/harness.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from common import HERE, OUT, RESULTS, machine, write_section

SECTION = "harness"
# 3DDFA_V2 x0.5 on AFLW2000-3D (original ground truth), as measured by an independent implementation.
REFERENCE = {"0-30": 2.940, "30-60": 3.851, "60-90": 4.873, "mean": 3.888}


def run(args: list[str], name: str) -> tuple[str, dict]:
    """Run ``facegraph`` with ``args`` plus --json/--plot into results/, return (command, report)."""
    OUT.mkdir(exist_ok=True)
    json_path, plot_path = OUT / f"{name}.json", OUT / f"{name}.png"
    command = [
        "facegraph",
        *args,
        "--json",
        str(json_path.relative_to(HERE.parent)),
        "--plot",
        str(plot_path.relative_to(HERE.parent)),
        "--quiet",
        "--overwrite",  # results/ is this script's: files from before outputs carried facegraph's mark
    ]
    executable = Path(sys.executable).parent / "facegraph"
    subprocess.run([str(executable), *command[1:]], check=True, cwd=HERE.parent)
    return shlex.join(command), json.loads(json_path.read_text())


def aflw_rows(report: dict) -> list[str]:
    rows = []
    for key, label in (("nme", "original"), ("nme_reannotated", "re-annotated")):
        if report[key] is not None:
            r = report[key]
            rows.append(
                f"| {label} | {r['0-30']:.3f} | {r['30-60']:.3f} | {r['60-90']:.3f} | "
                f"**{r['mean']:.3f}** | {r['all']:.3f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    shared = Path(parser.parse_args().shared)
    rel = os.path.relpath(shared, HERE.parent)
    peer = ["--model", "3ddfa-v2-mb05", "--weights", f"{rel}/3ddfa-v2"]

    cmd_protocol, protocol = run(
        ["eval", "aflw2000-3d", "--data", f"{rel}/aflw2000-3d", *peer], "aflw2000-3d_3ddfa-v2-mb05"
    )
    cmd_original, original = run(
        ["eval", "aflw2000-3d", "--data", f"{rel}/aflw2000-3d/images", *peer],
        "aflw2000-3d-originals_3ddfa-v2-mb05",
    )
    cmd_300w, w300 = run(["eval", "300w", "--data", f"{rel}/300w-train", *peer], "300w-train_3ddfa-v2-mb05")
    cmd_300w_det, w300_det = run(
        ["eval", "300w", "--data", f"{rel}/300w-train", "--boxes", "detector", *peer],
        "300w-train-detector_3ddfa-v2-mb05",
    )

    pose = protocol["pose_mae"]
    deltas = ", ".join(f"{k} {protocol['nme'][k] - v:+.3f}" for k, v in REFERENCE.items())
    lines = [
        "## Evaluation harness: the peer 3DDFA_V2 (MobileNetV1 x0.5) reproduced",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        "### AFLW2000-3D, 3DDFA protocol (2,000 faces; NME % by |yaw| bin, ground-truth box normalised)",
        "",
        "| ground truth | [0, 30] | (30, 60] | (60, 90] | mean of bins | all faces |",
        "|---|---|---|---|---|---|",
        *aflw_rows(protocol),
        f"| reference (independent implementation) | {REFERENCE['0-30']:.3f} | {REFERENCE['30-60']:.3f} | "
        f"{REFERENCE['60-90']:.3f} | **{REFERENCE['mean']:.3f}** | |",
        "",
        f"Difference from the reference: {deltas}.",
        "",
        f"Head pose MAE over the {pose['n']} faces with all angles within ±99°: yaw {pose['yaw']:.3f}°, "
        f"pitch {pose['pitch']:.3f}°, roll {pose['roll']:.3f}°, mean {pose['mean']:.3f}°.",
        "",
        "Throughput (JPEG decode + network + decoding, batch 128, CPU): "
        f"{protocol['faces_per_second']:.0f} faces/s.",
        "",
        f"Command: `{cmd_protocol}`",
        "",
        "From the original photos and `.mat` files (crops cut by facegraph with 3DDFA's landmark boxes, "
        "Pillow's bilinear resize instead of OpenCV's; no re-annotated ground truth in that layout):",
        "",
        "| ground truth | [0, 30] | (30, 60] | (60, 90] | mean of bins | all faces |",
        "|---|---|---|---|---|---|",
        *aflw_rows(original),
        "",
        f"Command: `{cmd_original}`",
        "",
        "### 300-W training faces (AFW + HELEN, 1,207 faces; 2D projection of the peer's 68 3D points)",
        "",
        "Not a test set: a check that the 300-W protocol code runs end to end until a 2D model exists. "
        "The peer predicts the 3D jaw, while 300-W annotates the visible contour, "
        "so the jaw dominates its error.",
        "",
        "| boxes | n | NME inter-ocular % | NME inter-pupil % | AUC@8 | FR@8 | detector missed |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, report in (("ground-truth landmarks' box", w300), ("dlib HOG detector", w300_det)):
        missed = "" if report["detector_missed"] is None else str(report["detector_missed"])
        lines.append(
            f"| {label} | {report['n']} | {report['nme_interocular']:.3f} | "
            f"{report['nme_interpupil']:.3f} | {report['auc_8']:.4f} | {report['fr_8']:.4f} | {missed} |"
        )
    lines += [
        "",
        f"Commands: `{cmd_300w}`; `{cmd_300w_det}`",
        "",
        "Curves: `benchmarks/results/*.png`; full reports: `benchmarks/results/*.json`.",
    ]
    write_section(SECTION, "\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
