"""Robustness suite: run tests/test_robustness.py and report its cases in RESULTS.md ("robustness").

Each case is a bad or unusual input built by the suite, run through the command line; it passes when
the command exits 0 with a correct result, or 2 with one line naming the file and the problem, with no
traceback, no input changed and no temporary file left.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from common import HERE, machine, write_section

ROOT = HERE.parent
SUITE = "tests/test_robustness.py"
GROUPS = {  # the suite's builders, and what their cases feed the commands
    "photo_cases": "photos: empty, truncated, disguised, huge headers, a pixel bomb, odd colour modes",
    "output_cases": "outputs and options: inputs as outputs, unwritable places, users' files, --box, NaN",
    "scan_cases": "scans: empty, random bytes, truncated, disguised, NaN, too small, units, a stray vertex",
    "landmark_cases": "landmark files: empty, truncated, an XML entity bomb, unknown schemes, annotations",
    "weights_cases": "weights: a hostile pickle, NaN tensors, missing tensors, the other model's, truncated",
    "training_cases": "training: no BFM, an earlier run in --out",
}


def outcomes(report: Path) -> tuple[dict[str, str], float]:
    """Each test's outcome (passed, failed, skipped) from pytest's JUnit XML, and the suite's seconds."""
    results, root = {}, ET.parse(report).getroot()
    for case in root.iter("testcase"):
        kinds = {child.tag for child in case}
        outcome = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        results[case.get("name")] = outcome
    return results, float(next(root.iter("testsuite")).get("time"))


def main() -> None:
    sys.path.insert(0, str(ROOT))
    import tests.test_robustness as suite

    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            SUITE,
            f"--junitxml={report}",
        ]
        subprocess.run(command, cwd=ROOT, check=False)
        results, seconds = outcomes(report)
    lines = [
        "## Robustness",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        "| inputs | cases | passed |",
        "|---|---|---|",
    ]
    for builder, what in GROUPS.items():
        names = [f"test_case[{case.name}]" for case in getattr(suite, builder)()]
        lines.append(f"| {what} | {len(names)} | {sum(results.get(n) == 'passed' for n in names)} |")
    signals = {name: outcome for name, outcome in results.items() if not name.startswith("test_case[")}
    passed = sum(outcome == "passed" for outcome in signals.values())
    lines.append(
        f"| signals: SIGTERM while writing a photo, SIGINT at the start | {len(signals)} | {passed} |"
    )
    total, ok = len(results), sum(outcome == "passed" for outcome in results.values())
    lines += [
        f"| **all** | **{total}** | **{ok}** |",
        "",
        "A case passes when the command exits 0 with a correct result, or 2 with one line naming the file",
        "and the problem; with no traceback, no input changed (checksums before and after), nothing",
        "written by a refused command and no temporary file left.",
        "",
        f"The suite took {seconds:.0f} s.",
        "",
        f"Command: `python benchmarks/robustness.py` (runs `pytest {SUITE}`)",
    ]
    write_section("robustness", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
