"""The ``facegraph`` command: a root parser whose wings (``image``, ``mesh``, ``general``) register their
own subcommands; every command only wires the package's functions together.

User errors (a bad file, folder or flag) print one line and exit with code 2; ``--debug`` shows the
traceback instead. SIGINT and SIGTERM end a command with "interrupted" and exit 130 or 143 (128 plus
the signal); writers clean up their temporary files as the interruption passes through them, and the
outputs already written stay.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

from facegraph import __version__
from facegraph.cli import general, image, mesh, spiga
from facegraph.errors import InputError

EXIT_USER_ERROR = 2
GROUPS = {
    "eval": ("evaluate a model with a published protocol", "BENCHMARK"),
    "train": ("train a model", "MODEL"),
    "fit": ("fit what a trained model is used with: convention offsets, a shape prior", "WHAT"),
    "export": ("export a model to another runtime", "FORMAT"),
}


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are one line, as the commands' are (``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks instead of one-line errors",
    )
    parser = _Parser(
        prog="facegraph", parents=[common], description="Facial landmarks in photos and on 3D face scans."
    )
    parser.add_argument("--version", action="version", version=f"facegraph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = {"commands": commands}
    general.register(groups, common)
    for name, (help_text, metavar) in GROUPS.items():
        group = commands.add_parser(name, help=help_text)
        groups[name] = group.add_subparsers(dest=name, required=True, metavar=metavar)
    for wing in (image, mesh, spiga):
        wing.register(groups, common)
    return parser


class _Interruptions:
    """While a command runs, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread and are
    remembered, so an interruption that a library re-raised as an error of its own still ends as one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> _Interruptions:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._interrupt) for sig in self.SIGNALS}
        return self

    def _interrupt(self, signum: int, frame: object) -> None:
        self.received = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def exit_code(self) -> int:
        return 128 + (self.received or signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    args = argparse.Namespace()
    with _Interruptions() as interruptions:
        try:
            args = build_parser().parse_args(argv)
            args.run(args)
        except InputError as exc:
            if getattr(args, "debug", False):
                raise
            print(f"facegraph: error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt) and interruptions.received is None:
                return _other_failure(exc)
            if getattr(args, "debug", False):
                raise
            print("facegraph: interrupted", file=sys.stderr)
            return interruptions.exit_code()
    return 0


def _other_failure(exc: BaseException) -> int:
    """A broken pipe ends the command quietly, as Unix tools do when their reader (e.g. ``| head``)
    leaves early; anything else is a bug, shown with its traceback."""
    if not isinstance(exc, BrokenPipeError):
        raise exc
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
