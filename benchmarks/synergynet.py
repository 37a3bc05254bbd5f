"""SynergyNet (shipped weights) against its teacher 3DDFA_V2 x0.5 on AFLW2000-3D, and their speed.

Accuracy runs the CLI exactly as a user would (3DDFA protocol, both models in the same run), also for
the int8 ONNX model that ``facegraph export onnx --int8`` makes, calibrated on 256 faces of the 300-W
training photos. Speed times the network and the decoding on the benchmark's 120x120 crops, already in
memory (no JPEG decode, no detection), at batch 1 and batched, in PyTorch and in ONNX Runtime (float
and int8), on this machine's threads. Writes the ``synergynet`` section of benchmarks/RESULTS.md and
results/synergynet.json.

    .venv/bin/python benchmarks/synergynet.py [--shared ../shared/data] [--weights FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import HERE, OUT, RESULTS, machine, write_section
from facegraph.datasets.aflw2000_3d import load_aflw2000
from facegraph.image.onnx import OnnxRegressor, OnnxSession
from facegraph.registry import load_model
from harness import aflw_rows, run

SECTION = "synergynet"
# SynergyNet (Wu et al., 3DV 2021), Tables 1 and 3: AFLW2000-3D NME by yaw bin and head-pose MAE.
PUBLISHED = {"0-30": 2.65, "30-60": 3.30, "60-90": 4.27, "mean": 3.41}
PUBLISHED_POSE = {"yaw": 3.42, "pitch": 3.09, "roll": 2.55, "mean": 3.35}
SPEED_FACES = 512
BATCH = 128
WINDOW_SECONDS = 3.0  # each speed row is the median rate over WINDOWS windows of this length
WINDOWS = 5


def faces_per_second(
    predict,
    crops: np.ndarray,
    boxes: np.ndarray,
    batch: int,
    seconds: float = WINDOW_SECONDS,
    repeats: int = WINDOWS,
) -> float:
    """Faces per second of ``predict(crops, boxes)``: the median over ``repeats`` windows of at least
    ``seconds`` each, so that a burst of load from the machine's neighbours does not decide a row."""
    predict(crops[:batch], boxes[:batch])
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for first in range(0, len(crops), batch):
                predict(crops[first : first + batch], boxes[first : first + batch])
                done += len(crops[first : first + batch])
                if time.perf_counter() - start >= seconds:
                    break
        rates.append(done / (time.perf_counter() - start))
    return float(np.median(rates))


def export(args: list[str]) -> str:
    """Run ``facegraph export onnx`` as a user would (replacing an earlier export); returns the command."""
    args = [*args, "--overwrite"]
    executable = Path(sys.executable).parent / "facegraph"
    subprocess.run([str(executable), "export", "onnx", *args, "--quiet"], check=True, cwd=HERE.parent)
    return shlex.join(["facegraph", "export", "onnx", *args])


