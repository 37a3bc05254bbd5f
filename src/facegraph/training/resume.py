"""What both trainers check before resuming a run."""

from __future__ import annotations

import json
from pathlib import Path

from facegraph.errors import InputError


def check_resumable(state: dict, config: dict, path: Path, older: dict | None = None) -> None:
    """Refuse to resume a checkpoint ``state`` (its ``config``, JSON) with another configuration than
    ``config`` (a dict): only the number of epochs may change. Checkpoints from before configurations
    were stored pass; ``older`` gives settings added since, with the value runs had before them."""
    if "config" not in state:
        return
    stored = {**(older or {}), **json.loads(state["config"]), "epochs": config["epochs"]}
    given = json.loads(json.dumps(config))
    changed = sorted(key for key in given.keys() | stored.keys() if stored.get(key) != given.get(key))
    if changed:
        raise InputError(
            f"the run was trained with other settings ({', '.join(changed)}); resume it as it was", path
        )
