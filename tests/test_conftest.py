"""The data tests cannot silently stop running on CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
NEEDS_DATA = "from tests.conftest import shared\n\ndef test_needs_data():\n    shared('no-such-folder')\n"


def run_pytest(test_file: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    return subprocess.run(
        [*command, str(test_file)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_missing_shared_folder_fails_on_ci(tmp_path):
    test_file = tmp_path / "test_needs_data.py"
    test_file.write_text(NEEDS_DATA)
    on_ci = run_pytest(test_file, ci=True)
    assert on_ci.returncode == 1 and "1 failed" in on_ci.stdout, on_ci.stdout
    assert "no-such-folder" in on_ci.stdout


def test_a_missing_shared_folder_skips_only_without_shared_data(tmp_path):
    test_file = tmp_path / "test_needs_data.py"
    test_file.write_text(NEEDS_DATA)
    done = run_pytest(test_file, ci=False)
    if SHARED_DATA.is_dir():  # a folder missing from ../shared/data: renamed, or never copied
        assert done.returncode == 1 and "1 failed" in done.stdout, done.stdout
    else:  # a fresh clone without ../shared
        assert done.returncode == 0 and "1 skipped" in done.stdout, done.stdout
