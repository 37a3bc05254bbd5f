"""Metrics on cases worked out by hand."""

import numpy as np
import pytest

from facegraph.metrics import (
    aflw2000_nme,
    auc,
    box_diagonal,
    box_size,
    ced,
    centres_distance,
    failure_rate,
    landmark_box_size,
    mean_errors_over,
    mesh_landmark_errors,
    nme,
    pair_distance,
    point_errors,
    pose_mae,
    summarise_by_yaw,
    within_range,
    yaw_bin_masks,
)


def test_nme_is_mean_point_error_over_the_norm_in_percent():
    gt = np.zeros((1, 4, 2))
    pred = gt.copy()
    pred[0, :, 0] = [3, 0, 0, 1]  # errors 3, 0, 0, 1 -> mean 1
    assert nme(pred, gt, np.array([50.0])) == pytest.approx([2.0])


def test_nme_ignores_invisible_points():
    gt = np.zeros((1, 2, 2))
    pred = np.array([[[4.0, 0.0], [100.0, 0.0]]])
    assert nme(pred, gt, np.array([4.0]), visible=np.array([[True, False]])) == pytest.approx([100.0])


def test_point_errors_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        point_errors(np.zeros((1, 68, 2)), np.zeros((1, 67, 2)))


def test_normalising_distances():
    gt = np.zeros((1, 68, 2))
    gt[0, 36] = [10, 20]
    gt[0, 45] = [40, 60]  # 30-40-50 triangle
    assert pair_distance(gt, 36, 45) == pytest.approx([50.0])
    gt[0, 0:2] = [[0, 0], [2, 0]]
    gt[0, 2:4] = [[10, 0], [12, 0]]
    assert centres_distance(gt, [0, 1], [2, 3]) == pytest.approx([10.0])
    boxes = np.array([[0, 0, 4, 9], [1, 1, 4, 5]])
    assert box_size(boxes) == pytest.approx([6.0, np.sqrt(12)])
    assert box_diagonal(boxes) == pytest.approx([np.hypot(4, 9), 5.0])


def test_landmark_box_size_uses_only_visible_points():
    gt = np.array([[[0.0, 0.0], [4.0, 9.0], [100.0, 100.0]]])
    assert landmark_box_size(gt) == pytest.approx([100.0])
    assert landmark_box_size(gt, np.array([[True, True, False]])) == pytest.approx([6.0])


def test_ced_auc_and_failure_rate():
    errors = np.array([1.0, 2.0, 3.0, 10.0])
    assert ced(errors, [0.5, 2.0, 9.9, 10.0]).tolist() == [0.0, 0.5, 0.75, 1.0]
    # area under the step curve on [0, 4], over 4: faces contribute (4-1)+(4-2)+(4-3)+0 = 6 -> 6/4/4
    assert auc(errors, 4.0) == pytest.approx(6 / 16)
    assert failure_rate(errors, 3.0) == pytest.approx(0.25)
    assert auc(np.zeros(3), 8.0) == pytest.approx(1.0)


def test_auc_agrees_with_fine_numerical_integration():
    errors = np.random.default_rng(0).gamma(2.0, 2.0, 500)
    grid = np.linspace(0, 8, 80001)
    assert auc(errors, 8.0) == pytest.approx(np.trapezoid(ced(errors, grid), grid) / 8, abs=1e-4)


def test_yaw_bins_follow_the_protocol_edges():
    masks = yaw_bin_masks(np.array([0, -30, 30.01, 60, -61, 90, 95]))
    assert masks["0-30"].tolist() == [True, True, False, False, False, False, False]
    assert masks["30-60"].tolist() == [False, False, True, True, False, False, False]
    assert masks["60-90"].tolist() == [False, False, False, False, True, True, False]


def test_summary_mean_is_the_mean_of_bin_means_and_all_counts_every_face():
    per_face = np.array([1.0, 1.0, 1.0, 4.0, 7.0, 100.0])
    yaw = np.array([5, 10, 20, 45, 70, 95])
    summary = summarise_by_yaw(per_face, yaw)
    assert summary["0-30"] == 1.0 and summary["30-60"] == 4.0 and summary["60-90"] == 7.0
    assert summary["mean"] == pytest.approx(4.0)
    assert summary["all"] == pytest.approx(114 / 6)


def test_aflw2000_nme_normalises_by_the_ground_truth_box():
    gt = np.zeros((1, 68, 2))
    gt[0, :, 0] = np.linspace(0, 40, 68)
    gt[0, :, 1] = np.linspace(0, 90, 68)  # box 40 x 90 -> sqrt = 60
    pred = gt + np.array([3.0, 4.0])  # every point 5 px off
    assert aflw2000_nme(pred, gt) == pytest.approx([100 * 5 / 60])


def test_aflw2000_nme_normalises_by_the_ground_truth_box_not_the_predictions():
    """A prediction twice the ground truth's size: its box (80 x 180) differs from the ground truth's."""
    gt = np.zeros((1, 68, 2))
    gt[0, :, 0] = np.linspace(0, 40, 68)
    gt[0, :, 1] = np.linspace(0, 90, 68)  # box 40 x 90 -> sqrt(40 * 90) = 60
    pred = 2 * gt
    # Point i lies a fraction t_i = i / 67 along the diagonal, so it is off by t_i * sqrt(40^2 + 90^2);
    # the mean of t_i is 1/2. Normalised by the ground truth's 60 px (the prediction's box would give 120):
    expected = 100 * 0.5 * np.sqrt(40**2 + 90**2) / 60  # 82.07 %
    assert aflw2000_nme(pred, gt) == pytest.approx([expected])


def test_pose_mae_wraps_angles():
    pred = np.array([[179.0, 10.0, 0.0], [0.0, 0.0, 0.0]])
    gt = np.array([[-179.0, 0.0, 4.0], [0.0, 0.0, 0.0]])
    mae = pose_mae(pred, gt)
    assert mae["yaw"] == pytest.approx(1.0) and mae["pitch"] == pytest.approx(5.0)
    assert mae["roll"] == pytest.approx(2.0) and mae["mean"] == pytest.approx(8 / 3)


def test_within_range_needs_all_three_angles_inside():
    assert within_range(np.array([[10, 99, -99], [10, 99.5, 0]])).tolist() == [True, False]


def test_mean_errors_over_the_51_inner_points():
    errors = np.zeros((1, 68))
    errors[0, :17] = 10.0
    assert mean_errors_over(errors) == pytest.approx([170 / 68])
    assert mean_errors_over(errors, range(17, 68)) == pytest.approx([0.0])


def test_mesh_landmark_errors_over_68_and_the_51_inner_points():
    gt = np.zeros((2, 68, 3))
    pred = gt.copy()
    pred[0, :17, 2] = 3.0  # jaw off by 3 mm on the first scan
    pred[1, 30, 0] = 4.0  # nose tip off by 4 mm on the second
    errors = mesh_landmark_errors(pred, gt)
    assert errors["mean_68"] == pytest.approx([51 / 68, 4 / 68])
    assert errors["mean_51"] == pytest.approx([0.0, 4 / 51])
    assert errors["per_landmark"][0] == pytest.approx(1.5) and errors["per_landmark"][30] == pytest.approx(
        2.0
    )
