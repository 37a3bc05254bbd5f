"""SPIGA beside SynergyNet and dlib's 68-point model on the held-out 300-W faces, and its speed.

The test faces are the quarter of 300-W's training photos that ``facegraph train spiga`` never trains
on (``facegraph.training.spiga.split``; the same whatever the run's seed). Note that the shipped
SynergyNet trained on 95 % of 300-W's photos, most of these among them, so its figure flatters it.
NME (%): mean error over the 68 points divided by the outer-eye-corner distance.

- SynergyNet: its 68 points (decoded with the BFM when one is installed, else its landmark head) on the
  3DDFA crop cut around the ground-truth points (the protocol's crops).
- SPIGA: the same crops, its cascade started from the posed mean face, and started from SynergyNet's
  points (``initial=``).
- dlib's 68-point shape predictor (trained on iBUG 300-W, whose training set these photos belong to,
  so it has seen them) on the original photo with its own HOG detector, as its users run it: faces its
  detector misses are counted apart.

Head pose: SPIGA, SynergyNet and 3DDFA_V2 x0.5 (the peer's checkpoint in ``--shared``) on AFLW2000-3D's
protocol crops, MAE per angle. Speed: one 120-pixel crop at a time (median), and faces per second in
batches of 64, on this CPU, in PyTorch and in ONNX Runtime (the model's own export).
Writes RESULTS.md's "spiga" section.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import HERE, machine, write_section
from facegraph.datasets.aflw2000_3d import load_aflw2000
from facegraph.datasets.face_crops import load_faces68_crops
from facegraph.datasets.faces68 import load_faces68
from facegraph.evaluation.aflw2000 import evaluate_aflw2000
from facegraph.image.spiga import load_spiga
from facegraph.io.images import read_image
from facegraph.nn.spiga import parameter_count
from facegraph.registry import load_model
from facegraph.training.spiga import face_nme, get_config, predict_points, split
from peer_detectors import models_folder

SPEED_REPEATS = 50


def synergynet_points(crops: np.ndarray, bfm: str | None) -> np.ndarray:
    """SynergyNet's (N, 68, 2) points in the crop frame (y down) on 120-pixel crops."""
    model = load_model("synergynet", bfm=bfm, kind="image")
    frame = np.tile([0.0, 0.0, 120.0, 120.0], (len(crops), 1))
    out = []
    for first in range(0, len(crops), 128):
        out.append(model.predict(crops[first : first + 128], frame[first : first + 128]).landmarks[..., :2])
    return np.concatenate(out)


