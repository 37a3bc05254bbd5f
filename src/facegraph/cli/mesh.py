"""Scan commands: ``mesh``, ``eval mesh``, ``train mesh``, ``fit mesh-offsets``, ``fit mesh-prior``."""

from __future__ import annotations

import argparse
from pathlib import Path

from facegraph.cli.common import (
    BFM_HELP,
    EachFile,
    add_device,
    add_overwrite,
    add_quiet,
    add_run_options,
    check_run_folder,
    emit_report,
    expand_paths,
    finite_float,
    make_folder,
    plan_outputs,
    table,
    text_stream,
)
from facegraph.errors import InputError


def _landmarker(args: argparse.Namespace):
    from facegraph.mesh.landmarker import MeshLandmarker

    return MeshLandmarker(args.weights, device=args.device)


def _convention(args: argparse.Namespace):
    from facegraph.mesh.conventions import load_convention

    return load_convention(args.offsets, args.markup_rules)


def _landmarker_inputs(args: argparse.Namespace, files: list = (), folder: str | None = None) -> dict:
    """What a scan command reads besides its outputs: the scans, the weights and the convention."""
    return {"inputs": [*files, args.weights, getattr(args, "offsets", None)], "input_folders": [folder]}


def cmd_mesh(args: argparse.Namespace) -> None:
    from facegraph.formats import MESH_SUFFIXES
    from facegraph.io.meshes import read_mesh
    from facegraph.mesh.outputs import (
        is_landmark_cloud,
        scan_output_paths,
        scan_report,
        scan_summary,
        write_scan_outputs,
    )

    paths = expand_paths(args.scans, MESH_SUFFIXES, "mesh", skip=is_landmark_cloud)
    plan = plan_outputs(args, args.json, **_landmarker_inputs(args, paths))
    if args.out:
        for path in paths:
            for output in scan_output_paths(plan.folder(args.out), path):
                plan.file(output, str(path))
    out = make_folder(args.out)
    landmarker, convention = _landmarker(args), _convention(args)

    def landmark(path: Path):
        mesh = read_mesh(path, normals=False)
        return mesh, landmarker(
            mesh, args.refine, args.units, offsets=convention, shape_prior=args.shape_prior
        )

    reports, run = [], EachFile(paths, landmark, args, "scan", "could not be landmarked")
    for path, (mesh, result) in run:
        reports.append(scan_report(path, result))
        print(scan_summary(path, result), file=text_stream(args))
        if out is not None:
            write_scan_outputs(out, path, mesh, result)
    if args.json and reports:
        emit_report(args.json, reports[0] if len(paths) == 1 else {"scans": reports})
    run.finish()


def cmd_eval_mesh(args: argparse.Namespace) -> None:
    from facegraph.datasets.scans import annotated_records
    from facegraph.evaluation.meshes import error_curves, evaluate_scans
    from facegraph.mesh.checks import MM_PER_UNIT

    plan_outputs(args, args.json, args.plot, **_landmarker_inputs(args, [args.data], args.data))
    records = annotated_records(args.data)
    landmarker, convention = _landmarker(args), _convention(args)
    report = evaluate_scans(
        records,
        lambda mesh: (
            landmarker(mesh, args.refine, args.units, offsets=convention, shape_prior=args.shape_prior).points
        ),
        progress=not args.quiet,
        to_mm=MM_PER_UNIT[args.units or "mm"],
    )
    figures = (report["mean_mm"], report["mean_mm_51"], report["median_mm"], report["seconds_per_mesh"])
    header = ("scans", "mean (mm)", "inner 51 (mm)", "median (mm)", "s/scan")
    print(table([header, (str(report["n"]), *(f"{v:.3f}" for v in figures))]), file=text_stream(args))
    if args.json:
        emit_report(args.json, report)
    if args.plot:
        from facegraph.viz.curves import plot_ced

        title = f"{Path(args.data).name}: landmark error"
        plot_ced(error_curves(report), args.plot, max_error=10.0, title=title, xlabel="error (mm)")


def cmd_train_mesh(args: argparse.Namespace) -> None:
    from facegraph.datasets.scan_cache import cached_scans
    from facegraph.datasets.synthetic_faces import dense_bfm
    from facegraph.training.mesh import check_warp, train_mesh, training_config

    config = training_config(
        args.config, args.points, args.epochs, args.learning_rate, args.lr_schedule, args.second_pass_fraction
    )
    check_warp(args.warp)
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise InputError("weights file not found", init)
    out = check_run_folder(plan_outputs(args, inputs=[init], input_folders=[args.bfm]), args)
    # A new run needs the BFM: check it before creating the folder (a resumed one reads its caches).
    bfm = args.bfm if args.resume and out.is_dir() else dense_bfm(args.bfm)
    make_folder(out)
    progress = not args.quiet
    train = cached_scans(bfm, out, args.scans, args.seed, "train", args.warp, progress)
    val = cached_scans(bfm, out, args.val_scans, args.seed + 7919, "val", args.warp, progress)
    result = train_mesh(
        config, train, val, out, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
        workers=args.workers, init=init,
    )  # fmt: skip
    best = out / "best.safetensors"
    print(f"best epoch {result.best_epoch}: validation {result.best_score:.3f} mm -> {best}")


