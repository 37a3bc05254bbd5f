import pytest
import torch

from facegraph.devices import pick_device
from facegraph.errors import InputError

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@no_gpu
def test_no_request_means_the_cpu_without_a_gpu():
    assert pick_device() == torch.device("cpu")
    assert pick_device(None) == torch.device("cpu")


@gpu
def test_no_request_means_the_first_gpu_with_one():
    assert pick_device() == torch.device("cuda", 0)


def test_a_named_cpu_is_honoured():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("requested", ["cuda", "cuda:0", "cuda:1", torch.device("cuda")])
def test_cuda_without_a_gpu_is_an_input_error(requested):
    with pytest.raises(InputError, match="no CUDA GPU is available") as error:
        pick_device(requested)
    assert len(str(error.value).splitlines()) == 1
    assert str(error.value).startswith(f"--device {requested}:")


@gpu
def test_cuda_is_honoured_with_a_gpu():
    assert pick_device("cuda") == torch.device("cuda", torch.cuda.current_device())
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(InputError, match="no such CUDA GPU"):
        pick_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("requested", ["nonsense", "", "cuda:x", "CPU"])
def test_an_unknown_device_is_an_input_error(requested):
    with pytest.raises(InputError, match="unknown device") as error:
        pick_device(requested)
    assert len(str(error.value).splitlines()) == 1


def test_a_device_type_facegraph_does_not_run_on_is_an_input_error():
    with pytest.raises(InputError, match="unsupported device"):
        pick_device("meta")


def test_cuda_indices_are_checked_against_the_gpus_there_are(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert pick_device() == torch.device("cuda", 0)
    assert pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InputError, match=r"^--device cuda:2: no such CUDA GPU \(2 available"):
        pick_device("cuda:2")


@no_gpu
def test_the_models_follow_the_one_policy():
    from facegraph.image.analyzer import FaceAnalyzer
    from facegraph.image.synergynet import load_synergynet
    from facegraph.mesh.landmarker import MeshLandmarker

    assert MeshLandmarker().device == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device"):
        MeshLandmarker(device="nonsense")
    analyzer = FaceAnalyzer(load_synergynet(None, None))
    assert next(analyzer.model.network.parameters()).device == torch.device("cpu")
    with pytest.raises(InputError, match="no CUDA GPU"):
        FaceAnalyzer(load_synergynet(None, None), device="cuda")
    with pytest.raises(InputError, match="facegraph-mesh is for 3D scans, not photos"):
        FaceAnalyzer("facegraph-mesh")
