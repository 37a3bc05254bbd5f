"""Evaluation harness: the AFLW2000-3D and 68-point photo reports, and a cross-check on the real data."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from facegraph.datasets import load_aflw2000, load_faces68
from facegraph.demo import sample_path
from facegraph.evaluation.aflw2000 import evaluate_aflw2000
from facegraph.evaluation.faces68 import evaluate_faces68, summary_rows
from facegraph.geometry.crops import box_from_landmarks, crop
from facegraph.image.analyzer import RECROP_PASSES
from facegraph.image.crop_regressor import CropPrediction, CropRegressor
from facegraph.image.detectors import Detection
from facegraph.io import read_image
from facegraph.morphable.bfm import MorphableModel, ParamWhitening
from facegraph.nn.mobilenet_v1 import MobileNetV1
from facegraph.registry import load_model
from tests.conftest import shared
from tests.datasets.test_faces68 import write_photos, write_spiga

BINS = ("0-30", "30-60", "60-90", "mean", "all")
# One face per yaw bin, a second in the first bin (so the mean of the bins differs from the mean over
# faces) and one turned beyond 90 degrees, which is in no bin but counts in "all".
YAWS = np.array([10.0, -20.0, 45.0, 75.0, -95.0], dtype=np.float32)
# The third face is pitched beyond 99 degrees: outside the pose protocol's set.
PITCHES = np.radians([5.0, -10.0, 120.0, 0.0, 20.0])


@pytest.fixture(scope="module")
def model() -> CropRegressor:
    """A small random network decoded by a random 68-point morphable model (no shared data needed)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    morphable = MorphableModel(
        rng.normal(0, 50, 204), rng.normal(0, 1, (204, 40)), rng.normal(0, 1, (204, 10)), np.arange(68)
    )
    network = MobileNetV1({"params": 62}, width=0.25)
    return CropRegressor(network, ParamWhitening(np.zeros(62), np.ones(62)), morphable).eval()


def write_protocol_layout(root: Path) -> None:
    """A five-face 3DDFA layout with noise crops, configs, and .mat files for the pose ground truth."""
    rng = np.random.default_rng(1)
    n = len(YAWS)
    names = [f"image{i:05d}.jpg" for i in range(n)]
    for folder in ("crops-120", "configs", "images"):
        (root / folder).mkdir(parents=True)
    (root / "crops-120.list").write_text("\n".join(names))
    gt = rng.uniform(40, 200, (n, 3, 68)).astype(np.float32)
    configs = {
        "AFLW2000-3D.pts68.npy": gt,
        "AFLW2000-3D-Reannotated.pts68.npy": gt[:, :2] + rng.normal(0, 2, (n, 2, 68)).astype(np.float32),
        "AFLW2000-3D.pose.npy": YAWS,
        "AFLW2000-3D_crop.roi_box.npy": np.tile(np.float32([0, 0, 240, 240]), (n, 1)),
    }
    for file, array in configs.items():
        np.save(root / "configs" / file, array)
    for i, name in enumerate(names):
        Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(root / "crops-120" / name)
        pose_para = [[PITCHES[i], np.radians(YAWS[i]), 0.1, 0, 0, 0, 1]]
        scipy.io.savemat(
            root / "images" / name.replace(".jpg", ".mat"), {"pt3d_68": gt[i], "Pose_Para": pose_para}
        )


def test_aflw2000_report_has_the_protocol_keys_and_consistent_numbers(tmp_path: Path, model) -> None:
    write_protocol_layout(tmp_path)
    dataset = load_aflw2000(tmp_path)

    result = evaluate_aflw2000(dataset, model, "tiny", batch_size=2, progress=False)

    report = result.report
    assert set(report) == {
        "dataset",
        "model",
        "n",
        "boxes",
        "landmarks_from",
        "detector_missed",
        "recrop_passes",
        "nme",
        "nme_reannotated",
        "pose_mae",
        "seconds",
        "faces_per_second",
    }
    assert (report["dataset"], report["model"], report["n"]) == ("aflw2000-3d", "tiny", 5)
    assert (report["boxes"], report["detector_missed"]) == ("gt", None)
    assert report["landmarks_from"] == "3dmm parameters"
    assert set(report["pose_mae"]) == {"yaw", "pitch", "roll", "mean", "n"}
    for key in ("nme", "nme_reannotated"):
        summary = report[key]
        assert set(summary) == set(BINS)
        assert all(math.isfinite(summary[name]) for name in BINS)
        assert summary["mean"] == pytest.approx(np.mean([summary[b] for b in ("0-30", "30-60", "60-90")]))
    nme = result.nme
    assert report["nme"]["0-30"] == pytest.approx(nme[:2].mean())
    assert report["nme"]["30-60"] == pytest.approx(nme[2])
    assert report["nme"]["60-90"] == pytest.approx(nme[3])
    assert report["nme"]["all"] == pytest.approx(nme.mean())
    assert report["nme"]["mean"] != pytest.approx(report["nme"]["all"])
    assert report["faces_per_second"] == pytest.approx(5 / report["seconds"])


