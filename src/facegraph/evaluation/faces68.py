"""Run a model over a 68-point photo benchmark (300-W protocol) and score it.

Faces are cropped from the ground-truth landmarks' box (``boxes="gt"``, the 300-W protocol) or from
the detection that overlaps it most (``boxes="detector"``; a face the detector misses falls back to
the ground-truth box and is counted; a found face is cut again around its predicted landmarks, as
``facegraph image`` does). NME uses every one of the 68 points, normalised per face by the
outer eye corners (36, 45: inter-ocular) and by the eye centres (inter-pupil); AUC and failure rate are
taken at each normaliser's threshold from the annotations' ``db_info.json`` (8% by default). Where the
annotations carry a head pose (SPIGA's), the predicted pose's mean absolute error per angle is reported
too, as SPIGA reports it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from facegraph.datasets.faces68 import DEFAULT_NORMS, Faces68
from facegraph.geometry.crops import box_from_detection, box_from_landmarks, crop
from facegraph.image.analyzer import RECROP_PASSES, predict_recropped
from facegraph.image.crop_regressor import CropRegressor
from facegraph.image.detectors import FaceDetector, best_match
from facegraph.io.images import read_image
from facegraph.metrics.curves import auc, failure_rate
from facegraph.metrics.landmarks import box_size, landmark_box_size, nme
from facegraph.metrics.pose import ANGLES, pose_mae
from facegraph.schemes import normalisation_distance

MIN_DETECTION_IOU = 0.3


@dataclass
class Faces68Result:
    report: dict
    nme_interocular: np.ndarray
    nme_interpupil: np.ndarray

    def curves(self) -> dict[str, np.ndarray]:
        """Per-face NME under both normalisations, for cumulative error curves."""
        return {"inter-ocular": self.nme_interocular, "inter-pupil": self.nme_interpupil}


def summary_rows(report: dict) -> list[tuple[str, ...]]:
    """The report's subsets as table rows: a header, then n, NME, AUC and failure rate per subset, and the
    head-pose errors where the annotations have poses."""
    threshold = f"{report['threshold']:g}"
    with_pose = report.get("pose_mae") is not None
    rows = [("subset", "n", "NME io (%)", "NME ip (%)", f"AUC@{threshold}", f"FR@{threshold}")]
    if with_pose:
        rows[0] += tuple(f"{angle} MAE (deg)" for angle in ANGLES)
    for name, sub in report["subsets"].items():
        figures = (sub["nme_interocular"], sub["nme_interpupil"])
        row = (
            name,
            str(sub["n"]),
            *(f"{v:.3f}" for v in figures),
            f"{sub['auc_8']:.4f}",
            f"{sub['fr_8']:.4f}",
        )
        if with_pose:
            row += tuple(f"{sub['pose_mae'][angle]:.2f}" for angle in ANGLES)
        rows.append(row)
    return rows


def normalisers(dataset: Faces68) -> dict[str, np.ndarray]:
    """Per-face normalising distances: inter-ocular and inter-pupil always, plus the other normalisers
    the dataset's protocol names that facegraph knows (the landmarks' box, the annotation box)."""
    gt = dataset.landmarks
    values = {
        "corners": np.array([normalisation_distance(p, "ibug68", "outer_eye_corners") for p in gt]),
        "pupils": np.array([normalisation_distance(p, "ibug68", "pupils") for p in gt]),
    }
    if "lnd_bbox" in dataset.norms:
        values["lnd_bbox"] = landmark_box_size(gt)
    if "bbox" in dataset.norms and dataset.boxes is not None:
        values["bbox"] = box_size(dataset.boxes)
    return values


def _summary(
    errors: dict[str, np.ndarray],
    norms: dict[str, float],
    indices: np.ndarray,
    poses: tuple[np.ndarray, np.ndarray] | None,
) -> dict:
    """The figures of the faces at ``indices``; ``poses``: (predicted, annotated) head poses, if any."""
    summary: dict = {"n": int(len(indices))}
    for name, per_face in errors.items():
        threshold = norms[name]
        summary[f"nme_{name}"] = float(per_face[indices].mean())
        summary[f"auc_{name}"] = auc(per_face[indices], threshold)
        summary[f"fr_{name}"] = failure_rate(per_face[indices], threshold)
    summary["nme_interocular"] = summary["nme_corners"]
    summary["nme_interpupil"] = summary["nme_pupils"]
    summary["auc_8"] = auc(errors["corners"][indices], 8.0)
    summary["fr_8"] = failure_rate(errors["corners"][indices], 8.0)
    if poses is not None:
        summary["pose_mae"] = pose_mae(poses[0][indices], poses[1][indices])
    return summary


def evaluate_faces68(
    dataset: Faces68,
    model: CropRegressor,
    model_name: str,
    boxes: str = "gt",
    detector: FaceDetector | None = None,
    progress: bool = True,
) -> Faces68Result:
    """Predict every face and build the report; subsets from the dataset are reported too."""
    if boxes == "detector" and detector is None:
        from facegraph.image.detectors import DEFAULT_DETECTOR, make_detector

        detector = make_detector(DEFAULT_DETECTOR)
    predictions, poses, missed = [], [], 0
    start = time.perf_counter()
    for index in tqdm(range(len(dataset)), desc=dataset.name, unit="face", disable=not progress):
        photo = read_image(dataset.photos[index])
        gt = dataset.landmarks[index]
        box, passes = box_from_landmarks(gt), 0
        if boxes == "detector":
            match = best_match(
                detector.detect(photo), np.concatenate([gt.min(0), gt.max(0)]), MIN_DETECTION_IOU
            )
            if match is None:
                missed += 1
            else:
                box, passes = box_from_detection(match.box), RECROP_PASSES

        def cut(at: np.ndarray, photo: np.ndarray = photo) -> np.ndarray:
            return np.stack([crop(photo, b, model.input_size) for b in at])

        prediction = predict_recropped(model, cut, box[None], passes)[1]
        predictions.append(prediction.landmarks[0, :, :2])
        poses.append(prediction.pose[0])
    seconds = time.perf_counter() - start
    predictions = np.stack(predictions)
    pose_pairs = None if dataset.headpose is None else (np.stack(poses), dataset.headpose)

    errors = {name: nme(predictions, dataset.landmarks, norm) for name, norm in normalisers(dataset).items()}
    norms = {name: dataset.norms.get(name, DEFAULT_NORMS.get(name, 8.0)) for name in errors}
    subsets = {"full": np.arange(len(dataset)), **dataset.subsets}
    report = {
        "dataset": dataset.name,
        "model": model_name,
        "boxes": boxes,
        "n": len(dataset),
        **{k: v for k, v in _summary(errors, norms, subsets["full"], pose_pairs).items() if k != "n"},
        "threshold": 8.0,
        "norm_thresholds": norms,
        "subsets": {name: _summary(errors, norms, idx, pose_pairs) for name, idx in subsets.items()},
        "detector_missed": missed if boxes == "detector" else None,
        "seconds": seconds,
    }
    return Faces68Result(report, errors["corners"], errors["pupils"])
