import pytest
import torch
from torch import nn

from facegraph.nn.fusion import fold_batchnorm
from facegraph.nn.mobilenet_v1 import MobileNetV1
from facegraph.nn.synergynet import SynergyNet


def with_trained_statistics(network: nn.Module) -> nn.Module:
    """Give every BatchNorm running statistics and an affine map far from the identity, as training does."""
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.1)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return network.eval()


@pytest.mark.parametrize(
    "build", [lambda: SynergyNet(0.35), lambda: MobileNetV1({"params": 62, "landmarks": 136}, width=0.5)]
)
def test_folded_networks_compute_the_same_outputs_without_batchnorm(build):
    network = with_trained_statistics(build())
    folded = fold_batchnorm(network)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    images = torch.randn(3, 3, 120, 120)
    with torch.inference_mode():
        expected, actual = network(images), folded(images)
    assert expected.keys() == actual.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-4)


def test_the_original_network_is_left_as_it_was_mode_included():
    network = with_trained_statistics(SynergyNet(0.35)).train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    fold_batchnorm(network)
    after = network.state_dict()
    assert network.training and all(m.training for m in network.modules())
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
