"""Face detectors, facegraph's and peers', side by side: recall by yaw and size, video frames, false
detections, end-to-end NME and speed.

Sets (``detection_sets``): AFLW2000-3D's 2,000 original photos (found: a detection holds the centre of
the face's fitted 68 points; by |yaw| bin), 300-W's 1,207 training faces, crowds of small faces (20-120
px), frames of moving portraits, and face-free photos. The peers (``peer_detectors``: dlib's CNN, MMOD;
MediaPipe's BlazeFace short- and full-range run by ai-edge-litert) are for comparison only; dlib's CNN
takes one to several seconds a photo on this CPU, so it sees every eighth photo or frame of each set
(and a quarter of the crowd pictures), and the default's figures on those same subsets are given
beside it. The faces found in AFLW2000-3D are predicted by the shipped SynergyNet as ``facegraph eval
aflw2000-3d --boxes detector`` does (detection crop, then cut again around the landmarks), beside the
protocol's crops; on 300-W's faces, the crop refinement is scored for 0-3 passes.
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
from tqdm import tqdm

from common import HERE, machine, write_section
from detection_sets import (
    crowd_pictures,
    face_free_photos,
    found_faces,
    moving_portrait,
    portrait_indices,
)
from facegraph.datasets.aflw2000_3d import load_aflw2000
from facegraph.datasets.faces68 import load_faces68
from facegraph.demo import sample_path
from facegraph.evaluation.aflw2000 import evaluate_aflw2000
from facegraph.geometry.crops import box_from_detection, crop
from facegraph.image.analyzer import detect_faces, predict_recropped
from facegraph.image.detectors import DEFAULT_DETECTOR, FaceDetector, make_detector
from facegraph.io.images import read_image
from facegraph.metrics.aflw2000 import yaw_bin_masks
from facegraph.registry import load_model
from peer_detectors import models_folder, peer_detectors

OURS = ("faceboxes+blazeface", "faceboxes+blazeface --min-face 20", "faceboxes", "blazeface", "dlib-hog")
NME_ROWS = ("faceboxes+blazeface", "faceboxes", "dlib-hog")
SLOW = "dlib-mmod"  # sees every eighth photo
SIZES = ((640, 480), (1920, 1080))
BINS = ("0-30", "30-60", "60-90")
SIZE_BINS = ((20, 32), (32, 48), (48, 121))


def detectors() -> dict[str, FaceDetector]:
    ours = {name: make_detector(name) for name in OURS if " " not in name}
    ours["faceboxes+blazeface --min-face 20"] = make_detector(DEFAULT_DETECTOR, smallest_face=20)
    return {**{name: ours[name] for name in OURS}, **peer_detectors(models_folder())}


def every(name: str, n: int, step: int = 8) -> np.ndarray:
    return np.arange(0, n, step if name == SLOW else 1)


def search(detector: FaceDetector, pictures: list[np.ndarray], label: str) -> list[list]:
    return [detect_faces(detector, p) for p in tqdm(pictures, desc=label, unit="photo", leave=False)]


class Replay:
    """Detections already made, handed back in order (so that the NME run does not search again)."""

    def __init__(self, found: list[list]) -> None:
        self.found = iter(found)

    def detect(self, rgb: np.ndarray) -> list:
        return next(self.found)


def aflw_rows(data, model, dets: dict, photos: list[np.ndarray]) -> tuple[list[str], dict]:
    """Recall by yaw bin for each detector and, for ours, the end-to-end NME."""
    masks = yaw_bin_masks(data.yaw)
    centres = data.landmarks[..., :2].mean(axis=1)
    found_by, rows = {}, []
    gt = evaluate_aflw2000(data, model, "synergynet", progress=False).report["nme"]
    rows.append("| ground-truth crops (the protocol) | | | | | " + _nme_cells(gt) + " |")
    for name, detector in dets.items():
        index = every(name, len(data))
        found_list = search(detector, [photos[i] for i in index], f"AFLW2000-3D {name}")
        found = np.array(
            [any(_holds(d, centres[i]) for d in f) for i, f in zip(index, found_list, strict=True)]
        )
        found_by[name] = (index, found)
        recall = [100 * found[masks[b][index]].mean() for b in BINS] + [100 * found.mean()]
        nme = ""
        if name in NME_ROWS:
            report = evaluate_aflw2000(
                data, model, "synergynet", progress=False, detector=Replay(found_list)
            ).report
            nme = _nme_cells(report["nme"])
        label = f"`{name}`" + (" (every 8th photo)" if name == SLOW else "")
        rows.append(f"| {label} | " + " | ".join(f"{r:.1f} %" for r in recall) + f" | {nme or ' | | | '} |")
    return rows, found_by


def _holds(d, centre: np.ndarray) -> bool:
    return bool((d.box[:2] <= centre).all() and (centre <= d.box[2:]).all())


def _nme_cells(nme: dict) -> str:
    return " | ".join(f"{nme[k]:.3f}" for k in (*BINS, "mean"))


def labelled_recall(dets: dict, pictures: list, label: str, step: int = 8) -> dict[str, tuple]:
    """Per detector: (found, sizes) over the known faces of ``pictures`` (the slow one: every ``step``th)."""
    out = {}
    for name, detector in dets.items():
        index = every(name, len(pictures), step)
        found, sizes = [], []
        for i in tqdm(index, desc=f"{label} {name}", leave=False):
            p = pictures[i]
            found.append(found_faces(detect_faces(detector, p.rgb), p.centres, p.sizes))
            sizes.append(p.sizes)
        out[name] = (found, sizes, index)
    return out


def recall_of(result: tuple, pictures: np.ndarray | None = None, bounds: tuple = (0, np.inf)) -> float:
    """Recall (%) over the faces of a ``labelled_recall`` result sized within ``bounds``, on the
    pictures numbered ``pictures`` (default: all it saw)."""
    found, sizes, index = result
    chosen = [k for k, i in enumerate(index) if pictures is None or i in set(pictures)]
    f = np.concatenate([found[k] for k in chosen])
    z = np.concatenate([sizes[k] for k in chosen])
    inside = (z >= bounds[0]) & (z < bounds[1])
    return 100 * float(f[inside].mean())


def seconds_per_photo(detector: FaceDetector, size: tuple[int, int], repeats: int) -> float:
    """Median seconds for one search of the astronaut portrait resized to ``size``."""
    photo = np.asarray(Image.open(sample_path("astronaut.jpg")).convert("RGB").resize(size))
    detect_faces(detector, photo)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detect_faces(detector, photo)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def recrop_passes(faces, model, detector: FaceDetector) -> list[float]:
    """Inter-ocular NME (%) on 300-W's training faces found by ``detector``, for 0-3 crop refinements."""
    photos, boxes, keep = [], [], []
    for i in tqdm(range(len(faces)), desc="300-W crop refinement", leave=False):
        rgb, points = read_image(faces.photos[i]), faces.landmarks[i]
        centre = (points.min(0) + points.max(0)) / 2
        holding = [d for d in detect_faces(detector, rgb) if _holds(d, centre)]
        if holding:
            photos.append(rgb)
            boxes.append(box_from_detection(holding[0].box))
            keep.append(i)
    gt = faces.landmarks[keep]
    inter_ocular = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=1)
    nme = []
    for passes in range(4):
        points = []
        for photo, box in zip(photos, boxes, strict=True):

            def cut(at: np.ndarray, photo: np.ndarray = photo) -> np.ndarray:
                return np.stack([crop(photo, b, model.input_size) for b in at])

            points.append(predict_recropped(model, cut, box[None], passes)[1].landmarks[0, :, :2])
        # the benchmark frame is 1-based; 300-W's points here are 0-based
        errors = np.linalg.norm(np.stack(points) - 1.0 - gt, axis=-1).mean(axis=1) / inter_ocular
        nme.append(100 * float(errors.mean()))
    return nme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    shared = Path(parser.parse_args().shared)
    data = load_aflw2000(shared / "aflw2000-3d")
    faces = load_faces68(shared / "300w-train")
    model = load_model("synergynet", kind="image")
    dets = detectors()
    aflw, aflw_found = aflw_rows(data, model, dets, [read_image(data.images_folder / n) for n in data.names])
    singles = [_single(faces, i) for i in range(len(faces))]
    w300 = labelled_recall(dets, singles, "300-W")
    crowd = labelled_recall(dets, crowd_pictures(faces), "crowds", step=4)
    clips = [frame for i in portrait_indices(faces, 5) for frame in moving_portrait(faces, i, 40)]
    video = labelled_recall(dets, clips, "frames")
    free = face_free_photos(faces, 300)
    false = {
        name: [
            sum(len(detect_faces(d, p)) for p in pictures[:: 8 if name == SLOW else 1])
            for pictures in free.values()
        ]
        for name, d in dets.items()
    }
    speed = {
        name: [1000 * seconds_per_photo(d, size, 3 if name == SLOW else 15) for size in SIZES]
        for name, d in dets.items()
    }
    passes = recrop_passes(faces, model, dets[DEFAULT_DETECTOR])
    lines = report_lines(data, aflw, aflw_found, w300, crowd, video, free, false, speed, passes)
    write_section("detection", "\n".join(lines))