class FixedPoseModel:
    """A stand-in crop model that predicts the same head pose (yaw 20, pitch 0, roll 0) for every crop."""

    morphable = None
    input_size = 120

    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        n = len(crops)
        return CropPrediction(np.zeros((n, 62)), np.zeros((n, 68, 3)), np.tile([20.0, 0.0, 0.0], (n, 1)))


def test_aflw2000_pose_error_leaves_out_faces_beyond_99_degrees(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path)
    dataset = load_aflw2000(tmp_path)

    report = evaluate_aflw2000(dataset, FixedPoseModel(), "fixed", progress=False).report

    # Ground truth from the .mat files: yaw = YAWS, pitch = PITCHES in degrees, roll 0.1 rad for all.
    # Face 2 (pitch 120) is left out; faces 0, 1, 3, 4 have yaws 10, -20, 75, -95 and pitches 5, -10,
    # 0, 20. Against a prediction of (20, 0, 0), by hand:
    assert report["pose_mae"]["n"] == 4
    yaw = (10 + 40 + 55 + 115) / 4  # |20 - 10|, |20 + 20|, |20 - 75|, |20 + 95| = 55
    pitch = (5 + 10 + 0 + 20) / 4  # 8.75
    roll = math.degrees(0.1)  # 5.7296
    assert report["pose_mae"]["yaw"] == pytest.approx(yaw)
    assert report["pose_mae"]["pitch"] == pytest.approx(pitch)
    assert report["pose_mae"]["roll"] == pytest.approx(roll)
    assert report["pose_mae"]["mean"] == pytest.approx((yaw + pitch + roll) / 3)


def write_original_layout(root: Path) -> np.ndarray:
    """Five noise photos with their .mat files; faces 0 and 2 are centred at (60, 60), the others at
    (180, 180). Returns the (5, 68, 3) ground truth."""
    rng = np.random.default_rng(2)
    root.mkdir(parents=True)
    gt = rng.uniform(-15, 15, (len(YAWS), 68, 3))
    gt[..., :2] -= gt[..., :2].mean(axis=1, keepdims=True)
    gt[..., :2] += np.where(np.isin(np.arange(len(YAWS)), [0, 2]), 60.0, 180.0)[:, None, None]
    for i in range(len(YAWS)):
        name = f"image{i:05d}"
        Image.fromarray(rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)).save(root / f"{name}.jpg")
        pose_para = [[PITCHES[i], np.radians(YAWS[i]), 0.1, 0, 0, 0, 1]]
        scipy.io.savemat(root / f"{name}.mat", {"pt3d_68": gt[i].T, "Pose_Para": pose_para})
    return gt


def test_aflw2000_with_detector_boxes_scores_the_found_faces_and_counts_the_misses(tmp_path, model):
    """A detection holding the centre of faces 0 and 2 finds them; 1, 3 and 4 (yaw 20, 75, 95) are
    missed, counted by yaw bin and left out of the NME, which is that of crops cut at the detection and
    then, RECROP_PASSES times, around the landmarks just predicted (as ``facegraph image`` does)."""
    gt = write_original_layout(tmp_path / "aflw")
    dataset = load_aflw2000(tmp_path / "aflw")
    detection = [40.0, 40.0, 80.0, 80.0]
    result = evaluate_aflw2000(dataset, model, "tiny", progress=False, detector=FixedDetector([detection]))
    report = result.report
    assert report["boxes"] == "detector"
    assert report["detector_missed"] == {"all": 3, "0-30": 1, "30-60": 0, "60-90": 1}
    crop_box = np.array([60 - 31.5, 60 + 0.14 * 40 - 31.5, 60 + 31.5, 60 + 0.14 * 40 + 31.5])  # 1.58 x 40
    by_hand = []
    for i in (0, 2):
        photo = read_image(tmp_path / "aflw" / f"image{i:05d}.jpg")
        box = crop_box
        for _ in range(1 + RECROP_PASSES):
            points = model.predict(crop(photo, box, 120)[None], box[None]).landmarks[0]
            box = box_from_landmarks(points)
        points = points[:, :2]
        width, height = np.ptp(gt[i, :, :2], axis=0)
        by_hand.append(100 * np.linalg.norm(points - gt[i, :, :2], axis=1).mean() / np.sqrt(width * height))
    assert report["nme"]["0-30"] == pytest.approx(by_hand[0], abs=1e-6)
    assert report["nme"]["30-60"] == pytest.approx(by_hand[1], abs=1e-6)
    assert report["nme"]["all"] == pytest.approx(np.mean(by_hand), abs=1e-6)
    assert np.isinf(result.curves()["original"][[1, 3, 4]]).all()


