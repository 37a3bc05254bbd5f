"""The AFLW2000-3D protocol of 3DDFA: NME by |yaw| bin, normalised by the ground-truth box.

NME uses the x, y of the 68 points, normalised by sqrt(w * h) of the ground-truth landmarks' box.
Faces are binned by |yaw| into [0, 30], (30, 60], (60, 90]; the 7 faces turned further than 90
degrees fall in no bin. The reported mean is the mean of the three bin means; "all" is the mean over
every face. (Putting the 7 in the last bin, as some published code does, makes that bin's and the
mean's errors larger.)
Head pose is scored over the faces whose three ground-truth angles are all within +-99 degrees
(1,969 of 2,000).
"""

from __future__ import annotations

import numpy as np

from facegraph.metrics.landmarks import landmark_box_size, nme

YAW_BINS = ("0-30", "30-60", "60-90")
POSE_LIMIT_DEGREES = 99.0


def yaw_bin_masks(yaw_degrees: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of the three |yaw| bins."""
    yaw = np.abs(np.asarray(yaw_degrees, dtype=np.float64))
    return {"0-30": yaw <= 30, "30-60": (yaw > 30) & (yaw <= 60), "60-90": (yaw > 60) & (yaw <= 90)}


def aflw2000_nme(pred_xy: np.ndarray, gt_xy: np.ndarray) -> np.ndarray:
    """(N,) NME in percent of (N, 68, 2) predictions against (N, 68, 2) ground truth."""
    gt_xy = np.asarray(gt_xy, dtype=np.float64)[..., :2]
    return nme(np.asarray(pred_xy, dtype=np.float64)[..., :2], gt_xy, landmark_box_size(gt_xy))


def summarise_by_yaw(per_face: np.ndarray, yaw_degrees: np.ndarray) -> dict[str, float]:
    """{"0-30", "30-60", "60-90", "mean" (of the bin means), "all"} from per-face values.

    A bin with no face has a NaN mean, and so has the mean of the bins then.
    """
    per_face = np.asarray(per_face, dtype=np.float64)
    summary = {
        name: float(per_face[mask].mean()) if mask.any() else float("nan")
        for name, mask in yaw_bin_masks(yaw_degrees).items()
    }
    summary["mean"] = float(np.mean([summary[name] for name in YAW_BINS]))
    summary["all"] = float(per_face.mean())
    return summary
