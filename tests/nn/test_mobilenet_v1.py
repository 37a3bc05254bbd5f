import pytest
import torch

from facegraph.nn.mobilenet_v1 import MobileNetV1, tddfa_v2_key
from tests.conftest import shared


@pytest.mark.parametrize("width, features", [(0.5, 512), (1.0, 1024)])
def test_widths_give_their_feature_size_and_head_outputs(width, features):
    network = MobileNetV1({"params": 62, "landmarks": 136}, width=width).eval()
    out = network(torch.zeros(2, 3, 120, 120))
    assert network.feature_dim == features
    assert out["params"].shape == (2, 62) and out["landmarks"].shape == (2, 136)


def test_3ddfa_v2_keys_map_onto_every_parameter_and_buffer():
    network = MobileNetV1({"params": 62, "landmarks": 136}, width=0.5)
    names = {"module.conv1.weight", "module.bn1.running_mean", "module.fc_param.bias", "module.fc_lm.weight"}
    names |= {f"module.dw{b}.{part}.weight" for b in ("2_1", "5_6", "6") for part in ("conv_dw", "bn_sep")}
    mapped = {tddfa_v2_key(n) for n in names}
    assert mapped <= set(network.state_dict())
    assert tddfa_v2_key("module.dw6.conv_sep.weight") == "blocks.12.pointwise.weight"
    with pytest.raises(KeyError):
        tddfa_v2_key("module.classifier.weight")


def test_the_released_checkpoint_loads_completely():
    raw = torch.load(shared("3ddfa-v2/mb05_120x120.pth"), map_location="cpu", weights_only=True)
    network = MobileNetV1({"params": 62, "landmarks": 136}, width=0.5)
    network.load_state_dict({tddfa_v2_key(k): v for k, v in raw["state_dict"].items()}, strict=True)
