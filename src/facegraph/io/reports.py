"""JSON reports: what the commands write with ``--json``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from facegraph.io.atomic import write_atomic
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY


def finite_or_null(value: object) -> object:
    """NaN and infinities (e.g. the mean of an empty yaw bin) become JSON null, which parsers accept."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_text(report: dict) -> str:
    """The report as indented JSON text."""
    return json.dumps(finite_or_null(report), indent=2)


def write_report(path: str | Path, report: dict) -> None:
    """Write the report as JSON, atomically, with facegraph's generator mark first."""
    write_atomic(path, report_text({GENERATOR_KEY: GENERATOR, **report}) + "\n")
