"""Photo commands: ``image``, ``eval aflw2000-3d``, ``eval 300w``, ``train synergynet``, ``export onnx``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facegraph.cli.common import (
    BFM_HELP,
    MIRROR_AVERAGE_HELP,
    EachFile,
    add_device,
    add_overwrite,
    add_quiet,
    add_run_options,
    check_run_folder,
    count,
    emit_report,
    expand_paths,
    finite_float,
    make_folder,
    plan_outputs,
    table,
    text_stream,
)
from facegraph.errors import InputError
from facegraph.formats import PHOTO_SUFFIXES


def _photo_model(args: argparse.Namespace):
    from facegraph.image.loading import load_photo_model

    return load_photo_model(
        args.model, args.weights, args.bfm, args.onnx, args.mirror_average, getattr(args, "device", None)
    )


def cmd_image(args: argparse.Namespace) -> None:
    from facegraph.geometry.crops import parse_box
    from facegraph.image import FaceAnalyzer
    from facegraph.image.analyzer import FaceSelection
    from facegraph.image.outputs import face_summary, photo_output_paths, photo_record, write_photo_outputs
    from facegraph.io import read_image
    from facegraph.io.outputs import written_by_facegraph

    photos = expand_paths(args.images, PHOTO_SUFFIXES, "photo", skip=written_by_facegraph)
    box = None if args.box is None else parse_box(args.box)[None]
    if args.mesh and not args.out:
        raise InputError("--mesh writes one OBJ per face into --out DIR: pass --out")
    plan = plan_outputs(args, args.json, inputs=[*photos, args.weights, args.onnx])
    if args.out:
        for photo in photos:
            for path in photo_output_paths(plan.folder(args.out), photo, args.mesh):
                plan.file(path, str(photo))
    out = make_folder(args.out)
    selection = FaceSelection(args.order, args.max_faces, args.min_face)
    analyzer = FaceAnalyzer(
        _photo_model(args), args.detector, device=args.device, min_score=args.min_score, selection=selection
    )
    if args.mesh:
        analyzer.check_mesh()

    def analyze(photo: Path):
        rgb = read_image(photo)
        return rgb, analyzer.analyze(rgb, box, mesh=args.mesh)

    records, run = [], EachFile(photos, analyze, args, "photo", "could not be read")
    for photo, (rgb, faces) in run:
        if not faces:
            print(f"{photo}: no face found", file=sys.stderr)
        records.append(photo_record(photo, rgb, faces))
        for i, face in enumerate(faces):
            print(face_summary(photo, i, face), file=text_stream(args))
        if out is not None:
            write_photo_outputs(out, photo, rgb, faces, records[-1])
    if args.json is not None:
        emit_report(args.json, records[0] if len(photos) == 1 else {"photos": records})
    run.finish()


def cmd_eval_aflw2000(args: argparse.Namespace) -> None:
    from facegraph.datasets.aflw2000_3d import load_aflw2000
    from facegraph.evaluation.aflw2000 import evaluate_aflw2000, summary_rows
    from facegraph.image.detectors import make_detector

    plan_outputs(args, args.json, args.plot, **_model_inputs(args))
    dataset = load_aflw2000(args.data)
    detector = None if args.boxes == "gt" else make_detector(args.detector, args.min_score)
    model = _photo_model(args)
    result = evaluate_aflw2000(dataset, model, args.model, args.batch_size, not args.quiet, detector)
    report = result.report
    lines = text_stream(args)
    print(f"AFLW2000-3D, {report['n']} faces, model {args.model}: NME (%), by |yaw| bin", file=lines)
    if report["detector_missed"] is not None:
        missed = ", ".join(f"{k} {v}" for k, v in report["detector_missed"].items())
        print(f"boxes from {args.detector}; faces missed (not in the NME): {missed}", file=lines)
    print(table(summary_rows(report)), file=lines)
    if report["pose_mae"] is not None:
        pose = report["pose_mae"]
        print(
            f"pose MAE (deg) over {pose['n']} faces: yaw {pose['yaw']:.3f}  pitch {pose['pitch']:.3f}  "
            f"roll {pose['roll']:.3f}  mean {pose['mean']:.3f}",
            file=lines,
        )
    print(f"{report['seconds']:.1f} s, {report['faces_per_second']:.0f} faces/s", file=lines)
    _write_report_and_plot(args, report, result.curves(), 10.0, f"AFLW2000-3D, {args.model}")


def cmd_eval_300w(args: argparse.Namespace) -> None:
    from facegraph.datasets.faces68 import load_faces68
    from facegraph.evaluation.faces68 import evaluate_faces68, summary_rows

    plan_outputs(args, args.json, args.plot, **_model_inputs(args, args.images))
    dataset = load_faces68(args.data, images=args.images)
    result = evaluate_faces68(
        dataset, _photo_model(args), args.model, boxes=args.boxes, progress=not args.quiet
    )
    report = result.report
    lines = text_stream(args)
    print(f"{report['dataset']}, {report['n']} faces, model {args.model}, boxes {args.boxes}", file=lines)
    print(table(summary_rows(report)), file=lines)
    title = f"{report['dataset']}, {args.model}"
    _write_report_and_plot(args, report, result.curves(), report["threshold"], title)


def _model_inputs(args: argparse.Namespace, *folders: str | None) -> dict:
    """What an evaluation reads: its model's files and its data (every file under ``--data``)."""
    return {
        "inputs": [args.data, args.weights, args.onnx],
        "input_folders": [args.data, args.bfm, *folders],
    }


