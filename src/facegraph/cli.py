"""The ``facegraph`` command: thin wiring of the package's readers, models and evaluations.

User errors (a bad file, folder or flag) print one line and exit with code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facegraph import __version__
from facegraph.errors import InputError

EXIT_USER_ERROR = 2


def _finite_or_null(value: object) -> object:
    """NaN and infinities (e.g. the mean of an empty yaw bin) become JSON null, which parsers accept."""
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _write_json(path: str, report: dict) -> None:
    from facegraph.io.atomic import write_atomic

    write_atomic(path, json.dumps(_finite_or_null(report), indent=2) + "\n")


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _check_output_folder(path: str | None) -> None:
    """Fail before a long run, not after it, when an output's folder does not exist."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise InputError("cannot write: the folder does not exist", Path(path).resolve().parent)


def cmd_models(args: argparse.Namespace) -> None:
    from facegraph.models.registry import MODELS

    for spec in MODELS.values():
        print(f"{spec.name}\n  {spec.description}\n  weights: {spec.weights_source}")


def cmd_eval_aflw2000(args: argparse.Namespace) -> None:
    from facegraph.datasets.aflw2000_3d import load_aflw2000
    from facegraph.evaluation.aflw2000 import evaluate_aflw2000
    from facegraph.models.registry import load_model

    for out in (args.json, args.plot):
        _check_output_folder(out)
    dataset = load_aflw2000(args.data)
    model = load_model(args.model, args.weights, args.bfm)
    result = evaluate_aflw2000(dataset, model, args.model, args.batch_size, progress=not args.quiet)
    report = result.report
    rows = [("ground truth", "0-30", "30-60", "60-90", "mean", "all")]
    for key, label in (("nme", "original"), ("nme_reannotated", "re-annotated")):
        if report[key] is not None:
            rows.append(
                (label, *(f"{report[key][k]:.3f}" for k in ("0-30", "30-60", "60-90", "mean", "all")))
            )
    print(f"AFLW2000-3D, {report['n']} faces, model {args.model}: NME (%), by |yaw| bin")
    print(_table(rows))
    if report["pose_mae"] is not None:
        pose = report["pose_mae"]
        print(
            f"pose MAE (deg) over {pose['n']} faces: yaw {pose['yaw']:.3f}  pitch {pose['pitch']:.3f}  "
            f"roll {pose['roll']:.3f}  mean {pose['mean']:.3f}"
        )
    print(f"{report['seconds']:.1f} s, {report['faces_per_second']:.0f} faces/s")
    if args.json:
        _write_json(args.json, report)
    if args.plot:
        from facegraph.viz.curves import plot_ced

        curves = {"original": result.nme}
        if result.nme_reannotated is not None:
            curves["re-annotated"] = result.nme_reannotated
        plot_ced(curves, args.plot, max_error=10.0, title=f"AFLW2000-3D, {args.model}")


def cmd_eval_300w(args: argparse.Namespace) -> None:
    from facegraph.datasets.faces68 import load_faces68
    from facegraph.evaluation.faces68 import evaluate_faces68
    from facegraph.models.registry import load_model

    for out in (args.json, args.plot):
        _check_output_folder(out)
    dataset = load_faces68(args.data, images=args.images)
    model = load_model(args.model, args.weights, args.bfm)
    result = evaluate_faces68(dataset, model, args.model, boxes=args.boxes, progress=not args.quiet)
    report = result.report
    print(f"{report['dataset']}, {report['n']} faces, model {args.model}, boxes {args.boxes}")
    rows = [
        (
            "subset",
            "n",
            "NME io (%)",
            "NME ip (%)",
            f"AUC@{report['threshold']:g}",
            f"FR@{report['threshold']:g}",
        )
    ]
    for name, sub in report["subsets"].items():
        rows.append(
            (
                name,
                str(sub["n"]),
                f"{sub['nme_interocular']:.3f}",
                f"{sub['nme_interpupil']:.3f}",
                f"{sub['auc_8']:.4f}",
                f"{sub['fr_8']:.4f}",
            )
        )
    print(_table(rows))
    if args.json:
        _write_json(args.json, report)
    if args.plot:
        from facegraph.viz.curves import plot_ced

        plot_ced(
            {"inter-ocular": result.nme_interocular, "inter-pupil": result.nme_interpupil},
            args.plot,
            max_error=report["threshold"],
            title=f"{report['dataset']}, {args.model}",
        )


def cmd_convert(args: argparse.Namespace) -> None:
    from facegraph.io.landmarks import read_landmarks, write_landmarks
    from facegraph.schemes import convert

    landmarks = read_landmarks(args.input, scheme=args.scheme)
    if args.to:
        try:
            landmarks = convert(landmarks, args.to)
        except (KeyError, ValueError) as exc:
            raise InputError(str(exc).strip("'\""), args.input) from None
    write_landmarks(args.output, landmarks)
    print(f"{args.output}: {landmarks.n_points} points, scheme {landmarks.scheme}")


def cmd_demo(args: argparse.Namespace) -> None:
    from facegraph.demo import run_demo

    run_demo(Path(args.out))


def _add_model_args(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--model", default=default, required=default is None, help="model name (see `facegraph models`)"
    )
    parser.add_argument("--weights", help="weights file or folder (peers: their released checkpoint)")
    parser.add_argument(
        "--bfm", help="BFM folder (default: $FACEGRAPH_BFM, else a bfm/ folder beside the weights')"
    )
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--plot", help="write the cumulative error curves as a PNG here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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

    models = commands.add_parser(
        "models", parents=[common], help="list the models and where their weights come from"
    )
    models.set_defaults(run=cmd_models)

    evaluate = commands.add_parser("eval", help="evaluate a model with a published protocol")
    benchmarks = evaluate.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    aflw = benchmarks.add_parser(
        "aflw2000-3d", parents=[common], help="AFLW2000-3D, 3DDFA protocol: NME by yaw bin and pose MAE"
    )
    aflw.add_argument(
        "--data", required=True, help="AFLW2000-3D folder (3DDFA layout or the original release)"
    )
    _add_model_args(aflw, default=None)
    aflw.add_argument("--batch-size", type=int, default=128)
    aflw.set_defaults(run=cmd_eval_aflw2000)

    w300 = benchmarks.add_parser(
        "300w", parents=[common], help="300-W style 68-point evaluation: NME, AUC@8, FR@8"
    )
    w300.add_argument(
        "--data",
        required=True,
        help="iBUG-style folder (photos + .pts) or a SPIGA annotation folder/JSON (test.json, db_info.json)",
    )
    w300.add_argument("--images", help="photo root for SPIGA annotations (they carry no photos)")
    w300.add_argument(
        "--boxes",
        choices=("gt", "detector"),
        default="gt",
        help="gt: the ground-truth landmarks' box (the 300-W protocol); detector: a face detector's",
    )
    _add_model_args(w300, default="3ddfa-v2-mb05")
    w300.set_defaults(run=cmd_eval_300w)

    convert = commands.add_parser(
        "convert", parents=[common], help="convert a landmark file between formats and schemes"
    )
    convert.add_argument("input", help="landmark file: .pts, .ljson, .pp, .json or .csv")
    convert.add_argument("output", help="output file; the format follows its suffix")
    convert.add_argument("--scheme", help="the input's scheme when its point count is ambiguous")
    convert.add_argument("--to", help="target scheme, e.g. five, ibug51, aflw21")
    convert.set_defaults(run=cmd_convert)

    demo = commands.add_parser("demo", parents=[common], help="run what facegraph can do on bundled inputs")
    demo.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    demo.set_defaults(run=cmd_demo)
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
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
