"""``facegraph train spiga``: only wiring; the work is in ``facegraph.training.spiga``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facegraph.cli.common import add_quiet, add_run_options, check_run_folder, plan_outputs
from facegraph.errors import InputError


def cmd_train_spiga(args: argparse.Namespace) -> None:
    from facegraph.io.landmarks import read_spiga_mean_face
    from facegraph.training.loop import with_settings
    from facegraph.training.spiga import (
        get_config,
        load_spiga_faces,
        prepare_data,
        spiga_pseudo_labels,
        train_spiga,
    )

    config = with_settings(get_config(args.config), epochs=args.epochs, lr=args.learning_rate)
    init = None if args.init is None else Path(args.init)
    if init is not None and not init.is_file():
        raise InputError("weights not found", init)
    if init is None and args.mean_face is None:
        raise InputError("training from scratch needs SPIGA's 3D mean face: pass --mean-face FILE")
    folders = [*args.aflw, *args.faces68, *args.data]
    plan = plan_outputs(args, inputs=[init, args.mean_face], input_folders=folders)
    out = check_run_folder(plan, args)
    mean_face = None if args.mean_face is None else read_spiga_mean_face(args.mean_face)
    faces, skipped = load_spiga_faces(args.aflw, args.faces68, args.data, args.skip_bad, not args.quiet)
    for bad in skipped:
        print(f"skipped {bad.path}: {bad.problem}", file=sys.stderr)
    pseudo = None
    if args.pseudo_labels == "synergynet":
        pseudo = spiga_pseudo_labels(faces, args.bfm, out, progress=not args.quiet)
    data = prepare_data(faces, pseudo, config, args.seed)
    result = train_spiga(
        data, mean_face, out, config, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
        init=init, frozen=tuple(args.freeze), progress=not args.quiet,
    )  # fmt: skip
    print(
        f"best epoch {result.best_epoch}: validation NME {result.best_score:.3f} %"
        f" -> {out / 'best.safetensors'} ({len(data.test)} 68-point faces held out for testing)"
    )


def register(groups: dict, common: argparse.ArgumentParser) -> None:
    train = groups["train"].add_parser(
        "spiga", parents=[common], help="train SPIGA (2D landmarks and head pose) on face crops"
    )
    add_run_options(train, "spiga-fast or spiga-paper", "spiga-fast", "best.safetensors")
    train.add_argument("--aflw", action="append", default=[], help="an aflw-train folder (repeatable)")
    train.add_argument(
        "--faces68", action="append", default=[], help="a folder of photos with 68-point .pts (repeatable)"
    )
    train.add_argument(
        "--data",
        action="append",
        default=[],
        help="a folder of annotated photos (.pts or facegraph .json beside each photo, or SPIGA's JSON"
        " lists; repeatable): the domain to fine-tune to",
    )
    train.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out --data files that cannot be used (each is named) instead of stopping at the first",
    )
    train.add_argument("--mean-face", help="SPIGA's models3D/mean_face_3D_68.txt (not needed with --init)")
    train.add_argument(
        "--pseudo-labels",
        choices=("synergynet", "none"),
        default="synergynet",
        help="label the points no human labelled with the photo model's refitted fits (default; needs"
        " the BFM) or leave them out",
    )
    train.add_argument("--bfm", help="BFM folder for the pseudo-labels (default: the installed one)")
    train.add_argument("--init", help="start from SPIGA weights (fine-tuning: a fresh optimiser)")
    train.add_argument(
        "--freeze",
        action="append",
        default=[],
        choices=("backbone", "pose"),
        help="do not train this part (repeatable): the CNN backbone, the pose head",
    )
    add_quiet(train, "no progress bars")
    train.set_defaults(run=cmd_train_spiga)
