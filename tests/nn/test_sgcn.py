"""The stratified GCN: its graph convolutions against the dense GCN formula, its decoder and its loss."""

from __future__ import annotations

import math

import pytest
import torch

from facegraph.nn.sgcn import (
    SgcnConfig,
    StratifiedGcn,
    adaptive_wing_loss,
    decode_heatmaps,
    gaussian_targets,
    local_convolution,
    neighbour_mean_operator,
    super_point_convolution,
)


def improved_gcn(adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """GCNConv(improved=True) aggregation, densely: D^-1/2 (A + 2I) D^-1/2 x with D the in-degrees.

    adjacency[i, j] = 1 for an edge j -> i (j's feature flows into i).
    """
    a_hat = adjacency + 2.0 * torch.eye(len(adjacency), dtype=x.dtype)
    scale = a_hat.sum(dim=1).rsqrt()
    return scale[:, None] * a_hat * scale[None, :] @ x


def random_knn(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """(n, k) distinct neighbours per point, never the point itself."""
    rows = []
    for i in range(n):
        others = torch.cat([torch.arange(i), torch.arange(i + 1, n)])
        rows.append(others[torch.randperm(n - 1, generator=generator)[:k]])
    return torch.stack(rows)


def test_local_convolution_is_the_normalised_improved_gcn_on_the_knn_graph():
    generator = torch.Generator().manual_seed(0)
    batch, n, k, channels = 2, 12, 4, 5
    x = torch.randn(batch, n, channels, generator=generator, dtype=torch.float64)
    neighbours = torch.stack([random_knn(n, k, generator) for _ in range(batch)])
    result = local_convolution(x, neighbour_mean_operator(neighbours, x.dtype))
    for b in range(batch):
        adjacency = torch.zeros(n, n, dtype=torch.float64)
        adjacency[torch.arange(n)[:, None], neighbours[b]] = 1.0
        assert torch.equal(adjacency.sum(dim=1) + 2.0, torch.full((n,), k + 2.0, dtype=torch.float64))
        torch.testing.assert_close(result[b], improved_gcn(adjacency, x[b]))


def test_super_point_convolution_is_the_improved_gcn_on_the_complete_super_graph():
    generator = torch.Generator().manual_seed(1)
    batch, n, s, channels = 2, 15, 5, 3
    x = torch.randn(batch, n, channels, generator=generator, dtype=torch.float64)
    supers = torch.stack([torch.randperm(n, generator=generator)[:s] for _ in range(batch)])
    result = super_point_convolution(x, supers)
    for b in range(batch):
        adjacency = torch.zeros(n, n, dtype=torch.float64)
        adjacency[supers[b][:, None], supers[b][None, :]] = 1.0
        adjacency.fill_diagonal_(0.0)  # the only self-loops are GCNConv's own, of weight 2
        torch.testing.assert_close(result[b], improved_gcn(adjacency, x[b]))
        others = torch.ones(n, dtype=torch.bool)
        others[supers[b]] = False
        assert torch.equal(result[b][others], x[b][others])


@pytest.mark.parametrize("branch", ["super", "pool"])
def test_stratified_gcn_gives_one_heatmap_per_landmark_at_every_point(branch):
    generator = torch.Generator().manual_seed(2)
    batch, n, k = 2, 40, 6
    model = StratifiedGcn(SgcnConfig(hidden=8, depth=3, neighbours=k, global_branch=branch))
    features = torch.randn(batch, n, 6, generator=generator)
    neighbours = torch.stack([random_knn(n, k, generator) for _ in range(batch)])
    supers = torch.stack([torch.randperm(n, generator=generator)[:10] for _ in range(batch)])
    heat = model(features, neighbours, supers)
    assert heat.shape == (batch, 68, n)
    assert torch.isfinite(heat).all()


def test_stratified_gcn_super_branch_needs_super_points_and_the_branch_must_be_known():
    model = StratifiedGcn(SgcnConfig(hidden=8, depth=2, neighbours=4, global_branch="super"))
    with pytest.raises(ValueError, match="super points"):
        model(torch.zeros(1, 10, 6), torch.zeros(1, 10, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="global branch"):
        StratifiedGcn(SgcnConfig(global_branch="mean"))


def test_decode_heatmaps_returns_the_point_that_dominates_a_channel():
    generator = torch.Generator().manual_seed(3)
    points = torch.randn(2, 30, 3, generator=generator, dtype=torch.float64)
    hottest = torch.tensor([[4, 17, 29], [0, 4, 11]])
    heat = torch.zeros(2, 3, 30, dtype=torch.float64)
    heat.scatter_(2, hottest[..., None], 100.0)
    landmarks, indices = decode_heatmaps(heat, points, top=7)
    assert landmarks.shape == (2, 3, 3) and indices.shape == (2, 3, 7)
    assert torch.equal(indices[..., 0], hottest)
    expected = torch.stack([points[b, hottest[b]] for b in range(2)])
    torch.testing.assert_close(landmarks, expected, atol=1e-12, rtol=0)


def test_decode_heatmaps_weights_the_top_points_by_their_softmax():
    points = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [9.0, 9.0, 9.0]]])
    heat = torch.tensor([[[1.0, 1.0, -50.0]]])
    landmarks, _ = decode_heatmaps(heat, points, top=2)
    torch.testing.assert_close(landmarks, torch.tensor([[[1.0, 0.0, 0.0]]]))


def test_gaussian_targets_are_one_at_the_landmark_and_exp_minus_half_at_sigma():
    sigma = 0.25
    landmarks = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    points = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0 + sigma], [0.0, 2 * sigma, 0.0]]])
    target = gaussian_targets(points, landmarks, sigma)
    assert target.shape == (1, 2, 3)
    assert target[0, 0, 0] == 1.0
    torch.testing.assert_close(target[0, 0, 1], torch.tensor(math.exp(-0.5)))
    torch.testing.assert_close(target[0, 1, 2], torch.tensor(math.exp(-2.0)))  # at 2 sigma


def test_adaptive_wing_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    target = torch.tensor([0.0, 0.05, 0.3, 0.9, 1.0])
    assert adaptive_wing_loss(target.clone(), target).item() == 0.0
    for error in (0.01, -0.2, 0.7, -1.5):
        assert adaptive_wing_loss(target + error, target).item() > 0.0


@pytest.mark.parametrize("y", [0.0, 0.05, 0.5, 1.0])
def test_adaptive_wing_loss_is_continuous_where_it_turns_linear(y):
    theta, step = 0.5, 1e-8
    target = torch.tensor([y], dtype=torch.float64)
    below = adaptive_wing_loss(target + theta - step, target, theta=theta)
    above = adaptive_wing_loss(target + theta + step, target, theta=theta)
    assert below.item() > 0.0
    assert abs(above.item() - below.item()) < 1e-4
    assert above.item() > below.item()


def test_adaptive_wing_loss_weights_foreground_points_by_fifty_y_plus_one():
    for y, weight in ((0.5, 26.0), (0.9, 46.0), (0.05, 1.0)):
        target = torch.tensor([y], dtype=torch.float64)
        prediction = target + 0.2
        weighted = adaptive_wing_loss(prediction, target)
        unweighted = adaptive_wing_loss(prediction, target, foreground_weight=0.0)
        torch.testing.assert_close(weighted / unweighted, torch.tensor(weight, dtype=torch.float64))
