"""Shared test fixtures: where ../shared/data is, and skipping when it is absent.

A fresh clone without ../shared skips the tests that need it, saying why. When ../shared/data is there,
or on CI (``CI`` set, where it always is), such a skip fails instead: a renamed or missing folder must
not turn the data tests off while the suite stays green.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEVELOPER_BFM = os.environ.get("FACEGRAPH_BFM")  # a dense BFM the developer named, for the tests of it
SHARED_MARK = "shared/data"  # every skip for missing shared data names the folder


@pytest.fixture(autouse=True)
def no_bfm_from_this_machine(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No BFM named by $FACEGRAPH_BFM and an empty per-user data folder, so that a BFM on this machine
    (named, or installed by `facegraph setup bfm`) cannot change what the tests see; tests of a BFM
    name their own."""
    monkeypatch.delenv("FACEGRAPH_BFM", raising=False)
    monkeypatch.setenv("FACEGRAPH_DATA", str(tmp_path_factory.getbasetemp() / "no-installed-data"))


def shared(relative: str) -> Path:
    """A path under ../shared/data, skipping the calling test (saying why) when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not beside this checkout)")
    return path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """With ../shared/data present, or on CI, a skip for missing shared data is a failure."""
    outcome = yield
    report = outcome.get_result()
    expected = os.environ.get("CI") or SHARED_DATA.is_dir()
    if expected and report.skipped and SHARED_MARK in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"../shared/data should be complete here, but: {report.longrepr[-1]}"