def dlib_nme(faces, indices: np.ndarray, models: Path) -> tuple[np.ndarray, int]:
    """dlib's per-face NME on the faces its HOG detector finds (the detection holding the face's centre),
    and how many it missed."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "dlib" / "shape_predictor_68_face_landmarks.dat"))
    errors, missed = [], 0
    for i in indices:
        rgb, truth = read_image(faces.photos[i]), faces.landmarks[i]
        centre = (truth.min(0) + truth.max(0)) / 2
        rects = [
            r
            for r in detector(rgb, 1)
            if r.left() <= centre[0] <= r.right() and r.top() <= centre[1] <= r.bottom()
        ]
        if not rects:
            missed += 1
            continue
        shape = predictor(rgb, rects[0])
        points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
        errors.append(face_nme(points[None], truth[None])[0])
    return np.array(errors), missed


def aflw2000_rows(shared: Path, weights: str, bfm: str | None) -> list[str]:
    """NME and head-pose MAE on AFLW2000-3D (the protocol's crops) of SPIGA, SynergyNet and 3DDFA_V2."""
    data = load_aflw2000(shared / "aflw2000-3d")
    models = {
        "spiga": load_model("spiga", weights=weights, kind="image"),
        "synergynet": load_model("synergynet", bfm=bfm, kind="image"),
        "3ddfa-v2-mb05": load_model("3ddfa-v2-mb05", weights=shared / "3ddfa-v2", bfm=bfm, kind="image"),
    }
    rows = []
    for name, model in models.items():
        report = evaluate_aflw2000(data, model, name, progress=False).report
        mae, nme = report["pose_mae"], report["nme"]
        cells = [f"{mae[k]:.3f}" for k in ("yaw", "pitch", "roll", "mean")] + [f"{nme['mean']:.3f}"]
        rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {mae['n']} |")
    return rows


def speed(predict) -> tuple[float, float]:
    """Milliseconds per crop at batch 1 (median) and faces per second at batch 64 of a photo model's
    ``predict`` (crops in, photo-pixel landmarks out: the package's inference path)."""
    one = np.random.default_rng(0).integers(0, 255, (1, 120, 120, 3), dtype=np.uint8)
    many, boxes = one.repeat(64, axis=0), np.tile([0.0, 0.0, 240.0, 240.0], (64, 1))
    times = []
    for k in range(SPEED_REPEATS + 5):
        start = time.perf_counter()
        predict(one, boxes[:1])
        if k >= 5:
            times.append(time.perf_counter() - start)
    predict(many, boxes)
    start = time.perf_counter()
    for _ in range(5):
        predict(many, boxes)
    return 1000 * float(np.median(times)), 5 * 64 / (time.perf_counter() - start)


def speed_rows(weights: str) -> list[str]:
    """Speed of the loaded model (batch normalisation folded, channels-last CNN) in PyTorch and of its
    ONNX export in ONNX Runtime."""
    from facegraph.image.onnx import OnnxRegressor, OnnxSession, export_onnx

    model = load_model("spiga", weights=weights, kind="image")
    rows = {"PyTorch": speed(model.predict)}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spiga.onnx"
        export_onnx(model, path)
        rows["ONNX Runtime"] = speed(OnnxRegressor(model, OnnxSession(path)).predict)
    return [f"| {name} | {ms:.1f} | {per_second:.0f} |" for name, (ms, per_second) in rows.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--weights", required=True, help="SPIGA weights (a run's best.safetensors)")
    parser.add_argument(
        "--bfm", help="BFM folder for SynergyNet's decoded points (default: the installed one)"
    )
    args = parser.parse_args()
    folder = Path(args.shared) / "300w-train"
    crops = load_faces68_crops(folder, progress=False)
    faces = load_faces68(folder)
    model, figures = load_spiga(args.weights)
    config = get_config(figures.get("name", model.config.name))
    _, _, test = split(crops, config, seed=0)
    test_crops, truth = crops.crops[test], crops.points[test]
    synergy = synergynet_points(test_crops, args.bfm)
    rows = {
        "SynergyNet (shipped; trained on most of these photos)": face_nme(synergy, truth),
        f"SPIGA `{model.config.name}`, from the posed mean face": face_nme(
            predict_points(model, test_crops), truth
        ),
        f"SPIGA `{model.config.name}`, from SynergyNet's points": face_nme(
            predict_points(model, test_crops, initial=synergy), truth
        ),
    }
    dlib_errors, missed = dlib_nme(faces, test, models_folder())
    pose_rows = aflw2000_rows(Path(args.shared), args.weights, args.bfm)
    speeds = speed_rows(args.weights)
    lines = [
        "## SPIGA on held-out 300-W faces, beside SynergyNet and dlib",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}, {torch.get_num_threads()} threads.",
        "",
        f"{len(test)} faces of 300-W's training photos (AFW and HELEN) that SPIGA's training never saw;",
        "68-point NME (%) by the outer eye corners, on 3DDFA crops cut around the ground-truth points.",
        f"Weights: `{args.weights}` (best epoch {figures.get('epoch')},"
        f" validation NME {figures.get('val_nme', float('nan')):.3f}).",
        "",
        "| model | NME mean | median | faces |",
        "|---|---|---|---|",
        *(f"| {name} | {e.mean():.3f} | {np.median(e):.3f} | {len(e)} |" for name, e in rows.items()),
        f"| dlib 68-point (its HOG detector; trained on iBUG 300-W) | {dlib_errors.mean():.3f} |"
        f" {np.median(dlib_errors):.3f} | {len(dlib_errors)} (missed {missed}) |",
        "",
        "**Head pose on AFLW2000-3D** (the protocol's crops; faces with all angles within 99 degrees),",
        "MAE in degrees, and the 68-point NME (%, mean of the yaw bins) for reference:",
        "",
        "| model | yaw | pitch | roll | mean | NME | faces |",
        "|---|---|---|---|---|---|---|",
        *pose_rows,
        "",
        f"**Speed** of `{model.config.name}` ({parameter_count(model) / 1e6:.2f} M parameters) from crop",
        "to photo-pixel landmarks (`predict`), on this CPU:",
        "",
        "| runtime | ms per face, batch 1 (median) | faces/s, batch 64 |",
        "|---|---|---|",
        *speeds,
        "",
        "Command: `python benchmarks/spiga.py --weights WEIGHTS`",
    ]
    write_section("spiga", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
