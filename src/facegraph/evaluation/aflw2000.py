"""Run a crop-to-3DMM model over AFLW2000-3D and score it with the 3DDFA protocol."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from facegraph.datasets.aflw2000_3d import Aflw2000
from facegraph.image.crop_regressor import CropRegressor
from facegraph.metrics.aflw2000 import POSE_LIMIT_DEGREES, aflw2000_nme, summarise_by_yaw
from facegraph.metrics.pose import pose_mae, within_range


@dataclass
class Aflw2000Result:
    """The JSON report and the per-face errors behind it (for curves)."""

    report: dict
    nme: np.ndarray
    nme_reannotated: np.ndarray | None

    def curves(self) -> dict[str, np.ndarray]:
        """Per-face NME against each ground truth, for cumulative error curves."""
        curves = {"original": self.nme}
        if self.nme_reannotated is not None:
            curves["re-annotated"] = self.nme_reannotated
        return curves


def summary_rows(report: dict) -> list[tuple[str, ...]]:
    """The report's NME by yaw bin as table rows (a header, then one row per ground truth)."""
    bins = ("0-30", "30-60", "60-90", "mean", "all")
    rows = [("ground truth", *bins)]
    for key, label in (("nme", "original"), ("nme_reannotated", "re-annotated")):
        if report[key] is not None:
            rows.append((label, *(f"{report[key][k]:.3f}" for k in bins)))
    return rows


def evaluate_aflw2000(
    dataset: Aflw2000, model: CropRegressor, model_name: str, batch_size: int = 128, progress: bool = True
) -> Aflw2000Result:
    """Predict every face of ``dataset`` and build the report (NME in percent, pose MAE in degrees)."""
    landmarks, poses = [], []
    start = time.perf_counter()
    with tqdm(total=len(dataset), desc="AFLW2000-3D", unit="face", disable=not progress) as bar:
        for first in range(0, len(dataset), batch_size):
            indices = range(first, min(first + batch_size, len(dataset)))
            crops = np.stack([dataset.crop(i) for i in indices])
            prediction = model.predict(crops, dataset.boxes[first : indices.stop])
            landmarks.append(prediction.landmarks)
            poses.append(prediction.pose)
            bar.update(len(indices))
    seconds = time.perf_counter() - start
    landmarks, poses = np.concatenate(landmarks), np.concatenate(poses)

    nme = aflw2000_nme(landmarks[..., :2], dataset.landmarks[..., :2])
    report: dict = {"dataset": "aflw2000-3d", "model": model_name, "n": len(dataset)}
    report["landmarks_from"] = "3dmm parameters" if model.morphable is not None else "landmark head"
    report["nme"] = summarise_by_yaw(nme, dataset.yaw)
    nme_re = None
    if dataset.landmarks_reannotated is not None:
        nme_re = aflw2000_nme(landmarks[..., :2], dataset.landmarks_reannotated)
        report["nme_reannotated"] = summarise_by_yaw(nme_re, dataset.yaw)
    else:
        report["nme_reannotated"] = None
    if dataset.pose is not None:
        keep = within_range(dataset.pose, POSE_LIMIT_DEGREES)
        report["pose_mae"] = {**pose_mae(poses[keep], dataset.pose[keep]), "n": int(keep.sum())}
    else:
        report["pose_mae"] = None
    report["seconds"] = seconds
    report["faces_per_second"] = len(dataset) / seconds
    return Aflw2000Result(report, nme, nme_re)
