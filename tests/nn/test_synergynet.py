import math

import pytest
import torch

from facegraph.nn.synergynet import (
    POINT_SCALE,
    REFINE_STEP,
    LandmarkRefiner,
    LandmarksToParams,
    SynergyNet,
    normalise_points,
    wing_loss,
)

IMAGE_DIM = 1280


def _points(batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 60 + 20 * torch.randn(batch, 68, 3, generator=generator)


def test_synergynet_gives_62_parameters_204_landmark_values_and_the_feature():
    network = SynergyNet(width=0.35).eval()
    with torch.no_grad():
        out = network(torch.randn(2, 3, 120, 120))
    assert out["params"].shape == (2, 62)
    assert out["landmarks"].shape == (2, 204)
    assert out["feature"].shape == (2, network.feature_dim) == (2, IMAGE_DIM)


def test_parameters_are_camera_then_shape_then_expression():
    network = SynergyNet(width=0.35).eval()
    images = torch.randn(1, 3, 120, 120)
    with torch.no_grad():
        heads = network.backbone(images)
        params = network(images)["params"]
    assert torch.equal(params[:, :12], heads["camera"])
    assert torch.equal(params[:, 12:52], heads["shape"])
    assert torch.equal(params[:, 52:], heads["expression"])


def _refiner_inputs(batch: int = 2):
    torch.manual_seed(1)
    return _points(batch), torch.rand(batch, IMAGE_DIM), torch.randn(batch, 50)


def test_refiner_keeps_the_shape_of_the_points():
    refiner = LandmarkRefiner(IMAGE_DIM).eval()
    points, feature, codes = _refiner_inputs()
    with torch.no_grad():
        refined = refiner(points, feature, codes)
    assert refined.shape == points.shape
    assert not torch.equal(refined, points)


def test_refiner_head_is_one_convolution_over_point_features_and_the_broadcast_context():
    torch.manual_seed(0)
    refiner = LandmarkRefiner(IMAGE_DIM)
    for module in refiner.modules():  # non-trivial batch-norm statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    refiner.eval()
    points, feature, codes = _refiner_inputs()
    context_dim = 1024 + IMAGE_DIM + 50
    joint = torch.nn.Conv1d(64 + context_dim, 512, 1)
    with torch.no_grad():
        joint.weight.copy_(
            torch.cat([refiner.head_point.weight, refiner.head_context.weight[:, :, None]], dim=1)
        )
        joint.bias.copy_(refiner.head_point.bias)
        x, _ = normalise_points(points)
        local = refiner.local(x)
        pooled = refiner.deep(local).max(dim=2).values
        context = torch.cat([pooled, feature, codes], dim=1)
        joined = torch.cat([local, context[:, :, None].expand(-1, -1, local.shape[2])], dim=1)
        offsets = refiner.head(joint(joined))
        expected = points + REFINE_STEP * POINT_SCALE * offsets.transpose(1, 2)
        got = refiner(points, feature, codes)
    assert torch.allclose(got, expected, atol=1e-4)


def test_refiner_offsets_do_not_depend_on_where_the_face_is():
    refiner = LandmarkRefiner(IMAGE_DIM).eval()
    points, feature, codes = _refiner_inputs()
    shift = torch.tensor([7.0, -3.0, 2.0])
    with torch.no_grad():
        moved = refiner(points + shift, feature, codes)
        refined = refiner(points, feature, codes)
    assert torch.allclose(moved, refined + shift, atol=1e-3)


def test_reverse_network_gives_62_parameters_per_face():
    network = LandmarksToParams().eval()
    with torch.no_grad():
        assert network(_points(3)).shape == (3, 62)


def test_points_are_centred_and_scaled_by_half_the_crop():
    points = _points(2)
    normalised, centre = normalise_points(points)
    assert normalised.shape == (2, 3, 68) and centre.shape == (2, 1, 3)
    assert torch.allclose(normalised.mean(dim=2), torch.zeros(2, 3), atol=1e-5)
    assert torch.allclose(normalised.transpose(1, 2) * POINT_SCALE + centre, points, atol=1e-4)


OMEGA, EPSILON = 10.0, 2.0


def _wing(error: float) -> float:
    loss = wing_loss(torch.tensor([error]), torch.tensor([0.0]), OMEGA, EPSILON)
    return float(loss)


@pytest.mark.parametrize("error", [0.0, 0.5, 3.0, 9.9])
def test_wing_loss_is_logarithmic_below_omega(error):
    assert _wing(error) == pytest.approx(OMEGA * math.log(1 + error / EPSILON), rel=1e-5, abs=1e-6)
    assert _wing(-error) == pytest.approx(_wing(error), rel=1e-6)


@pytest.mark.parametrize("error", [10.0, 15.0, 200.0])
def test_wing_loss_is_linear_above_omega(error):
    c = OMEGA - OMEGA * math.log(1 + OMEGA / EPSILON)
    assert _wing(error) == pytest.approx(error - c, rel=1e-5)


def test_wing_loss_is_continuous_at_omega():
    assert _wing(OMEGA - 1e-4) == pytest.approx(_wing(OMEGA + 1e-4), abs=1e-3)


def test_wing_loss_is_zero_for_equal_inputs():
    points = _points(2)
    assert float(wing_loss(points, points.clone())) == 0.0


def test_wing_loss_averages_over_finite_targets_only_and_gives_finite_gradients():
    target = torch.tensor([[1.0, math.nan, 3.0], [20.0, 0.5, math.nan]])
    prediction = torch.zeros(2, 3, requires_grad=True)
    loss = wing_loss(prediction, target)
    expected = sum(OMEGA * math.log(1 + e / EPSILON) for e in (1.0, 3.0, 0.5))
    expected += 20.0 - (OMEGA - OMEGA * math.log(1 + OMEGA / EPSILON))
    assert float(loss.detach()) == pytest.approx(expected / 4, rel=1e-5)
    loss.backward()
    assert torch.isfinite(prediction.grad).all()
    assert prediction.grad[0, 1] == 0 and prediction.grad[1, 2] == 0
    assert float(wing_loss(torch.zeros(2), torch.full((2,), math.nan))) == 0.0