def test_aflw2000_per_face_errors_do_not_depend_on_the_batch_size(tmp_path: Path, model) -> None:
    write_protocol_layout(tmp_path)
    dataset = load_aflw2000(tmp_path)
    one_batch = evaluate_aflw2000(dataset, model, "tiny", batch_size=128, progress=False)
    uneven = evaluate_aflw2000(dataset, model, "tiny", batch_size=2, progress=False)
    np.testing.assert_allclose(uneven.nme, one_batch.nme, rtol=1e-6)
    np.testing.assert_allclose(uneven.nme_reannotated, one_batch.nme_reannotated, rtol=1e-6)


def write_ibug_folder(root: Path) -> None:
    """The bundled photo with its .pts in two subfolders, a and b."""
    for subset in ("a", "b"):
        (root / subset).mkdir(parents=True)
        for suffix in (".jpg", ".pts"):
            shutil.copy(sample_path(f"einstein{suffix}"), root / subset / f"einstein{suffix}")


def predicted_nme(model: CropRegressor, photo: Path, gt: np.ndarray) -> tuple[float, float]:
    """Inter-ocular and inter-pupil NME (%) of one face cropped at its landmarks' box, by hand."""
    box = box_from_landmarks(gt)
    pred = model.predict(crop(read_image(photo), box, 120)[None], box[None]).landmarks[0, :, :2]
    error = np.linalg.norm(pred - gt, axis=1).mean()
    interocular = np.linalg.norm(gt[36] - gt[45])
    interpupil = np.linalg.norm(gt[36:42].mean(0) - gt[42:48].mean(0))
    return 100 * error / interocular, 100 * error / interpupil


def test_faces68_report_has_the_protocol_numbers_per_subset(tmp_path: Path, model) -> None:
    write_ibug_folder(tmp_path / "tiny300w")
    dataset = load_faces68(tmp_path / "tiny300w")

    result = evaluate_faces68(dataset, model, "tiny", progress=False)

    report = result.report
    keys = {"dataset", "model", "n", "nme_interocular", "nme_interpupil", "auc_8", "fr_8"}
    assert keys <= set(report)
    assert (report["dataset"], report["model"], report["n"]) == ("tiny300w", "tiny", 2)
    assert report["detector_missed"] is None
    assert {name: sub["n"] for name, sub in report["subsets"].items()} == {"full": 2, "a": 1, "b": 1}
    expected = [
        predicted_nme(model, photo, gt) for photo, gt in zip(dataset.photos, dataset.landmarks, strict=True)
    ]
    np.testing.assert_allclose(result.nme_interocular, [e[0] for e in expected], rtol=1e-9)
    np.testing.assert_allclose(result.nme_interpupil, [e[1] for e in expected], rtol=1e-9)
    assert report["nme_interocular"] == pytest.approx(result.nme_interocular.mean())
    assert report["nme_interpupil"] == pytest.approx(result.nme_interpupil.mean())
    assert 0.0 <= report["auc_8"] <= 1.0
    assert report["fr_8"] == float((result.nme_interocular > 8).mean())


class ShiftedGroundTruth:
    """A stand-in crop model whose k-th prediction is the ground truth moved right by ``shifts[k]`` px."""

    morphable = None
    input_size = 120

    def __init__(self, gt: np.ndarray, shifts: list[float]) -> None:
        self.gt, self.shifts = gt, list(shifts)

    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        points = np.concatenate([self.gt, np.zeros((68, 1))], axis=1) + [self.shifts.pop(0), 0.0, 0.0]
        return CropPrediction(np.zeros((1, 62)), points[None], np.zeros((1, 3)))


