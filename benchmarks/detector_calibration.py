"""Choosing BlazeFace's lowest score and FaceBoxes' vouching score in the default detector, on no test set.

Faces: AFLW's training crops (``aflw-train``, which holds no AFLW2000-3D image), up to 800 in each
|yaw| bin, each enlarged three times onto blurred scenery. Found: a detection holds the centre of the
face's labelled points. False detections: crops of 300-W training photos away from their annotated
face (``detection_sets.face_free_photos`` with a seed of its own; the benchmark uses another).
For each BlazeFace threshold and vouching score (``facegraph.image.detectors.CombinedDetector``) the
table gives the recall of FaceBoxes (0.5) plus BlazeFace, and the false detections the pair makes.
Writes RESULTS.md's "detector-calibration" section.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from common import HERE, machine, write_section
from detection_sets import _scenery, face_free_photos
from facegraph.datasets.faces68 import load_faces68
from facegraph.image.blazeface import BlazeFaceDetector
from facegraph.image.detectors import CombinedDetector, iou
from facegraph.image.faceboxes import FaceBoxesDetector
from facegraph.io.images import read_image

THRESHOLDS = (0.3, 0.4, 0.5)
VOUCHING = (None, 0.02, 0.05, 0.1)
FACEBOXES_MIN = 0.5
BINS = ((0, 30), (30, 60), (60, 90))
PER_BIN = 800
ENLARGE = 3
CANVAS = (640, 480)


def calibration_faces(root: Path, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Pictures of AFLW training faces on scenery, each face's centre there, and its |yaw|."""
    points, yaws = np.load(root / "pts21.npy"), np.abs(np.load(root / "yaws.npy"))
    boxes, names = np.load(root / "roi_box.npy"), (root / "crops-120.list").read_text().split()
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.permutation(np.flatnonzero((yaws >= lo) & (yaws < hi)))[:PER_BIN] for lo, hi in BINS]
    )
    scenery = _scenery(read_image(root / "crops-120" / names[0]), CANVAS)
    pictures, centres = [], []
    for index in chosen:
        labelled = points[index][:, points[index][0] >= 0]
        scale = 120 / (boxes[index, 2] - boxes[index, 0]) * ENLARGE
        crop = Image.open(root / "crops-120" / names[index]).convert("RGB")
        side = 120 * ENLARGE
        picture = scenery.copy()
        left, top = (CANVAS[0] - side) // 2, (CANVAS[1] - side) // 2
        picture[top : top + side, left : left + side] = np.asarray(crop.resize((side, side), Image.BILINEAR))
        centre = (labelled.mean(axis=1) - boxes[index, :2] + 0.5) * scale - 0.5
        pictures.append(picture)
        centres.append(centre + [left, top])
    return pictures, np.array(centres), yaws[chosen]


def holds(detections: list, centre: np.ndarray) -> bool:
    return any((d.box[:2] <= centre).all() and (centre <= d.box[2:]).all() for d in detections)


def combined(main: list, second: list, threshold: float, vouching: float | None) -> list:
    """The default detector's answer from FaceBoxes' detections (scored down to 0.01) and BlazeFace's,
    for a BlazeFace threshold and a vouching FaceBoxes score (None: every BlazeFace face is added
    where FaceBoxes found none)."""
    kept = [d for d in second if d.score >= threshold]
    if vouching is None:
        found = [d for d in main if d.score >= FACEBOXES_MIN]
        return found + [d for d in kept if all(iou(d.box, f.box) <= 0.3 for f in found)]
    candidates = [d for d in main if d.score >= vouching]
    return CombinedDetector(Fixed(candidates), Fixed(kept), FACEBOXES_MIN).detect(np.empty(0))


class Fixed:
    """Detections already made, as a detector."""

    def __init__(self, detections: list) -> None:
        self.detections = detections

    def detect(self, rgb: object) -> list:
        return self.detections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    shared = Path(parser.parse_args().shared)
    pictures, centres, yaws = calibration_faces(shared / "aflw-train")
    backgrounds = face_free_photos(load_faces68(shared / "300w-train"), 300, seed=1)["300-W backgrounds"]
    faceboxes, blazeface = FaceBoxesDetector(min_score=0.01), BlazeFaceDetector(min_score=min(THRESHOLDS))
    faces = [(faceboxes.detect(p), blazeface.detect(p)) for p in tqdm(pictures, desc="faces")]
    free = [(faceboxes.detect(b), blazeface.detect(b)) for b in tqdm(backgrounds, desc="face-free")]
    rows = []
    for vouching in VOUCHING:
        for threshold in THRESHOLDS:
            found = np.array(
                [holds(combined(*f, threshold, vouching), c) for f, c in zip(faces, centres, strict=True)]
            )
            recall = [100 * found[(yaws >= lo) & (yaws < hi)].mean() for lo, hi in BINS]
            false = sum(len(combined(*f, threshold, vouching)) for f in free)
            cells = " | ".join(f"{r:.1f} %" for r in recall)
            rows.append(f"| {threshold:g} | {vouching if vouching else 'no'} | {cells} | {false} |")
    alone = np.array(
        [holds([d for d in f if d.score >= 0.5], c) for (f, _), c in zip(faces, centres, strict=True)]
    )
    alone_recall = [100 * alone[(yaws >= lo) & (yaws < hi)].mean() for lo, hi in BINS]
    alone_false = sum(sum(d.score >= 0.5 for d in f) for f, _ in free)
    lines = [
        "## Detector calibration: BlazeFace's threshold and FaceBoxes' vouching in `faceboxes+blazeface`",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        f"{len(pictures):,} AFLW training faces (up to {PER_BIN} per |yaw| bin, enlarged {ENLARGE}x onto",
        f"blurred scenery, {CANVAS[0]}x{CANVAS[1]}); false detections on {len(backgrounds)} face-free crops",
        "of 300-W training photos (other people may appear in them). A BlazeFace face is added where",
        "FaceBoxes found none; with vouching, only when its centre lies in a FaceBoxes box scoring at",
        "least that.",
        "FaceBoxes alone (0.5): "
        + " / ".join(f"{r:.1f} %" for r in alone_recall)
        + f", {alone_false} false detections.",
        "",
        "| BlazeFace ≥ | vouching FaceBoxes ≥ | recall 0-30 | 30-60 | 60-90 | false detections |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Command: `python benchmarks/detector_calibration.py`",
    ]
    write_section("detector-calibration", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