def _write_report_and_plot(
    args: argparse.Namespace, report: dict, curves: dict, max_error: float, title: str
):
    if args.json:
        emit_report(args.json, report)
    if args.plot:
        from facegraph.viz.curves import plot_ced

        plot_ced(curves, args.plot, max_error=max_error, title=title)


def cmd_export_onnx(args: argparse.Namespace) -> None:
    from facegraph.image.onnx import calibration_crops, export_int8, export_onnx
    from facegraph.image.spiga import SpigaRegressor
    from facegraph.image.synergynet import SynergyRegressor
    from facegraph.registry import load_model

    calibration = args.calibration or []
    plan_outputs(args, args.output, inputs=[args.weights, *calibration], input_folders=calibration)
    if args.int8 and not args.calibration:
        raise InputError("--int8 needs --calibration DIR: photos of faces to calibrate on")
    model = load_model(args.model, args.weights, args.bfm, device="cpu", kind="image")
    if not isinstance(model, SynergyRegressor | SpigaRegressor):
        raise InputError(f"ONNX export supports synergynet and spiga, not {args.model}")
    if args.int8 and not isinstance(model, SynergyRegressor):
        raise InputError(f"--int8 supports synergynet, not {args.model}")
    if not args.int8:
        parity = export_onnx(model, args.output)
        print(
            f"wrote {args.output}; ONNX Runtime vs PyTorch on {parity['batch']} crops: "
            f"largest difference {parity['max_abs_difference']:.2e}"
        )
        return
    photos = expand_paths(args.calibration, PHOTO_SUFFIXES, "photo")
    report = export_int8(
        model, args.output, calibration_crops(model, photos, args.calibration_faces, not args.quiet)
    )
    shift = f"{report['mean_shift_px']:.2f} px on average (largest {report['max_shift_px']:.2f})"
    print(
        f"wrote {args.output} (int8, calibrated on {count(report['faces'], 'face')}); against the float model"
        f" the landmarks move {shift} in the 120-pixel crop"
    )