def test_faces68_auc_and_failure_rate_at_8_percent_by_hand(tmp_path: Path) -> None:
    """Four faces with inter-ocular NMEs of 0, 4, 9 and 12 %: AUC@8 and FR@8 worked out by hand."""
    for k in range(4):
        for suffix in (".jpg", ".pts"):
            shutil.copy(sample_path(f"einstein{suffix}"), tmp_path / f"einstein{k}{suffix}")
    dataset = load_faces68(tmp_path)
    gt = dataset.landmarks[0]
    interocular = np.linalg.norm(gt[36] - gt[45])  # outer eye corners, the 300-W normaliser
    # Every point moved by d px is an NME of 100 d / interocular; the order of faces does not matter.
    model = ShiftedGroundTruth(gt, [e / 100 * interocular for e in (0.0, 4.0, 9.0, 12.0)])

    result = evaluate_faces68(dataset, model, "shifted", progress=False)

    np.testing.assert_allclose(np.sort(result.nme_interocular), [0.0, 4.0, 9.0, 12.0], atol=1e-9)
    # The CED rises by 1/4 at each error; its area from 0 to 8 is (8 - 0) / 4 + (8 - 4) / 4 = 3, over 8.
    assert result.report["auc_8"] == pytest.approx(3 / 8)  # at 10 it would be (10 + 6 + 1) / 40
    assert result.report["fr_8"] == pytest.approx(2 / 4)  # 9 and 12 exceed 8 (at 10: only 12)
    assert result.report["subsets"]["full"]["auc_8"] == pytest.approx(3 / 8)


class FixedDetector:
    """A stand-in face detector that finds the same boxes in every photo."""

    def __init__(self, boxes: list[list[float]]) -> None:
        self.boxes = boxes

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return [Detection(np.array(b, dtype=np.float64), 1.0) for b in self.boxes]


def test_faces68_faces_the_detector_misses_fall_back_to_the_ground_truth_box(tmp_path: Path, model) -> None:
    write_ibug_folder(tmp_path / "tiny300w")
    dataset = load_faces68(tmp_path / "tiny300w")

    missed = evaluate_faces68(dataset, model, "tiny", "detector", FixedDetector([]), progress=False)
    gt_boxes = evaluate_faces68(dataset, model, "tiny", "gt", progress=False)

    assert missed.report["detector_missed"] == 2
    np.testing.assert_allclose(missed.nme_interocular, gt_boxes.nme_interocular)


def test_faces68_uses_the_detection_overlapping_the_face(tmp_path: Path, model) -> None:
    write_ibug_folder(tmp_path / "tiny300w")
    dataset = load_faces68(tmp_path / "tiny300w")
    face = dataset.landmarks[0]
    detector = FixedDetector([[0, 0, 50, 50], [*face.min(0), *face.max(0)]])

    detected = evaluate_faces68(dataset, model, "tiny", "detector", detector, progress=False)
    gt_boxes = evaluate_faces68(dataset, model, "tiny", "gt", progress=False)

    assert detected.report["detector_missed"] == 0
    assert not np.allclose(detected.nme_interocular, gt_boxes.nme_interocular)


def test_faces68_reports_interocular_nme_whatever_norms_db_info_names(tmp_path: Path, model) -> None:
    """MERL-RAV's db_info names only lnd_bbox; the 300-W numbers are still defined for 68 points."""
    write_ibug_folder(tmp_path / "tiny300w")
    dataset = dataclasses.replace(load_faces68(tmp_path / "tiny300w"), norms={"lnd_bbox": 7.0})
    report = evaluate_faces68(dataset, model, "tiny", progress=False).report
    assert math.isfinite(report["nme_interocular"])


class FixedPose:
    """A stand-in crop model that places the box's centre everywhere and always reports one head pose."""

    morphable = None
    input_size = 120

    def __init__(self, pose: list[float]) -> None:
        self.pose = np.array(pose, dtype=np.float64)

    def predict(self, crops: np.ndarray, boxes: np.ndarray) -> CropPrediction:
        centres = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, np.zeros((len(boxes), 1))], axis=1)
        points = np.repeat(centres[:, None], 68, axis=1)
        return CropPrediction(None, points, np.repeat(self.pose[None], len(boxes), axis=0))


