"""What every command shares: output checks, the per-file loop, tables and the common options."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TextIO, TypeVar

from facegraph.errors import InputError

if TYPE_CHECKING:
    from facegraph.io.outputs import OutputPlan

Result = TypeVar("Result")
STDOUT = "-"  # as a --json path: standard output


def plan_outputs(
    args: argparse.Namespace, *files: str | None, inputs: Iterable = (), input_folders: Iterable = ()
) -> OutputPlan:
    """Check, before any work, the files a command will write (None: not asked for; "-": standard
    output) against the output policy of ``facegraph.io.outputs``; add more to the plan returned."""
    from facegraph.io.outputs import OutputPlan

    plan = OutputPlan(inputs, input_folders, overwrite=getattr(args, "overwrite", False))
    for path in files:
        if path not in (None, STDOUT):
            plan.file(path)
    return plan


def check_run_folder(plan: OutputPlan, args: argparse.Namespace) -> Path:
    """A trainer's ``--out``: a folder holding an earlier run is continued with --resume, or started
    afresh with --overwrite, never silently replaced."""
    from facegraph.training.loop import CHECKPOINT

    out = plan.folder(args.out)
    if (out / CHECKPOINT).is_file() and not (args.resume or plan.overwrite):
        raise InputError(
            f"holds a training run ({CHECKPOINT}): pass --resume to continue it or --overwrite to start"
            " afresh",
            out,
        )
    return out


def emit_report(path: str, report: dict) -> None:
    """Write a JSON report to ``path``, or print it when ``path`` is "-"."""
    from facegraph.io.reports import report_text, write_report

    if path == STDOUT:
        print(report_text(report))
    else:
        write_report(path, report)


def text_stream(args: argparse.Namespace) -> TextIO:
    """Where a command's lines for people go: standard error when the JSON report takes standard output."""
    return sys.stderr if getattr(args, "json", None) == STDOUT else sys.stdout


def make_folder(path: str | Path | None) -> Path | None:
    """The output folder (checked by ``plan_outputs``), created if needed; None when not asked for."""
    if path is None:
        return None
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc.strerror or exc})", folder) from None
    return folder


def finite_float(text: str) -> float:
    """An option's number: NaN and infinities are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def expand_paths(
    inputs: list[str], suffixes: tuple[str, ...], kind: str, skip: Callable[[Path], bool] | None = None
) -> list[Path]:
    """The files named, with folders expanded to the ``kind`` files (by suffix) they hold, sorted.

    Files found in folders are left out when ``skip`` says so (an earlier run's outputs: never read back
    as inputs); files named explicitly are always kept.
    """
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in suffixes and p.is_file() and not (skip and skip(p))
            )
            if not found:
                raise InputError(f"holds no {kind} files ({', '.join(suffixes)})", path)
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def progress(items: list, desc: str, quiet: bool, unit: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=quiet)


class EachFile(Generic[Result]):
    """``work`` on each file, with a progress bar. A user error on one file of several is printed and
    the others go on (``--debug`` stops at it); ``finish()``, once the results are written, raises one
    error naming how many files ``failed`` (e.g. "could not be read")."""

    def __init__(
        self,
        paths: list[Path],
        work: Callable[[Path], Result],
        args: argparse.Namespace,
        unit: str,
        failed: str,
    ) -> None:
        self.paths, self.work, self.args, self.unit, self.failed = paths, work, args, unit, failed
        self.failures = 0

    def __iter__(self) -> Iterator[tuple[Path, Result]]:
        quiet = self.args.quiet or len(self.paths) == 1
        for path in progress(self.paths, f"{self.unit}s", quiet, self.unit):
            try:
                result = self.work(path)
            except InputError as exc:
                named = exc if exc.path else InputError(exc.problem, path)
                if getattr(self.args, "debug", False) or len(self.paths) == 1:
                    if named is exc:
                        raise
                    raise named from exc
                self.failures += 1
                print(f"facegraph: error: {named}", file=sys.stderr)
                continue
            yield path, result

    def finish(self) -> None:
        if self.failures:
            raise InputError(f"{self.failures} of {len(self.paths)} {self.unit}s {self.failed} (see above)")


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows of text as aligned columns, the first left-aligned and the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def add_quiet(parser: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    parser.add_argument("--quiet", action="store_true", help=help)


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing files that facegraph did not write (never this run's inputs, nor an"
        " annotation beside a photo or scan)",
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: the GPU when one is present, else the CPU)"
    )


def add_run_options(parser: argparse.ArgumentParser, configs: str, default: str, out_holds: str) -> None:
    """The options every trainer takes: the shared training loop's (see ``facegraph.training.loop``)."""
    parser.add_argument("--config", default=default, help=configs)
    parser.add_argument("--out", required=True, help=f"output folder (checkpoints, {out_holds}, history)")
    parser.add_argument("--epochs", type=int, help="override the configuration's epochs")
    parser.add_argument(
        "--max-minutes", type=finite_float, help="stop after the epoch that passes this budget"
    )
    parser.add_argument(
        "--learning-rate", type=finite_float, help="override the configuration's learning rate"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    add_overwrite(parser)


MIRROR_AVERAGE_HELP = (
    "predict each face and its mirror image and average their landmarks and pose (twice the work;"
    " the dense mesh and the parameters stay the face's own)"
)
BFM_HELP = "BFM folder (default: $FACEGRAPH_BFM, else a bfm/ folder beside the weights')"