def cmd_train_synergynet(args: argparse.Namespace) -> None:
    from facegraph.morphable.bfm import load_bfm
    from facegraph.registry import load_model
    from facegraph.training.synergynet import load_training_faces, train_synergynet, training_config

    config = training_config(
        args.config, args.epochs, args.learning_rate, args.human_convention, args.targets, args.whitening,
        args.augmentation,
    )  # fmt: skip
    init = None if args.init is None else Path(args.init)
    if init is not None and not init.is_file():
        raise InputError("checkpoint not found", init)
    plan = plan_outputs(args, inputs=[init, args.teacher_weights], input_folders=[*args.aflw, *args.faces68])
    check_run_folder(plan, args)
    teacher = load_model(args.teacher, weights=args.teacher_weights, bfm=args.bfm, kind="image")
    faces = load_training_faces(args.aflw, args.faces68, progress=not args.quiet)
    morphable = teacher.morphable if args.bfm is None else load_bfm(args.bfm)
    result = train_synergynet(
        faces, teacher, morphable, args.out, config, seed=args.seed, resume=args.resume,
        max_minutes=args.max_minutes, progress=not args.quiet, init=init,
    )  # fmt: skip
    print(
        f"best epoch {result.best_epoch}: validation NME vs human labels {result.best_score:.3f}"
        f" (human convention: {config.human_convention}; targets: {config.targets})"
        f" -> {Path(args.out) / 'best.safetensors'}"
    )


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="synergynet", help="model name (see `facegraph models`; default synergynet)"
    )
    parser.add_argument("--weights", help="weights file or folder (peers: their released checkpoint)")
    parser.add_argument("--bfm", help=BFM_HELP)
    parser.add_argument(
        "--onnx", help="synergynet or spiga: run its network from this `facegraph export onnx` file"
    )
    parser.add_argument("--mirror-average", action="store_true", help=MIRROR_AVERAGE_HELP)
    add_device(parser)


def _add_eval_outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", help="write the report as JSON here ('-': standard output)")
    parser.add_argument("--plot", help="write the cumulative error curves as a PNG here")
    add_overwrite(parser)
    add_quiet(parser)


def _register_image(commands, common: argparse.ArgumentParser) -> None:
    image = commands.add_parser(
        "image", parents=[common], help="68 2D/3D landmarks, head pose and the dense face for photos"
    )
    image.add_argument("images", nargs="+", metavar="IMG", help="photos, or folders of photos")
    _add_model_args(image)
    image.add_argument("--detector", default=DEFAULT_DETECTOR, help=DETECTOR_HELP)
    image.add_argument("--min-score", type=finite_float, help=MIN_SCORE_HELP)
    image.add_argument(
        "--max-faces", type=int, help="analyse at most this many faces a photo (the first in --order)"
    )
    image.add_argument(
        "--min-face",
        type=finite_float,
        default=0.0,
        metavar="PX",
        help="skip faces whose box is smaller than this; below 48, FaceBoxes also searches every photo"
        " enlarged for faces down to this size (slower; by default only photos that show small faces)",
    )
    image.add_argument(
        "--order",
        choices=("score", "size"),
        default="score",
        help="faces best first by detector score or box size",
    )
    image.add_argument("--box", help="x0,y0,x1,y1: the face box in pixels; skips detection")
    image.add_argument("--json", help="write the faces as JSON here ('-': standard output)")
    image.add_argument("--out", help="folder for annotated PNGs, per-photo JSON and meshes")
    image.add_argument(
        "--mesh",
        action="store_true",
        help="also write each dense face as OBJ and shaded over the photo (needs --out)",
    )
    add_overwrite(image)
    add_quiet(image)
    image.set_defaults(run=cmd_image)


def _register_eval(benchmarks, common: argparse.ArgumentParser) -> None:
    aflw = benchmarks.add_parser(
        "aflw2000-3d", parents=[common], help="AFLW2000-3D, 3DDFA protocol: NME by yaw bin and pose MAE"
    )
    aflw.add_argument(
        "--data", required=True, help="AFLW2000-3D folder (3DDFA layout or the original release)"
    )
    _add_model_args(aflw)
    aflw.add_argument("--batch-size", type=int, default=128)
    aflw.add_argument(
        "--boxes",
        choices=("gt", "detector"),
        default="gt",
        help="gt: the protocol's crops (ground-truth boxes); detector: find each face in its original photo,"
        " as a user's photos are (misses are counted, not scored)",
    )
    aflw.add_argument("--detector", default=DEFAULT_DETECTOR, help=f"with --boxes detector: {DETECTOR_HELP}")
    aflw.add_argument("--min-score", type=finite_float, help=f"with --boxes detector: {MIN_SCORE_HELP}")
    _add_eval_outputs(aflw)
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
    _add_model_args(w300)
    _add_eval_outputs(w300)
    w300.set_defaults(run=cmd_eval_300w)


