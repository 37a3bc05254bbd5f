"""The ``facegraph`` command: a root parser whose wings (``image``, ``mesh``, ``general``) register their
own subcommands; every command only wires the package's functions together.

User errors (a bad file, folder or flag) print one line and exit with code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from facegraph import __version__
from facegraph.cli import general, image, mesh
from facegraph.errors import InputError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
GROUPS = {
    "eval": ("evaluate a model with a published protocol", "BENCHMARK"),
    "train": ("train a model", "MODEL"),
    "fit": ("fit what a trained model is used with: convention offsets, a shape prior", "WHAT"),
    "export": ("export a model to another runtime", "FORMAT"),
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks instead of one-line errors",
    )
    parser = argparse.ArgumentParser(
        prog="facegraph", parents=[common], description="Facial landmarks in photos and on 3D face scans."
    )
    parser.add_argument("--version", action="version", version=f"facegraph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups = {"commands": commands}
    general.register(groups, common)
    for name, (help_text, metavar) in GROUPS.items():
        group = commands.add_parser(name, help=help_text)
        groups[name] = group.add_subparsers(dest=name, required=True, metavar=metavar)
    for wing in (image, mesh):
        wing.register(groups, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except InputError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"facegraph: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("facegraph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (e.g. `| head`) left early: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
