"""Resuming a run: only the number of epochs may change, including settings added after the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facegraph.errors import InputError
from facegraph.training.loop import check_resumable

OLDER = {"whitening": "plain"}  # a setting the stored run predates, and the value it trained with


def test_a_run_resumes_with_more_epochs_and_the_value_it_had_for_a_newer_setting():
    state = {"config": json.dumps({"epochs": 4, "lr": 1e-3})}
    check_resumable(state, {"epochs": 8, "lr": 1e-3, "whitening": "plain"}, Path("last.pt"), older=OLDER)


@pytest.mark.parametrize(
    ("given", "named"), [({"whitening": "augmented"}, "whitening"), ({"lr": 1e-2}, "lr")]
)
def test_a_run_refuses_other_settings_and_names_them(given, named):
    state = {"config": json.dumps({"epochs": 4, "lr": 1e-3})}
    config = {"epochs": 8, "lr": 1e-3, "whitening": "plain", **given}
    with pytest.raises(InputError, match=f"other settings \\({named}\\)"):
        check_resumable(state, config, Path("last.pt"), older=OLDER)