def _register_export(formats, common: argparse.ArgumentParser) -> None:
    onnx = formats.add_parser(
        "onnx", parents=[common], help="ONNX (float32 or int8), checked against PyTorch"
    )
    onnx.add_argument("output", metavar="OUT", help="the .onnx file to write")
    onnx.add_argument("--model", default="synergynet", help="model name (default synergynet)")
    onnx.add_argument("--weights", help="weights (default: the shipped ones)")
    onnx.add_argument("--bfm", help="BFM folder (not needed for the export)")
    onnx.add_argument("--int8", action="store_true", help="quantise to int8 (about twice as fast on CPUs)")
    onnx.add_argument(
        "--calibration",
        nargs="+",
        metavar="DIR",
        help="photos of faces to calibrate int8 on (folders or files)",
    )
    onnx.add_argument(
        "--calibration-faces", type=int, default=256, help="faces to calibrate on (default 256)"
    )
    add_overwrite(onnx)
    add_quiet(onnx)
    onnx.set_defaults(run=cmd_export_onnx)


def _register_train(trainers, common: argparse.ArgumentParser) -> None:
    train = trainers.add_parser(
        "synergynet", parents=[common], help="train SynergyNet on face crops, distilled from a teacher"
    )
    add_run_options(train, "facegraph-photo or synergynet-paper", "facegraph-photo", "teacher labels")
    train.add_argument("--aflw", action="append", default=[], help="an aflw-train folder (repeatable)")
    train.add_argument(
        "--faces68", action="append", default=[], help="a folder of photos with 68-point .pts (repeatable)"
    )
    train.add_argument("--teacher", default="3ddfa-v2-mb05", help="the model giving pseudo-labels")
    train.add_argument("--teacher-weights", required=True, help="the teacher's weights")
    train.add_argument("--bfm", help="BFM folder (default: the teacher's)")
    train.add_argument(
        "--init",
        help="start from another run's last.pt (every network) or a weights file such as the shipped "
        "one (the image network; fine-tuning; keep its data and --seed)",
    )
    train.add_argument(
        "--human-convention",
        choices=("teacher", "annotators"),
        help="use the human points as labelled ('annotators', the configurations' default) or move them "
        "into the teacher's landmark convention first ('teacher')",
    )
    train.add_argument(
        "--targets",
        choices=("teacher", "refitted"),
        help="distil the teacher's fits as they are ('teacher', the default) or refitted to each face's "
        "human points first ('refitted')",
    )
    train.add_argument(
        "--whitening",
        choices=("augmented", "plain"),
        help="scale the parameter losses by the targets' spread under augmentation ('augmented', the "
        "default) or before it ('plain', how the earliest runs trained)",
    )
    train.add_argument(
        "--augmentation",
        type=finite_float,
        metavar="FACTOR",
        help="scale the configuration's rotation, scale, shift and colour augmentation (flips unchanged)",
    )
    add_quiet(train, "no progress bars")
    train.set_defaults(run=cmd_train_synergynet)


def register(groups: dict, common: argparse.ArgumentParser) -> None:
    """Add the photo commands to the root parser's command groups."""
    _register_image(groups["commands"], common)
    _register_eval(groups["eval"], common)
    _register_export(groups["export"], common)
    _register_train(groups["train"], common)


# facegraph.image.detectors.DEFAULT_DETECTOR, named here so that the CLI starts without numpy
DEFAULT_DETECTOR = "faceboxes+blazeface"
DETECTOR_HELP = (
    "face detector: faceboxes+blazeface (default: two CNNs, faces in every pose and down to about 48 px),"
    " faceboxes, blazeface (large faces only) or dlib-hog (frontal faces)"
)
MIN_SCORE_HELP = (
    "lowest detector score kept (default: the detector's; 0.5 for the CNNs' face probability, 0.25 for"
    " dlib-hog's SVM score; with faceboxes+blazeface, both CNNs')"
)