def test_faces68_reports_head_pose_errors_per_subset_where_annotated(tmp_path: Path) -> None:
    """Annotated poses (facegraph's signs) [-10, -5, 0] and [-20, -5, 3]; predicting [0, 0, 0] everywhere
    errs by 10 and 20 degrees of yaw, 5 of pitch, 0 and 3 of roll; subset "a" is the second face."""
    write_photos(tmp_path / "ann", write_spiga(tmp_path / "ann", headpose=True))
    dataset = load_faces68(tmp_path / "ann")

    report = evaluate_faces68(dataset, FixedPose([0.0, 0.0, 0.0]), "fixed", progress=False).report

    assert report["pose_mae"] == pytest.approx({"yaw": 15.0, "pitch": 5.0, "roll": 1.5, "mean": 43 / 6})
    assert report["subsets"]["a"]["pose_mae"] == pytest.approx(
        {"yaw": 20.0, "pitch": 5.0, "roll": 3.0, "mean": 28 / 3}
    )
    header, *rows = summary_rows(report)
    assert header[-3:] == ("yaw MAE (deg)", "pitch MAE (deg)", "roll MAE (deg)")
    assert rows[0][0] == "full" and rows[0][-3:] == ("15.00", "5.00", "1.50")


def test_faces68_without_annotated_poses_reports_no_pose_errors(tmp_path: Path) -> None:
    write_photos(tmp_path / "ann", write_spiga(tmp_path / "ann"))
    report = evaluate_faces68(
        load_faces68(tmp_path / "ann"), FixedPose([0, 0, 0]), "fixed", progress=False
    ).report
    assert "pose_mae" not in report
    assert len(summary_rows(report)[0]) == 6


def test_real_3ddfa_v2_nme_matches_a_straightforward_computation() -> None:
    """The harness against 3DDFA's protocol written out by hand, on the first 200 faces.

    The model decodes in float32 and this computation in float64, hence 1e-5: a convention slip (120
    instead of 121 in the y flip, a BGR/RGB swap, a box off by a pixel) moves the NME by far more.
    """
    root = shared("aflw2000-3d")
    basis = shared("bfm/keypoints68-basis")
    model = load_model("3ddfa-v2-mb05", shared("3ddfa-v2"))
    full = load_aflw2000(root)
    n = 200
    subset = dataclasses.replace(
        full,
        names=full.names[:n],
        boxes=full.boxes[:n],
        landmarks=full.landmarks[:n],
        landmarks_reannotated=full.landmarks_reannotated[:n],
        yaw=full.yaw[:n],
        pose=full.pose[:n],
    )

    result = evaluate_aflw2000(subset, model, "3ddfa-v2-mb05", progress=False)

    names = (root / "crops-120.list").read_text().split()[:n]
    bgr = np.stack(
        [np.asarray(Image.open(root / "crops-120" / name).convert("RGB"))[..., ::-1] for name in names]
    )
    images = (torch.from_numpy(bgr.astype(np.float32)).permute(0, 3, 1, 2) - 127.5) / 128
    with torch.inference_mode():
        whitened = model.network(images)["params"].double().numpy()
    params = whitened * np.loadtxt(basis / "param_std_v2.txt") + np.loadtxt(basis / "param_mean_v2.txt")
    shape = (
        np.loadtxt(basis / "u_base.txt")
        + params[:, 12:52] @ np.loadtxt(basis / "w_shp_base.txt").T
        + params[:, 52:] @ np.loadtxt(basis / "w_exp_base.txt").T
    ).reshape(n, 68, 3)
    camera = params[:, :12].reshape(n, 3, 4)
    posed = np.einsum("nij,npj->npi", camera[:, :, :3], shape) + camera[:, None, :, 3]
    x0, y0, x1, y1 = np.load(root / "configs" / "AFLW2000-3D_crop.roi_box.npy")[:n].astype(np.float64).T
    x = posed[..., 0] * ((x1 - x0) / 120)[:, None] + x0[:, None]
    y = (121 - posed[..., 1]) * ((y1 - y0) / 120)[:, None] + y0[:, None]
    gt = np.load(root / "configs" / "AFLW2000-3D.pts68.npy")[:n, :2].astype(np.float64)
    size = np.sqrt(np.ptp(gt[:, 0], axis=1) * np.ptp(gt[:, 1], axis=1))
    expected = 100 * np.hypot(x - gt[:, 0], y - gt[:, 1]).mean(axis=1) / size

    np.testing.assert_allclose(result.nme, expected, rtol=1e-5)
    assert result.report["nme"]["all"] == pytest.approx(expected.mean(), rel=1e-5)
