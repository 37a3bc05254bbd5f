"""Face detectors in the photo pipeline: recall by yaw on AFLW2000-3D, end-to-end NME, and speed.

Every AFLW2000-3D photo is searched by each detector at its default score; a face is found when a
detection holds the centre of its 68 points. The found faces are cut around that detection and
predicted by the shipped SynergyNet, as ``facegraph eval aflw2000-3d --boxes detector`` does, beside the
protocol's ground-truth crops. Speed is the median time to search one photo at 640 x 480 and 1920 x 1080.
Writes RESULTS.md's "detection" section.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import HERE, machine, write_section
from facegraph.datasets.aflw2000_3d import load_aflw2000
from facegraph.demo import sample_path
from facegraph.evaluation.aflw2000 import evaluate_aflw2000
from facegraph.image.detectors import DEFAULT_MIN_SCORES, make_detector
from facegraph.metrics.aflw2000 import yaw_bin_masks
from facegraph.registry import load_model

DETECTORS = ("dlib-hog", "faceboxes")
SIZES = ((640, 480), (1920, 1080))
BINS = ("0-30", "30-60", "60-90")


def seconds_per_photo(name: str, size: tuple[int, int], repeats: int = 15) -> float:
    """Median seconds for one search of the astronaut portrait resized to ``size``."""
    detector = make_detector(name)
    photo = np.asarray(Image.open(sample_path("astronaut.jpg")).convert("RGB").resize(size))
    detector.detect(photo)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.detect(photo)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    data = load_aflw2000(Path(parser.parse_args().shared) / "aflw2000-3d")
    model = load_model("synergynet", kind="image")
    counts = {name: int(mask.sum()) for name, mask in yaw_bin_masks(data.yaw).items()}
    rows = []
    gt = evaluate_aflw2000(data, model, "synergynet").report
    rows.append(("ground-truth crops (the protocol)", "", "", "", "", gt["nme"]))
    for name in DETECTORS:
        report = evaluate_aflw2000(data, model, "synergynet", detector=make_detector(name)).report
        missed = report["detector_missed"]
        recall = [100 * (1 - missed[b] / counts[b]) for b in BINS]
        recall.append(100 * (1 - missed["all"] / len(data)))
        rows.append((f"`{name}` (score ≥ {DEFAULT_MIN_SCORES[name]:g})", *recall, report["nme"]))
    speed = {name: [1000 * seconds_per_photo(name, size) for size in SIZES] for name in DETECTORS}
    write_section("detection", "\n".join(report_lines(rows, counts, speed, len(data))))


def report_lines(rows: list[tuple], counts: dict, speed: dict, n: int) -> list[str]:
    bins = ", ".join(f"{b}: {counts[b]}" for b in BINS)
    lines = [
        "## Face detection in the photo pipeline",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}, {torch.get_num_threads()} threads.",
        "",
        f"AFLW2000-3D's {n:,} original photos (faces by |yaw| bin, {bins}; the 7 beyond 90° count only in",
        "'all'). Recall: a detection holds the centre of the face's 68 points. NME (%): the shipped",
        "SynergyNet (landmark head) on the faces found, each cut around its detection; missed faces have no",
        "landmarks and are not in the NME (3DDFA protocol otherwise: ground-truth box normalisation).",
        "",
        "| boxes | recall 0-30 | 30-60 | 60-90 | all | NME 0-30 | 30-60 | 60-90 | mean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, *recall, nme in rows:
        cells = [f"{r:.1f} %" if r != "" else "" for r in recall]
        lines.append(
            f"| {label} | {' | '.join(cells)} | "
            + " | ".join(f"{nme[k]:.3f}" for k in (*BINS, "mean"))
            + " |"
        )
    lines += [
        "",
        "Time to search one photo (ms, median of 15; the astronaut portrait resized):",
        "",
        "| detector | " + " | ".join(f"{w}×{h}" for w, h in SIZES) + " |",
        "|---|" + "---|" * len(SIZES),
        *(f"| `{name}` | " + " | ".join(f"{ms:.0f}" for ms in times) + " |" for name, times in speed.items()),
        "",
        "Not yet measured here: the peers (dlib's CNN, BlazeFace), small faces and crowds, video frames and",
        "face-free photos; the default detector stays `dlib-hog` until they are.",
        "",
        "Command: `python benchmarks/detection.py`",
    ]
    return lines


if __name__ == "__main__":
    main()
