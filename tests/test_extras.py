"""A command that needs an optional dependency the install lacks names the extra to install."""

from __future__ import annotations

import sys

import pytest

from facegraph.cli import main
from facegraph.errors import InputError
from facegraph.extras import require
from tests.image.test_synergynet_model import write_random_synergynet


def test_a_missing_module_names_its_extra():
    with pytest.raises(
        InputError, match=r"ONNX export needs the 'export' extra .*pip install 'facegraph\[export\]'"
    ):
        require("facegraph_no_such_module", "export", "ONNX export")


def test_an_installed_module_is_returned():
    assert require("json", "export", "nothing").dumps([1]) == "[1]"


def test_onnx_export_without_the_extra_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    weights = write_random_synergynet(tmp_path / "w.safetensors")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if facegraph[export] were not installed
    assert main(["export", "onnx", str(tmp_path / "m.onnx"), "--weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'facegraph[export]'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_synthetic_scans_without_the_train_extra_say_so(monkeypatch):
    from facegraph.datasets.synthetic_faces import _decimate

    monkeypatch.setitem(sys.modules, "fast_simplification", None)
    with pytest.raises(InputError, match=r"facegraph\[train\]"):
        _decimate(None, None, 0.5)
