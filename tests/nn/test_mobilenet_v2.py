import pytest
import torch

from facegraph.nn.mobilenet_v2 import MobileNetV2

HEADS = {"camera": 12, "shape": 40, "expression": 10}


@pytest.mark.parametrize("width", [0.35, 1.0])
def test_forward_gives_the_pooled_feature_and_every_head(width):
    network = MobileNetV2(HEADS, width=width).eval()
    with torch.no_grad():
        out = network(torch.randn(2, 3, 120, 120))
    assert set(out) == {"feature", *HEADS}
    assert out["feature"].shape == (2, network.feature_dim)
    for name, n in HEADS.items():
        assert out[name].shape == (2, n)


def test_width_one_is_the_published_network():
    network = MobileNetV2(HEADS)
    assert network.feature_dim == 1280
    # torchvision's MobileNetV2 has 2.22M parameters before its classifier; the heads add 1280 x 62 + 62.
    n_parameters = sum(p.numel() for p in network.parameters())
    assert 2.2e6 < n_parameters < 2.4e6


def test_narrow_networks_keep_the_1280_feature():
    assert MobileNetV2(HEADS, width=0.35).feature_dim == 1280


def test_a_crop_gives_the_same_outputs_alone_and_in_a_batch():
    torch.manual_seed(0)
    network = MobileNetV2(HEADS, width=0.35).eval()
    crops = torch.randn(3, 3, 120, 120)
    with torch.no_grad():
        batch = network(crops)
        alone = network(crops[1:2])
    for name in ("feature", *HEADS):
        assert torch.allclose(alone[name][0], batch[name][1], atol=1e-5)
    assert not torch.allclose(batch["feature"][0], batch["feature"][1])