def _single(faces, index: int):
    from detection_sets import Labelled, _extent

    centre, size = _extent(faces.landmarks[index])
    return Labelled(read_image(faces.photos[index]), centre[None], np.array([size]))


def report_lines(data, aflw, aflw_found, w300, crowd, video, free, false, speed, passes) -> list[str]:
    masks = yaw_bin_masks(data.yaw)
    counts = ", ".join(f"{b}: {int(masks[b].sum())}" for b in BINS)
    n_crowd = sum(len(s) for s in crowd[DEFAULT_DETECTOR][1])
    lines = [
        "## Face detection: facegraph's detectors and peers",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}, {torch.get_num_threads()} threads.",
        "",
        f"**AFLW2000-3D**, {len(data):,} original photos (faces by |yaw| bin, {counts};",
        "the 7 beyond 90° count only in 'all'). Recall: a detection holds the centre of the face's 68",
        "fitted points. NME (%): the shipped SynergyNet on the faces found, cut around the detection and",
        "then twice around the landmarks (missed faces are not in the NME; their count is the recall). The",
        "protocol's row uses the ground-truth crops.",
        "",
        "| boxes | recall 0-30 | 30-60 | 60-90 | all | NME 0-30 | 30-60 | 60-90 | mean |",
        "|---|---|---|---|---|---|---|---|---|",
        *aflw,
    ]
    if SLOW in aflw_found:
        index = aflw_found[SLOW][0]
        index_d, found_d = aflw_found[DEFAULT_DETECTOR]
        sub = found_d[index]
        cells = " / ".join(f"{100 * sub[masks[b][index]].mean():.1f}" for b in BINS)
        lines += [
            "",
            f"`{DEFAULT_DETECTOR}` on the photos `{SLOW}` saw: {cells} % by bin,"
            f" {100 * sub.mean():.1f} % in all.",
        ]
    lines += [
        "",
        f"**Other sets.** 300-W's {len(w300[DEFAULT_DETECTOR][0]):,} training faces (one annotated face a",
        "photo). Crowds: the same faces shrunk to 20-120 px (longest side of their points) and scattered",
        f"over blurred scenery, {len(crowd[DEFAULT_DETECTOR][0])} pictures of 960×720 holding {n_crowd:,}",
        "faces, recall by size; a face is found by a detection holding its centre whose side is 0.4-3 times",
        f"the face's size. Frames: {len(video[DEFAULT_DETECTOR][0])} frames (640×480) of 5 moving portraits",
        "(pan, zoom, roll ±15°). AFLW + crowds: both sets' faces together. False detections: "
        + ", ".join(f"{name} ({len(p)} photos)" for name, p in free.items())
        + "; no face in them (the 300-W crops may show other people). Times: median ms to search the",
        "astronaut portrait resized (dlib-mmod: 3 runs).",
        "",
        "| detector | 300-W | crowds 20-32 px | 32-48 | 48-120 | crowds all | AFLW + crowds | frames | false "
        + " | false ".join(f"{k.split()[0]}" for k in free)
        + " | ms 640×480 | ms 1920×1080 |",
        "|---|" + "---|" * (10 + len(free)),
    ]
    for name in w300:
        index_a, found_a = aflw_found[name]
        crowd_found = np.concatenate(crowd[name][0])
        together = 100 * (found_a.sum() + crowd_found.sum()) / (len(found_a) + len(crowd_found))
        cells = [
            f"{recall_of(w300[name]):.1f} %",
            *(f"{recall_of(crowd[name], None, b):.1f} %" for b in SIZE_BINS),
            f"{recall_of(crowd[name]):.1f} %",
            f"{together:.1f} %",
            f"{recall_of(video[name]):.1f} %",
            *(str(n) for n in false[name]),
            *(f"{ms:.0f}" for ms in speed[name]),
        ]
        label = f"`{name}`" + (" (⅛ of photos, ¼ of crowds)" if name == SLOW else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if SLOW in w300:
        sub = {key: recall_of(result[DEFAULT_DETECTOR], result[SLOW][2]) for key, result in
               (("300-W", w300), ("crowds", crowd), ("frames", video))}  # fmt: skip
        lines += [
            "",
            f"`{DEFAULT_DETECTOR}` on the pictures `{SLOW}` saw: "
            + ", ".join(f"{k} {v:.1f} %" for k, v in sub.items())
            + "; false detections on its share of the face-free photos are counted on an eighth of them.",
        ]
    lines += [
        "",
        f"**Crop refinement** (chosen here: 2 passes), 300-W's training faces found by `{DEFAULT_DETECTOR}`,",
        "inter-ocular NME (%) of the shipped SynergyNet after cutting each face again around its landmarks:",
        "",
        "| passes | 0 | 1 | 2 | 3 |",
        "|---|---|---|---|---|",
        "| NME | " + " | ".join(f"{v:.3f}" for v in passes) + " |",
        "",
        "Command: `python benchmarks/detection.py`",
    ]
    return lines


if __name__ == "__main__":
    main()
