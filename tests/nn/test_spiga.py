"""SPIGA's network: both configurations, the posed mean face as the start, bounded cascade steps, the
window sampling's coordinate frame and SynergyNet's body as the fast configuration's starting point."""

import pytest
import torch

from facegraph.geometry.pinhole import project
from facegraph.nn.spiga import CONFIGS, Spiga, parameter_count, sample_windows
from tests.geometry.test_pinhole import face_like_points


@pytest.fixture(scope="module")
def fast() -> Spiga:
    torch.manual_seed(0)
    return Spiga(CONFIGS["spiga-fast"], face_like_points(), distance=3.0).eval()


def test_the_fast_configuration_stays_within_ten_million_parameters(fast) -> None:
    assert parameter_count(fast) <= 10_000_000


def test_outputs_and_the_start_is_the_mean_face_posed_frontally_at_the_typical_distance(fast) -> None:
    size = CONFIGS["spiga-fast"].input_size
    with torch.no_grad():
        out = fast(torch.randn(2, 3, size, size))
    assert out["pose"].tolist() == [[0, 0, 0, 0, 0, 3.0]] * 2  # the pose head starts at zero
    expected = project(face_like_points(), out["pose"], CONFIGS["spiga-fast"].focal)
    torch.testing.assert_close(out["initial"], expected)
    assert [s.shape for s in out["steps"]] == [(2, 68, 2)] * 3
    assert out["heatmaps"][0].shape == (2, 68, size // 4, size // 4)
    weights = out["attention"][0][0]
    assert weights.shape == (2, 4, 68, 68)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 68))


def test_each_step_moves_a_point_at_most_half_its_window(fast) -> None:
    config = CONFIGS["spiga-fast"]
    for step in fast.steps:
        torch.nn.init.constant_(step.decoder[-1].bias, 100.0)  # saturate every offset
    with torch.no_grad():
        out = fast(torch.randn(1, 3, config.input_size, config.input_size))
    previous = out["initial"]
    for k, points in enumerate(out["steps"]):
        torch.testing.assert_close((points - previous).abs(), torch.full_like(points, config.window(k) / 2))
        previous = points
    for step in fast.steps:
        torch.nn.init.zeros_(step.decoder[-1].bias)


def test_the_cascade_can_start_from_given_landmarks(fast) -> None:
    size = CONFIGS["spiga-fast"].input_size
    start = torch.rand(1, 68, 2) * 0.5 + 0.25
    with torch.no_grad():
        out = fast(torch.randn(1, 3, size, size), initial=start)
    torch.testing.assert_close(out["initial"], start)
    assert (out["steps"][0] - start).abs().max() <= CONFIGS["spiga-fast"].window(0) / 2 + 1e-6


def test_training_reaches_every_parameter() -> None:
    """After one step (the pose head starts at zero, so the backbone's deepest layers wait for it)."""
    torch.manual_seed(0)
    model = Spiga(CONFIGS["spiga-fast"], face_like_points(), distance=3.0).train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):
        optimiser.zero_grad()
        out = model(torch.randn(2, 3, 120, 120))
        loss = sum(s.square().mean() for s in out["steps"]) + out["heatmaps"][0].square().mean()
        (loss + out["pose"].square().mean()).backward()
        optimiser.step()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_windows_are_sampled_in_unit_crop_coordinates() -> None:
    """On a map whose value is the x coordinate of each cell's centre, a window's centre sample reads
    the point's own x and its corners read x -+ half the window."""
    width = 32
    centres = (torch.arange(width) + 0.5) / width
    ramp = centres.expand(width, width)[None, None].contiguous()  # (1, 1, H, W), value = x
    points = torch.tensor([[[0.3, 0.6], [0.71, 0.2]]])
    windows = sample_windows(ramp, points, side=0.25, samples=7)
    assert windows.shape == (2, 1, 7, 7)
    torch.testing.assert_close(windows[:, 0, 3, 3], points[0, :, 0])
    torch.testing.assert_close(windows[:, 0, 3, 0], points[0, :, 0] - 0.125)
    torch.testing.assert_close(windows[:, 0, 3, 6], points[0, :, 0] + 0.125)


def test_the_paper_configuration_builds_as_published() -> None:
    config = CONFIGS["spiga-paper"]
    model = Spiga(config, face_like_points(), distance=3.0).eval()
    shape = (config.input_size, config.stacks, config.map_channels, config.steps, config.layers, config.heads)
    assert shape == (256, 4, 256, 3, 4, 4)
    assert (config.node_dim, config.hidden_dim, config.window_samples) == (512, 256, 7)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert len(out["heatmaps"]) == 3 and out["heatmaps"][0].shape == (1, 68, 64, 64)
    assert [config.window(k) for k in range(3)] == [0.25, 0.125, 0.0625]


def test_synergynets_trained_body_fits_the_fast_backbone() -> None:
    from facegraph.nn.synergynet import SynergyNet

    body = SynergyNet().backbone.body.state_dict()
    model = Spiga(CONFIGS["spiga-fast"], face_like_points(), distance=3.0)
    own = model.backbone.body.state_dict()
    assert all(body[key].shape == value.shape for key, value in own.items())
    model.backbone.body.load_state_dict({key: body[key] for key in own}, strict=True)