def speed_rows(shared: Path, weights: str | None, onnx_files: dict[str, Path]) -> tuple[list[str], dict]:
    data = load_aflw2000(shared / "aflw2000-3d")
    crops = np.stack([data.crop(i) for i in range(SPEED_FACES)])
    boxes = data.boxes[:SPEED_FACES]
    bfm = shared / "bfm"
    student = load_model("synergynet", weights, bfm)
    teacher = load_model("3ddfa-v2-mb05", shared / "3ddfa-v2", bfm)
    runs = {"SynergyNet, PyTorch": student.predict}
    for label, path in onnx_files.items():
        session = OnnxSession(HERE.parent / path)
        runs[f"SynergyNet, ONNX Runtime {label}"] = OnnxRegressor(student, session).predict
    runs["3DDFA_V2 x0.5 (teacher), PyTorch"] = teacher.predict
    figures: dict[str, dict[str, float]] = {}
    for name, predict in runs.items():
        figures[name] = {str(b): faces_per_second(predict, crops, boxes, b) for b in (1, BATCH)}
        print(name, {k: round(v) for k, v in figures[name].items()})
    rows = [f"| {name} | {f['1']:.0f} | {f[str(BATCH)]:.0f} |" for name, f in figures.items()]
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--weights", help="SynergyNet weights (default: the shipped ones)")
    args = parser.parse_args()
    shared = Path(args.shared)
    rel = os.path.relpath(shared, HERE.parent)
    data = ["eval", "aflw2000-3d", "--data", f"{rel}/aflw2000-3d"]
    student = ["--model", "synergynet", *(["--weights", args.weights] if args.weights else [])]
    cmd_student, student_report = run([*data, *student, "--bfm", f"{rel}/bfm"], "aflw2000-3d_synergynet")
    cmd_head, head_report = run(data + student, "aflw2000-3d_synergynet-no-bfm")
    teacher = ["--model", "3ddfa-v2-mb05", "--weights", f"{rel}/3ddfa-v2"]
    cmd_teacher, teacher_report = run([*data, *teacher], "aflw2000-3d_3ddfa-v2-mb05")
    mirror = ["--mirror-average"]
    cmd_mirror, mirror_report = run(
        [*data, *student, "--bfm", f"{rel}/bfm", *mirror], "aflw2000-3d_synergynet-mirror"
    )
    cmd_teacher_mirror, teacher_mirror_report = run([*data, *teacher, *mirror], "aflw2000-3d_3ddfa-v2-mirror")
    folder = Path("out") / "benchmark-onnx"  # relative to the repository root, where the commands run
    (HERE.parent / folder).mkdir(parents=True, exist_ok=True)
    onnx_files = {"float32": folder / "synergynet.onnx", "int8": folder / "synergynet-int8.onnx"}
    weights_args = ["--weights", args.weights] if args.weights else []
    cmd_export = export([str(onnx_files["float32"]), *weights_args])
    cmd_int8 = export(
        [str(onnx_files["int8"]), *weights_args, "--int8", "--calibration", f"{rel}/300w-train"]
    )
    cmd_int8_eval, int8_report = run(
        [*data, *student, "--bfm", f"{rel}/bfm", "--onnx", str(onnx_files["int8"])],
        "aflw2000-3d_synergynet-int8",
    )
    torch.set_num_threads(os.cpu_count() or 1)
    speed, speed_figures = speed_rows(shared, args.weights, onnx_files)

    def pose_row(label: str, pose: dict) -> str:
        angles = " | ".join(f"{pose[k]:.3f}" for k in ("yaw", "pitch", "roll"))
        return f"| {label} | {angles} | **{pose['mean']:.3f}** |"

    def nme_rows(label: str, report: dict) -> list[str]:
        return [f"| {label}, {row[2:]}" for row in aflw_rows(report)[:1]]

    lines = [
        "## SynergyNet: 3DMM, 68 3D landmarks and head pose from one photo",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        "### AFLW2000-3D, 3DDFA protocol (2,000 faces; NME % of the ground truth box, by |yaw| bin)",
        "",
        "| model | [0, 30] | (30, 60] | (60, 90] | mean of bins | all faces |",
        "|---|---|---|---|---|---|",
        *nme_rows("SynergyNet, shipped (landmarks decoded with the BFM)", student_report),
        *nme_rows("SynergyNet, shipped, no BFM (landmark head)", head_report),
        *nme_rows("SynergyNet, shipped, int8 ONNX Runtime (BFM decode)", int8_report),
        *nme_rows("3DDFA_V2 x0.5, the teacher (same run)", teacher_report),
        *nme_rows("SynergyNet, shipped, mirror-averaged (`--mirror-average`)", mirror_report),
        *nme_rows("3DDFA_V2 x0.5, the teacher, mirror-averaged", teacher_mirror_report),
        "| SynergyNet, published (300W-LP, 680k images) | "
        + " | ".join(f"{PUBLISHED[k]:.2f}" for k in ("0-30", "30-60", "60-90"))
        + f" | **{PUBLISHED['mean']:.2f}** | |",
        "",
        f"### Head pose MAE (degrees; the {student_report['pose_mae']['n']} faces with all angles "
        "within ±99°)",
        "",
        "| model | yaw | pitch | roll | mean |",
        "|---|---|---|---|---|",
        pose_row("SynergyNet, shipped", student_report["pose_mae"]),
        pose_row("SynergyNet, shipped, int8 ONNX Runtime", int8_report["pose_mae"]),
        pose_row("3DDFA_V2 x0.5, the teacher", teacher_report["pose_mae"]),
        pose_row("SynergyNet, shipped, mirror-averaged", mirror_report["pose_mae"]),
        pose_row("3DDFA_V2 x0.5, the teacher, mirror-averaged", teacher_mirror_report["pose_mae"]),
        pose_row("SynergyNet, published", PUBLISHED_POSE),
        "",
        f"### Speed (faces/s; {SPEED_FACES} crops in memory, network + decoding, "
        f"{torch.get_num_threads()} threads; the median of {WINDOWS} windows of {WINDOW_SECONDS:g} s)",
        "",
        f"| model | batch 1 | batch {BATCH} |",
        "|---|---|---|",
        *speed,
        "",
        "Mirror-averaged rows predict each face and its mirror image and average their landmarks and pose"
        " (twice the work; the speed table times one prediction per face). PyTorch rows run the models as"
        " `load_model` gives them, batch normalisation folded into the convolutions.",
        "",
        f"Commands: `{cmd_student}`; `{cmd_head}`; `{cmd_teacher}`; `{cmd_mirror}`; `{cmd_teacher_mirror}`;"
        f" `{cmd_export}`; `{cmd_int8}`;"
        f" `{cmd_int8_eval}`; speed: `.venv/bin/python benchmarks/synergynet.py` (the ONNX files are"
        " the two exports)",
    ]
    write_section(SECTION, "\n".join(lines))
    OUT.mkdir(exist_ok=True)
    summary = {
        "student": student_report,
        "student_no_bfm": head_report,
        "student_int8": int8_report,
        "teacher": teacher_report,
        "student_mirror_averaged": mirror_report,
        "teacher_mirror_averaged": teacher_mirror_report,
        "speed_faces_per_second": speed_figures,
    }
    (OUT / "synergynet.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