def cmd_fit_mesh_offsets(args: argparse.Namespace) -> None:
    from facegraph.training import mesh_offsets

    plan_outputs(
        args, args.out, args.plot, inputs=[args.weights, args.mean_face, args.teacher_weights],
        input_folders=[args.data, args.photos, args.bfm],
    )  # fmt: skip
    landmarker = mesh_offsets.convention_landmarker(args.weights, args.device)
    canonical = landmarker.canonical_landmarks
    if args.photos:
        offsets = mesh_offsets.offsets_from_photo_folder(
            args.photos, args.teacher, args.teacher_weights, args.bfm, not args.quiet
        )
        title = f"the annotators of {Path(args.photos).name}"
    elif args.mean_face:
        offsets = mesh_offsets.offsets_from_mean_face_file(args.mean_face, canonical)
        title = Path(args.mean_face).name
    else:
        offsets, n_scans, before_mm = mesh_offsets.offsets_from_scans(
            landmarker, args.data, args.refine, args.units, args.shape_prior, not args.quiet
        )
        print(f"{n_scans} scans, inner-51 error without offsets {before_mm:.2f} mm")
        title = offsets.source
    # The markup's rules describe the 68-point markup, which photo annotations and mean faces follow;
    # annotated scans (--data) may not.
    with_rules = args.markup_rules if args.markup_rules is not None else args.data is None
    print(mesh_offsets.save_offsets(offsets, canonical, args.out, with_rules, args.plot, title))


def cmd_fit_mesh_prior(args: argparse.Namespace) -> None:
    from facegraph.morphable.bfm import resolve_bfm_folder
    from facegraph.training.mesh_prior import add_shape_prior, describe_prior

    plan_outputs(args, args.out, inputs=[args.weights], input_folders=[args.bfm])
    recipe = {"n_scans": args.scans, "seed": args.seed, "off_model_mm": args.off_model_mm}
    recipe = {key: value for key, value in recipe.items() if value is not None}
    prior = add_shape_prior(
        args.weights, resolve_bfm_folder(args.bfm), args.out, progress=not args.quiet, **recipe
    )
    print(f"{describe_prior(prior)} -> {args.out}")


OFFSETS_HELP = (
    "move the landmarks to another convention: '300w' (shipped: where 300-W's annotators put the inner"
    " points), 'spiga' (shipped: where SPIGA's 3D mean face puts them) or an offsets file from"
    " 'facegraph fit mesh-offsets'; both shipped ones also apply the 68-point markup's rules"
)
MARKUP_RULES_HELP = (
    "with --offsets: apply the 68-point markup's rules after the offsets, or not (default: as the"
    " convention's file says)"
)


def _add_landmarker_args(parser: argparse.ArgumentParser, conventions: bool = True) -> None:
    from facegraph.types import DEFAULT_REFINE, REFINE_METHODS

    parser.add_argument(
        "--refine",
        choices=REFINE_METHODS,
        default=DEFAULT_REFINE,
        help="second stage: snap to the surface (default), geodesic or euclidean profile matching, or none",
    )
    parser.add_argument(
        "--units", choices=("mm", "cm", "m", "um", "inch"), help="the scans' units (default: mm, checked)"
    )
    parser.add_argument("--weights", help="mesh landmarker weights (.safetensors; default: the shipped ones)")
    parser.add_argument(
        "--shape-prior",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fuse the network's points with the weights' statistical shape prior, when they have one"
        " (default: on)",
    )
    add_device(parser)
    add_quiet(parser)
    if conventions:
        parser.add_argument("--offsets", help=OFFSETS_HELP)
        parser.add_argument("--markup-rules", action=argparse.BooleanOptionalAction, help=MARKUP_RULES_HELP)


def _register_mesh(commands, benchmarks, common: argparse.ArgumentParser) -> None:
    mesh = commands.add_parser(
        "mesh", parents=[common], help="place the 68 landmarks on 3D face scans (meshes or point clouds)"
    )
    mesh.add_argument("scans", nargs="+", help="mesh files (.obj .ply .stl .off) or folders of them")
    _add_landmarker_args(mesh)
    mesh.add_argument(
        "--json",
        help="write the landmarks as JSON here (several scans: a list under 'scans'; '-': standard output)",
    )
    mesh.add_argument("--out", help="folder for each scan's landmarks (.json, .pp, _landmarks.ply) and a PNG")
    add_overwrite(mesh)
    mesh.set_defaults(run=cmd_mesh)

    evaluate = benchmarks.add_parser(
        "mesh", parents=[common], help="3D landmark error (mm) over a folder of scans with ground truth"
    )
    evaluate.add_argument(
        "--data", required=True, help="folder of meshes (mm) with landmark files of the same stem"
    )
    _add_landmarker_args(evaluate)
    evaluate.add_argument("--json", help="write the report as JSON here ('-': standard output)")
    evaluate.add_argument("--plot", help="write the cumulative error curves as a PNG here")
    add_overwrite(evaluate)
    evaluate.set_defaults(run=cmd_eval_mesh)


