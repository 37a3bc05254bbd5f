"""Run a crop-to-3DMM model over AFLW2000-3D and score it with the 3DDFA protocol.

The faces are cut at the protocol's crop boxes (``boxes="gt"``, from the ground truth), or found in the
original photos by a face detector (``boxes="detector"``), as a user's photos are: a face counts as
found when a detection holds the centre of its 68 points, and a face the detector misses has no
landmarks. As ``facegraph image`` does, each found face is cut again around the landmarks predicted
(``RECROP_PASSES`` times) before its final prediction. Its NME is then reported over the found faces,
beside how many were missed in each yaw bin; the curves count a miss as a failure (an error past every
threshold).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from tqdm import tqdm

from facegraph.datasets.aflw2000_3d import Aflw2000
from facegraph.errors import InputError
from facegraph.geometry.crops import box_from_detection, crop
from facegraph.image.analyzer import RECROP_PASSES, predict_recropped
from facegraph.image.crop_regressor import CropPrediction, CropRegressor
from facegraph.image.detectors import FaceDetector
from facegraph.io.images import read_image
from facegraph.metrics.aflw2000 import POSE_LIMIT_DEGREES, aflw2000_nme, summarise_by_yaw, yaw_bin_masks
from facegraph.metrics.pose import pose_mae, within_range


@dataclass
class Aflw2000Result:
    """The JSON report and the per-face errors behind it (for curves)."""

    report: dict
    nme: np.ndarray
    nme_reannotated: np.ndarray | None

    found: np.ndarray | None = None  # with detector boxes: whether each face was found

    def curves(self) -> dict[str, np.ndarray]:
        """Per-face NME against each ground truth, for cumulative error curves (a missed face: inf)."""
        curves = {"original": self.nme}
        if self.nme_reannotated is not None:
            curves["re-annotated"] = self.nme_reannotated
        if self.found is None:
            return curves
        return {name: np.where(self.found, errors, np.inf) for name, errors in curves.items()}


def summary_rows(report: dict) -> list[tuple[str, ...]]:
    """The report's NME by yaw bin as table rows (a header, then one row per ground truth)."""
    bins = ("0-30", "30-60", "60-90", "mean", "all")
    rows = [("ground truth", *bins)]
    for key, label in (("nme", "original"), ("nme_reannotated", "re-annotated")):
        if report[key] is not None:
            rows.append((label, *(f"{report[key][k]:.3f}" for k in bins)))
    return rows


def detector_boxes(
    dataset: Aflw2000, detector: FaceDetector, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Crop boxes cut around each face's detection in its original photo, and whether it was found: the
    best-scoring detection holding the centre of the face's 68 points (a missed face keeps its protocol
    box, so that the batch stays whole; its prediction is not scored)."""
    from facegraph.image.analyzer import detect_faces

    if dataset.images_folder is None:
        raise InputError("--boxes detector needs the original photos (an images/ folder)", dataset.root)
    boxes, found = dataset.boxes.copy(), np.zeros(len(dataset), dtype=bool)
    centres = dataset.landmarks[..., :2].mean(axis=1)
    for i in tqdm(range(len(dataset)), desc="detecting", unit="photo", disable=not progress):
        detections = detect_faces(detector, read_image(dataset.images_folder / dataset.names[i]))
        holding = [
            d for d in detections if (d.box[:2] <= centres[i]).all() and (centres[i] <= d.box[2:]).all()
        ]
        if holding:
            boxes[i], found[i] = box_from_detection(max(holding, key=lambda d: d.score).box), True
    return boxes, found


def evaluate_aflw2000(
    dataset: Aflw2000,
    model: CropRegressor,
    model_name: str,
    batch_size: int = 128,
    progress: bool = True,
    detector: FaceDetector | None = None,
) -> Aflw2000Result:
    """Predict every face of ``dataset`` and build the report (NME in percent, pose MAE in degrees); with
    a ``detector``, from the faces it finds in the original photos (see the module's docstring)."""
    found = None
    if detector is not None:
        boxes, found = detector_boxes(dataset, detector, progress)
        dataset = replace(dataset, boxes=boxes, crops_folder=None)
    landmarks, poses = [], []
    start = time.perf_counter()
    with tqdm(total=len(dataset), desc="AFLW2000-3D", unit="face", disable=not progress) as bar:
        for first in range(0, len(dataset), batch_size):
            indices = range(first, min(first + batch_size, len(dataset)))
            prediction = _predict(dataset, model, indices, recrop=found is not None)
            landmarks.append(prediction.landmarks)
            poses.append(prediction.pose)
            bar.update(len(indices))
    seconds = time.perf_counter() - start
    landmarks, poses = np.concatenate(landmarks), np.concatenate(poses)

    scored = np.ones(len(dataset), dtype=bool) if found is None else found
    nme = aflw2000_nme(landmarks[..., :2], dataset.landmarks[..., :2])
    report: dict = {"dataset": "aflw2000-3d", "model": model_name, "n": len(dataset)}
    report["boxes"] = "gt" if found is None else "detector"
    report["landmarks_from"] = _landmarks_from(model)
    report["detector_missed"] = None if found is None else _missed_by_bin(found, dataset.yaw)
    report["recrop_passes"] = 0 if found is None else RECROP_PASSES
    report["nme"] = summarise_by_yaw(nme[scored], dataset.yaw[scored])
    nme_re = None
    if dataset.landmarks_reannotated is not None:
        nme_re = aflw2000_nme(landmarks[..., :2], dataset.landmarks_reannotated)
        report["nme_reannotated"] = summarise_by_yaw(nme_re[scored], dataset.yaw[scored])
    else:
        report["nme_reannotated"] = None
    if dataset.pose is not None:
        keep = within_range(dataset.pose, POSE_LIMIT_DEGREES) & scored
        report["pose_mae"] = {**pose_mae(poses[keep], dataset.pose[keep]), "n": int(keep.sum())}
    else:
        report["pose_mae"] = None
    report["seconds"] = seconds
    report["faces_per_second"] = len(dataset) / seconds
    return Aflw2000Result(report, nme, nme_re, found)


def _predict(dataset: Aflw2000, model: CropRegressor, indices: range, recrop: bool) -> CropPrediction:
    """The model's prediction for faces ``indices``, at their boxes; with ``recrop``, as the photo
    pipeline gives it (cut again around the landmarks predicted)."""
    boxes = dataset.boxes[indices.start : indices.stop]
    if not recrop:
        return model.predict(np.stack([dataset.crop(i) for i in indices]), boxes)
    photos = [read_image(dataset.images_folder / dataset.names[i]) for i in indices]

    def cut(at: np.ndarray) -> np.ndarray:
        return np.stack([crop(photo, box, model.input_size) for photo, box in zip(photos, at, strict=True)])

    return predict_recropped(model, cut, boxes)[1]


def _landmarks_from(model: CropRegressor) -> str:
    if getattr(model, "dimensions", 3) == 2:
        return "2d landmark model"
    return "3dmm parameters" if model.morphable is not None else "landmark head"


def _missed_by_bin(found: np.ndarray, yaw: np.ndarray) -> dict[str, int]:
    """How many faces the detector missed, in all and in each |yaw| bin."""
    missed = {name: int((~found & mask).sum()) for name, mask in yaw_bin_masks(yaw).items()}
    return {"all": int((~found).sum()), **missed}