def _register_train(trainers, common: argparse.ArgumentParser) -> None:
    train = trainers.add_parser(
        "mesh", parents=[common], help="train the mesh landmarker on synthetic BFM scans"
    )
    add_run_options(train, "2s-sgcn-paper or facegraph-mesh", "facegraph-mesh", "caches")
    train.add_argument("--bfm", help="BFM folder with dense bases (default: $FACEGRAPH_BFM)")
    train.add_argument("--scans", type=int, default=2400, help="synthetic training scans (default 2400)")
    train.add_argument("--val-scans", type=int, default=200, help="validation scans (default 200)")
    train.add_argument("--points", type=int, help="override the configuration's input point count")
    train.add_argument("--init", help="start from these weights (fine-tuning), e.g. the shipped ones")
    train.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), help="override the configuration's schedule"
    )
    train.add_argument(
        "--second-pass-fraction",
        type=finite_float,
        help="share of training samples that are second-pass face crops (two-pass configs; default 0.5)",
    )
    train.add_argument(
        "--warp",
        type=finite_float,
        default=0.0,
        help="share of generated faces bent by smooth bumps, shape variation beyond the BFM's (default 0)",
    )
    train.add_argument("--workers", type=int, default=1, help="data loader processes (default 1)")
    add_quiet(train, "no progress bar while generating scans")
    train.set_defaults(run=cmd_train_mesh)


def _register_fit_offsets(fitters, common: argparse.ArgumentParser) -> None:
    fit = fitters.add_parser(
        "mesh-offsets",
        parents=[common],
        help="fit per-landmark offsets to another landmark convention from annotated scans, photos or a 3D"
        " mean face",
    )
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data", help="folder of meshes with landmark files of the same stem, your convention"
    )
    source.add_argument(
        "--photos",
        help="or a folder of photos with 68-point .pts (e.g. 300-W's training sets): their annotators' way",
    )
    source.add_argument(
        "--mean-face",
        help="or a 3D mean face annotated your way: SPIGA's models3D/mean_face_3D_68.txt or a 68-point"
        " 3D landmark file, any units",
    )
    fit.add_argument(
        "--teacher", default="3ddfa-v2-mb05", help="with --photos: the 3DMM regressor fitting the photos"
    )
    fit.add_argument("--teacher-weights", help="with --photos: that regressor's weights")
    fit.add_argument("--bfm", help=f"with --photos: {BFM_HELP}")
    fit.add_argument(
        "--markup-rules",
        action=argparse.BooleanOptionalAction,
        help="also apply the 68-point markup's rules (inner lips where they meet when the lips meet; nose"
        " bridge, nostrils, eyelids and outer lips evenly spaced) after the offsets (default: with --photos"
        " and --mean-face)",
    )
    fit.add_argument("--out", required=True, help="the offsets' JSON file, for --offsets")
    fit.add_argument("--plot", help="also draw the offsets on the mean face (PNG)")
    add_overwrite(fit)
    _add_landmarker_args(fit, conventions=False)
    fit.set_defaults(run=cmd_fit_mesh_offsets)


def _register_fit_prior(fitters, common: argparse.ArgumentParser) -> None:
    fit = fitters.add_parser(
        "mesh-prior",
        parents=[common],
        help="add a statistical shape prior, made from the BFM, to mesh landmarker weights",
    )
    fit.add_argument("--weights", required=True, help="two-pass mesh landmarker weights (.safetensors)")
    fit.add_argument("--bfm", help="BFM folder with dense bases (default: $FACEGRAPH_BFM)")
    fit.add_argument("--out", required=True, help="the weights with the prior (.safetensors)")
    # Defaults (None here) are the shipped prior's recipe, in facegraph.training.mesh_prior, which the
    # parser does not import (it would load torch for every command).
    recipe = " (default: the shipped prior's)"
    fit.add_argument("--scans", type=int, help=f"synthetic scans the network's noise is measured on{recipe}")
    fit.add_argument("--seed", type=int, help=f"seed of those scans{recipe}")
    fit.add_argument(
        "--off-model-mm",
        type=finite_float,
        help=f"spread of shape beyond the BFM's components, mm per coordinate{recipe}",
    )
    add_overwrite(fit)
    add_quiet(fit)
    fit.set_defaults(run=cmd_fit_mesh_prior)


def register(groups: dict, common: argparse.ArgumentParser) -> None:
    """Add the scan commands to the root parser's command groups."""
    _register_mesh(groups["commands"], groups["eval"], common)
    _register_train(groups["train"], common)
    _register_fit_offsets(groups["fit"], common)
    _register_fit_prior(groups["fit"], common)
