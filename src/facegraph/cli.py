"""The ``facegraph`` command: thin wiring of the package's readers, models and evaluations.

User errors (a bad file, folder or flag) print one line and exit with code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facegraph import __version__
from facegraph.errors import InputError

EXIT_USER_ERROR = 2
CACHE_POINTS = 16_384  # dense surface points kept per synthetic scan, thinned per use


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
    from facegraph.registry import MODELS

    for spec in MODELS.values():
        print(f"{spec.name}\n  {spec.description}\n  weights: {spec.weights_source}")
    from facegraph.mesh.landmarker import bundled_weights

    print(
        "facegraph-mesh\n  68 landmarks on 3D face scans (2S-SGCN design, the project's configuration)"
        f"\n  weights: shipped, {bundled_weights().name} (model card beside it)"
    )


def _photo_model(args: argparse.Namespace):
    """The photo model the arguments name; with ``--onnx FILE`` its image network runs in ONNX Runtime,
    with ``--mirror-average`` each face is also predicted mirrored and the two averaged."""
    from facegraph.registry import load_model

    model = load_model(args.model, args.weights, args.bfm)
    if args.onnx:
        from facegraph.image.onnx import OnnxRegressor, OnnxSession
        from facegraph.image.synergynet import SynergyRegressor

        if not isinstance(model, SynergyRegressor):
            raise InputError(f"--onnx runs synergynet's exported network, not {args.model}'s")
        model = OnnxRegressor(model, OnnxSession(args.onnx))
    if args.mirror_average:
        from facegraph.image.crop_regressor import MirrorAveraged
        from facegraph.schemes import get_scheme

        model = MirrorAveraged(model, get_scheme("ibug68").flip_order)
    return model


def cmd_eval_aflw2000(args: argparse.Namespace) -> None:
    from facegraph.datasets.aflw2000_3d import load_aflw2000
    from facegraph.evaluation.aflw2000 import evaluate_aflw2000

    for out in (args.json, args.plot):
        _check_output_folder(out)
    dataset = load_aflw2000(args.data)
    model = _photo_model(args)
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

    for out in (args.json, args.plot):
        _check_output_folder(out)
    dataset = load_faces68(args.data, images=args.images)
    model = _photo_model(args)
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


def _expand_paths(inputs: list[str], suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """The files named, with folders expanded to the ``kind`` files (by suffix) they hold, sorted."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
            if not found:
                raise InputError(f"holds no {kind} files ({', '.join(suffixes)})", path)
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def _mesh_paths(inputs: list[str]) -> list[Path]:
    from facegraph.io.meshes import MESH_SUFFIXES

    return _expand_paths(inputs, MESH_SUFFIXES, "mesh")


def _scan_report(path: Path, result) -> dict:
    return {
        "mesh": str(path),
        "scheme": "ibug68",
        "points": result.points.tolist(),
        "vertex_indices": result.vertex_indices.tolist(),
        "refine": result.refine,
        "notes": result.notes,
    }


def cmd_mesh(args: argparse.Namespace) -> None:
    from facegraph.io.landmarks import write_json, write_pp
    from facegraph.io.meshes import read_mesh, write_points_ply
    from facegraph.mesh.landmarker import MeshLandmarker
    from facegraph.viz.mesh_views import plot_mesh_landmarks

    paths = _mesh_paths(args.scans)
    _check_output_folder(args.json)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    landmarker = MeshLandmarker(args.weights)
    offsets = _mesh_offsets(args)
    reports, failures = [], 0
    for path in _progress(paths, "scans", quiet=args.quiet or len(paths) == 1):
        try:
            mesh = read_mesh(path, normals=False)
            try:
                result = landmarker(
                    mesh, args.refine, args.units, offsets=offsets, shape_prior=args.shape_prior
                )
            except InputError as exc:
                raise exc if exc.path else InputError(exc.problem, path) from exc
        except InputError as exc:
            if getattr(args, "debug", False) or len(paths) == 1:
                raise
            failures += 1
            print(f"facegraph: error: {exc if exc.path else f'{path}: {exc}'}", file=sys.stderr)
            continue
        report = _scan_report(path, result)
        reports.append(report)
        notes = "".join(f"\n  note: {note}" for note in result.notes)
        print(f"{path}: 68 landmarks (refine: {result.refine}, {result.seconds['total']:.2f} s){notes}")
        if out is not None:
            landmarks = result.to_landmarks()
            write_json(out / f"{path.stem}.json", landmarks)
            write_points_ply(out / f"{path.stem}_landmarks.ply", result.points)
            write_pp(out / f"{path.stem}.pp", landmarks)
            plot_mesh_landmarks(mesh.vertices, result.points, out / f"{path.stem}.png", title=path.name)
    if args.json and reports:
        _write_json(args.json, reports[0] if len(paths) == 1 else {"scans": reports})
    if failures:
        raise InputError(f"{failures} of {len(paths)} scans could not be landmarked (see above)")


def _mesh_offsets(args: argparse.Namespace):
    """The convention of --offsets, its markup rules switched on or off by --markup-rules if given."""
    from facegraph.mesh.conventions import load_offsets
    from facegraph.mesh.markup import MARKUP_RULES

    if not args.offsets:
        if args.markup_rules is not None:
            raise InputError(
                "--markup-rules and --no-markup-rules need --offsets (rules follow a convention)"
            )
        return None
    offsets = load_offsets(args.offsets)
    if args.markup_rules is None:
        return offsets
    return dataclasses.replace(offsets, rules=MARKUP_RULES if args.markup_rules else ())


def _annotated_scans(data: str) -> list:
    """The scans of a folder that have ground truth (a landmark file of the same stem)."""
    from facegraph.datasets.scans import folder_records

    records = [r for r in folder_records(data) if r.landmarks is not None or r.vertex_indices is not None]
    if not records:
        raise InputError(
            "no mesh has a ground-truth landmark file of the same stem (.json, .ljson, .pp)", data
        )
    return records


def cmd_eval_mesh(args: argparse.Namespace) -> None:
    from facegraph.evaluation.meshes import evaluate_scans
    from facegraph.mesh.checks import MM_PER_UNIT
    from facegraph.mesh.landmarker import MeshLandmarker

    _check_output_folder(args.json)
    _check_output_folder(args.plot)
    records = _annotated_scans(args.data)
    landmarker = MeshLandmarker(args.weights)
    offsets = _mesh_offsets(args)
    report = evaluate_scans(
        records,
        lambda mesh: (
            landmarker(mesh, args.refine, args.units, offsets=offsets, shape_prior=args.shape_prior).points
        ),
        progress=not args.quiet,
        to_mm=MM_PER_UNIT[args.units or "mm"],
    )
    rows = [("scans", "mean (mm)", "inner 51 (mm)", "median (mm)", "s/scan")]
    rows.append(
        (
            str(report["n"]),
            f"{report['mean_mm']:.3f}",
            f"{report['mean_mm_51']:.3f}",
            f"{report['median_mm']:.3f}",
            f"{report['seconds_per_mesh']:.3f}",
        )
    )
    print(_table(rows))
    if args.json:
        _write_json(args.json, report)
    if args.plot:
        from facegraph.viz.curves import plot_ced

        errors = np.array([m["mean_mm"] for m in report["per_mesh"]])
        plot_ced(
            {"mean over 68": errors, "inner 51": np.array([m["mean_mm_51"] for m in report["per_mesh"]])},
            args.plot,
            max_error=10.0,
            title=f"{Path(args.data).name}: landmark error",
            xlabel="error (mm)",
        )


def _progress(items: list, desc: str, quiet: bool, unit: str = "scan"):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=quiet)


def _point_cache(args: argparse.Namespace, out: Path, n_scans: int, seed: int, name: str):
    """Generate (or reuse from the output folder) a cache of synthetic scans."""
    from facegraph.datasets.synthetic_faces import Augmentation, PointCache, SyntheticFaces, build_point_cache

    warped = f"-warp{args.warp:g}" if args.warp else ""
    path = out / f"cache-{name}-{n_scans}-seed{seed}{warped}.npz"
    if path.is_file():
        with np.load(path) as stored:
            return PointCache(stored["points"], stored["normals"], stored["landmarks"])
    faces = SyntheticFaces(args.bfm, Augmentation(warp=args.warp))
    cache = build_point_cache(faces, n_scans, CACHE_POINTS, seed, progress=not args.quiet)
    from facegraph.io.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, points=cache.points, normals=cache.normals, landmarks=cache.landmarks)
    return cache


def cmd_train_mesh(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from facegraph.mesh.preprocess import CONFIGS, get_config
    from facegraph.training.mesh import train_mesh

    if args.config not in CONFIGS:
        raise InputError(f"unknown --config {args.config!r} (known: {', '.join(CONFIGS)})")
    config = get_config(args.config, args.points)
    if args.epochs is not None:
        config = replace(config, epochs=args.epochs)
    if args.lr_schedule is not None:
        config = replace(config, lr_schedule=args.lr_schedule)
    if args.learning_rate is not None:
        config = replace(config, learning_rate=args.learning_rate)
    if args.second_pass_fraction is not None:
        # Both kinds of sample are needed: whole scans teach the first pass to find the face, face
        # crops teach the passes that answer.
        if not config.two_pass or not 0.0 < args.second_pass_fraction < 1.0:
            raise InputError(
                f"--second-pass-fraction needs a two-pass configuration and a value strictly between 0 and 1 "
                f"(got {args.second_pass_fraction:g} for {config.name})"
            )
        config = replace(config, second_pass_fraction=args.second_pass_fraction)
    if not 0.0 <= args.warp <= 1.0:
        raise InputError(f"--warp is a share of the faces, between 0 and 1 (got {args.warp:g})")
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise InputError("weights file not found", init)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = _point_cache(args, out, args.scans, args.seed, "train")
    val = _point_cache(args, out, args.val_scans, args.seed + 7919, "val")
    result = train_mesh(
        config,
        train,
        val,
        out,
        seed=args.seed,
        resume=args.resume,
        max_minutes=args.max_minutes,
        workers=args.workers,
        init=init,
    )
    print(
        f"best epoch {result.best_epoch}: validation {result.best_val_mm:.3f} mm"
        f" -> {out / 'best.safetensors'}"
    )


def cmd_train_mesh_offsets(args: argparse.Namespace) -> None:
    from facegraph.evaluation.meshes import predict_scans
    from facegraph.mesh.checks import MM_PER_UNIT
    from facegraph.mesh.conventions import fit_offsets
    from facegraph.mesh.landmarker import MeshLandmarker
    from facegraph.metrics.landmarks import mesh_landmark_errors

    _check_output_folder(args.out)
    _check_output_folder(args.plot)
    landmarker = MeshLandmarker(args.weights)
    if landmarker.canonical_landmarks is None:
        raise InputError(
            "convention offsets need weights with a canonical frame (facegraph-mesh)", args.weights
        )
    if args.photos:
        offsets = _offsets_from_photos(args)
        title = f"the annotators of {Path(args.photos).name}"
        _write_and_plot_offsets(offsets, landmarker.canonical_landmarks, title, args)
        return
    if args.mean_face:
        offsets = _offsets_from_mean_face(args.mean_face, landmarker.canonical_landmarks)
        _write_and_plot_offsets(offsets, landmarker.canonical_landmarks, Path(args.mean_face).name, args)
        return
    records = _annotated_scans(args.data)
    run = predict_scans(
        records,
        lambda mesh: landmarker(mesh, args.refine, args.units, shape_prior=args.shape_prior).points,
        not args.quiet,
    )
    to_mm = MM_PER_UNIT[args.units or "mm"]
    predictions, truths = run.predictions * to_mm, run.truths * to_mm
    source = f"{len(run.names)} scans of {Path(args.data).resolve()}"
    offsets = fit_offsets(predictions, truths, landmarker.canonical_landmarks, source)
    before = mesh_landmark_errors(predictions, truths)["mean_51"].mean()
    print(f"{len(run.names)} scans, inner-51 error without offsets {before:.2f} mm")
    _write_and_plot_offsets(offsets, landmarker.canonical_landmarks, source, args)


def cmd_train_mesh_prior(args: argparse.Namespace) -> None:
    from facegraph.morphable.bfm import resolve_bfm_folder
    from facegraph.training.mesh_prior import add_shape_prior

    _check_output_folder(args.out)
    if args.scans < 10:
        raise InputError(f"--scans: the network's noise needs at least 10 scans, got {args.scans}")
    if not args.off_model_mm >= 0:
        raise InputError(f"--off-model-mm must not be negative, got {args.off_model_mm}")
    prior = add_shape_prior(
        args.weights,
        resolve_bfm_folder(args.bfm),
        args.out,
        n_scans=args.scans,
        seed=args.seed,
        off_model_mm=args.off_model_mm,
        progress=not args.quiet,
    )
    print(
        f"shape prior: {len(prior.variances)} components of the BFM's landmarks; the network's noise"
        f" over the inner 51 points {prior.noise_mm[17:].mean():.2f} mm per coordinate ({args.scans} scans)"
        f" -> {args.out}"
    )


def _offsets_from_photos(args: argparse.Namespace):
    """Offsets from where the annotators of a folder of 68-point photos put the landmarks, relative to
    a 3DMM regressor's fits (its morphable model's keypoints are the mesh network's convention)."""
    from facegraph.datasets.face_crops import load_faces68_crops
    from facegraph.datasets.synthetic_faces import MICRONS_PER_MM
    from facegraph.registry import get_model_spec, load_model
    from facegraph.schemes.registry import get_scheme
    from facegraph.training.mesh_offsets import (
        JAW,
        MIN_LABELLED_FACES,
        annotator_offsets,
        mesh_offsets_from_photos,
    )

    spec = get_model_spec(args.teacher)
    if spec.needs_weights and args.teacher_weights is None:
        raise InputError(f"--photos needs --teacher-weights: {spec.weights_source}")
    model = load_model(args.teacher, weights=args.teacher_weights, bfm=args.bfm)
    if model.morphable is None:
        raise InputError(f"--photos needs the BFM to decode {args.teacher}'s fits: pass --bfm DIR")
    faces = load_faces68_crops(args.photos, progress=not args.quiet)
    offsets, counts = annotator_offsets(faces, model, progress=not args.quiet)
    if not counts[len(JAW) :].any():
        raise InputError(
            f"{len(faces)} annotated faces: a convention needs at least {MIN_LABELLED_FACES}", args.photos
        )
    source = (
        f"{len(faces)} faces of {Path(args.photos).resolve().name}: where their annotators put the inner 51"
        f" points against {args.teacher}'s fits (in-plane, mirror-symmetric; jaw and depth left to the model)"
    )
    flip_order = np.array(get_scheme("ibug68").flip_order)
    return mesh_offsets_from_photos(offsets, counts, 1.0 / MICRONS_PER_MM, flip_order, source)


def _offsets_from_mean_face(path: str, canonical: np.ndarray):
    """Offsets from a 3D mean face annotated another way: SPIGA's ``mean_face_3D_68.txt`` or a 68-point
    3D landmark file (.json, .ljson, .pp, .csv), in any units."""
    from facegraph.io.landmarks import read_landmarks, read_spiga_mean_face
    from facegraph.schemes.registry import get_scheme
    from facegraph.training.mesh_offsets import offsets_from_mean_face

    name = f"the 3D mean face {Path(path).name}"
    if Path(path).suffix.lower() == ".txt":
        points = read_spiga_mean_face(path)
        name = f"SPIGA's 3D mean face ({Path(path).name})"
    else:
        landmarks = read_landmarks(path, scheme="ibug68")
        if landmarks.points.shape != (68, 3) or (
            landmarks.visible is not None and not landmarks.visible.all()
        ):
            raise InputError("a mean face needs all 68 points in 3D", path)
        points = landmarks.points
    source = (
        f"{name}: where its annotation puts the inner 51 points"
        " (in-plane, mirror-symmetric; jaw and depth left to the model)"
    )
    flip_order = np.array(get_scheme("ibug68").flip_order)
    try:
        return offsets_from_mean_face(points, canonical, flip_order, source)
    except InputError as exc:
        raise InputError(exc.problem, path) from None


def _write_and_plot_offsets(offsets, canonical: np.ndarray, title: str, args: argparse.Namespace) -> None:
    """Write the offsets, with the markup rules unless told otherwise: they describe the 68-point
    markup, which photo annotations and mean faces follow; annotated scans (--data) may not."""
    from facegraph.mesh.conventions import write_offsets
    from facegraph.mesh.markup import MARKUP_RULES

    with_rules = args.markup_rules if args.markup_rules is not None else args.data is None
    offsets = dataclasses.replace(offsets, rules=MARKUP_RULES if with_rules else ())
    write_offsets(args.out, offsets)
    if args.plot:
        from facegraph.viz.mesh_views import plot_landmark_offsets

        plot_landmark_offsets(canonical, offsets.offsets, args.plot, title=f"convention offsets: {title}")
    sizes = np.linalg.norm(offsets.offsets, axis=1)
    largest = ", ".join(f"{i} {sizes[i]:.1f}" for i in np.argsort(-sizes)[:5])
    rules = f"; markup rules: {', '.join(offsets.rules)}" if offsets.rules else ""
    print(f"largest offsets (landmark mm): {largest}{rules} -> {args.out}")


def _parse_box(text: str) -> np.ndarray:
    try:
        box = np.array([float(v) for v in text.split(",")])
    except ValueError:
        box = np.array([])
    if box.shape != (4,) or not np.isfinite(box).all():
        raise InputError(f"--box expects four numbers x0,y0,x1,y1, got {text!r}")
    return box


def cmd_image(args: argparse.Namespace) -> None:
    from facegraph.datasets.faces68 import PHOTO_SUFFIXES
    from facegraph.image import FaceAnalyzer, face_to_dict
    from facegraph.io import read_image, write_image
    from facegraph.io.meshes import Mesh, write_mesh
    from facegraph.viz.annotate import annotate_faces

    photos = _expand_paths(args.images, PHOTO_SUFFIXES, "photo")
    if args.out:
        written = Path(args.out).resolve()
        photos = [p for p in photos if written not in p.resolve().parents]
    box = None if args.box is None else _parse_box(args.box)
    if args.json not in (None, "-"):
        _check_output_folder(args.json)
    if args.mesh and not args.out:
        raise InputError("--mesh writes one OBJ per face into --out DIR: pass --out")
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    analyzer = FaceAnalyzer(_photo_model(args), args.detector, min_score=args.min_score)
    if args.mesh:
        analyzer.check_mesh()
    records, failures = [], 0
    for photo in _progress(photos, "photos", args.quiet or len(photos) == 1, unit="photo"):
        try:
            rgb = read_image(photo)
            faces = analyzer.analyze(rgb, None if box is None else box[None], mesh=args.mesh)
        except InputError as exc:
            if exc.path is None:
                exc = InputError(exc.problem, photo)
            if len(photos) == 1:
                raise exc
            print(f"facegraph: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        if not faces:
            print(f"{photo}: no face found", file=sys.stderr)
        record = {
            "photo": str(photo),
            "size": [rgb.shape[1], rgb.shape[0]],
            "faces": [face_to_dict(f) for f in faces],
        }
        records.append(record)
        for i, face in enumerate(faces):
            pose = face.pose
            print(
                f"{photo}: face {i + 1}: box {', '.join(f'{v:.0f}' for v in face.box)}  "
                f"yaw {pose.yaw:+.1f}  pitch {pose.pitch:+.1f}  roll {pose.roll:+.1f}",
                file=sys.stderr if args.json == "-" else sys.stdout,
            )
        if out is not None:
            write_image(out / f"{photo.stem}-annotated.png", annotate_faces(rgb, faces))
            _write_json(str(out / f"{photo.stem}.json"), record)
            for i, face in enumerate(faces):
                if face.mesh_vertices is not None:
                    write_mesh(
                        out / f"{photo.stem}-face{i + 1}.obj", Mesh(face.mesh_vertices, face.mesh_faces)
                    )
    if args.json is not None:
        report = records[0] if len(photos) == 1 else {"photos": records}
        if args.json == "-":
            print(json.dumps(_finite_or_null(report), indent=2))
        else:
            _write_json(args.json, report)
    if failures:
        raise InputError(f"{failures} of {len(photos)} photos could not be read (see above)")


def cmd_export_onnx(args: argparse.Namespace) -> None:
    import tempfile

    from facegraph.image.onnx import export_onnx, quantize_int8
    from facegraph.image.synergynet import SynergyRegressor
    from facegraph.registry import load_model

    _check_output_folder(args.output)
    if args.int8 and not args.calibration:
        raise InputError("--int8 needs --calibration DIR: photos of faces to calibrate on")
    model = load_model(args.model, args.weights, args.bfm)
    if not isinstance(model, SynergyRegressor):
        raise InputError(f"ONNX export supports synergynet, not {args.model}")
    if not args.int8:
        parity = export_onnx(model, args.output)
        print(
            f"wrote {args.output}; ONNX Runtime vs PyTorch on {parity['batch']} crops: "
            f"largest difference {parity['max_abs_difference']:.2e}"
        )
        return
    crops = _calibration_crops(model, args.calibration, args.calibration_faces, args.quiet)
    with tempfile.TemporaryDirectory() as folder:
        float_path = Path(folder) / "float.onnx"
        export_onnx(model, float_path)
        report = quantize_int8(model, float_path, args.output, crops)
    faces = _count(report["faces"], "face")
    shift = f"{report['mean_shift_px']:.2f} px on average (largest {report['max_shift_px']:.2f})"
    print(
        f"wrote {args.output} (int8, calibrated on {faces}); against the float model the landmarks move"
        f" {shift} in the 120-pixel crop"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _calibration_crops(model, folders: list[str], n_faces: int, quiet: bool) -> np.ndarray:
    """Up to n_faces detected face crops from photos spread evenly over the folders' sorted photos."""
    from facegraph.datasets.faces68 import PHOTO_SUFFIXES
    from facegraph.image import FaceAnalyzer

    if n_faces < 1:
        raise InputError(f"--calibration-faces must be at least 1, got {n_faces}")
    photos = _expand_paths(folders, PHOTO_SUFFIXES, "photo")
    photos = photos[:: max(1, len(photos) // n_faces)]
    analyzer = FaceAnalyzer(model, "dlib-hog")
    crops: list[np.ndarray] = []
    bar = _progress(photos, "calibration photos", quiet, unit="photo")
    for photo in bar:
        try:
            crops.extend(analyzer.face_crops(photo))
        except InputError as exc:
            print(f"facegraph: skipped: {exc}", file=sys.stderr)
        if len(crops) >= n_faces:
            break
    if not crops:
        raise InputError("no face was found in the calibration photos", folders[0])
    return np.stack(crops[:n_faces])


def cmd_train_synergynet(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from facegraph.datasets.face_crops import concatenate, load_aflw_train, load_faces68_crops
    from facegraph.morphable.bfm import load_bfm
    from facegraph.registry import load_model
    from facegraph.training.synergynet import get_config, scale_augmentation, train_synergynet

    config = get_config(args.config)
    if args.epochs is not None:
        config = replace(config, epochs=args.epochs)
    if args.learning_rate is not None:
        config = replace(config, lr=args.learning_rate)
    if args.human_convention is not None:
        config = replace(config, human_convention=args.human_convention)
    if args.targets is not None:
        config = replace(config, targets=args.targets)
    if args.whitening is not None:
        config = replace(config, whitening=args.whitening)
    if args.augmentation is not None:
        config = scale_augmentation(config, args.augmentation)
    init = Path(args.init) if args.init else None
    if init is not None and not init.is_file():
        raise InputError("checkpoint not found", init)
    teacher = load_model(args.teacher, weights=args.teacher_weights, bfm=args.bfm)
    parts = [load_aflw_train(folder, progress=not args.quiet) for folder in args.aflw]
    parts += [load_faces68_crops(folder, progress=not args.quiet) for folder in args.faces68]
    if not parts:
        raise InputError("no training data: pass --aflw DIR and/or --faces68 DIR")
    morphable = teacher.morphable if args.bfm is None else load_bfm(args.bfm)
    best = train_synergynet(
        concatenate(parts),
        teacher,
        morphable,
        args.out,
        config,
        seed=args.seed,
        resume=args.resume,
        max_minutes=args.max_minutes,
        progress=not args.quiet,
        init=init,
    )
    print(
        f"best epoch {best['epoch']}: validation NME vs human labels {best['nme_human']:.3f}"
        f" (human convention: {config.human_convention}; targets: {config.targets})"
        f" -> {Path(args.out) / 'best.safetensors'}"
    )


def _add_model_args(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--model", default=default, required=default is None, help="model name (see `facegraph models`)"
    )
    parser.add_argument("--weights", help="weights file or folder (peers: their released checkpoint)")
    parser.add_argument(
        "--bfm", help="BFM folder (default: $FACEGRAPH_BFM, else a bfm/ folder beside the weights')"
    )
    parser.add_argument("--onnx", help="synergynet: run its network from this exported ONNX file")
    parser.add_argument(
        "--mirror-average",
        action="store_true",
        help="predict each face and its mirror image and average their landmarks and pose (twice the work;"
        " the dense mesh and the parameters stay the face's own)",
    )
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--plot", help="write the cumulative error curves as a PNG here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_mesh_args(parser: argparse.ArgumentParser) -> None:
    from facegraph.mesh.landmarker import DEFAULT_REFINE
    from facegraph.mesh.refine import REFINE_METHODS

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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


OFFSETS_HELP = (
    "move the landmarks to another convention: '300w' (shipped: where 300-W's annotators put the inner"
    " points), 'spiga' (shipped: where SPIGA's 3D mean face puts them) or an offsets file from"
    " 'facegraph train mesh-offsets'; both shipped ones also apply the 68-point markup's rules"
)
MARKUP_RULES_HELP = (
    "with --offsets: apply the 68-point markup's rules after the offsets, or not (default: as the"
    " convention's file says)"
)


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
    _add_model_args(aflw, default="synergynet")
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
    _add_model_args(w300, default="synergynet")
    w300.set_defaults(run=cmd_eval_300w)

    convert = commands.add_parser(
        "convert", parents=[common], help="convert a landmark file between formats and schemes"
    )
    convert.add_argument("input", help="landmark file: .pts, .ljson, .pp, .json or .csv")
    convert.add_argument("output", help="output file; the format follows its suffix")
    convert.add_argument("--scheme", help="the input's scheme when its point count is ambiguous")
    convert.add_argument("--to", help="target scheme, e.g. five, ibug51, aflw21")
    convert.set_defaults(run=cmd_convert)

    mesh = commands.add_parser(
        "mesh", parents=[common], help="place the 68 landmarks on 3D face scans (meshes or point clouds)"
    )
    mesh.add_argument("scans", nargs="+", help="mesh files (.obj .ply .stl .off) or folders of them")
    _add_mesh_args(mesh)
    mesh.add_argument("--offsets", help=OFFSETS_HELP)
    mesh.add_argument("--markup-rules", action=argparse.BooleanOptionalAction, help=MARKUP_RULES_HELP)
    mesh.add_argument("--json", help="write the landmarks as JSON here (several scans: a list under 'scans')")
    mesh.add_argument("--out", help="folder for each scan's landmarks (.json, .pp, _landmarks.ply) and a PNG")
    mesh.set_defaults(run=cmd_mesh)

    eval_mesh = benchmarks.add_parser(
        "mesh", parents=[common], help="3D landmark error (mm) over a folder of scans with ground truth"
    )
    eval_mesh.add_argument(
        "--data", required=True, help="folder of meshes (mm) with landmark files of the same stem"
    )
    _add_mesh_args(eval_mesh)
    eval_mesh.add_argument("--offsets", help=OFFSETS_HELP)
    eval_mesh.add_argument("--markup-rules", action=argparse.BooleanOptionalAction, help=MARKUP_RULES_HELP)
    eval_mesh.add_argument("--json", help="write the report as JSON here")
    eval_mesh.add_argument("--plot", help="write the cumulative error curves as a PNG here")
    eval_mesh.set_defaults(run=cmd_eval_mesh)

    train = commands.add_parser("train", help="train a model")
    trainers = train.add_subparsers(dest="trainer", required=True, metavar="MODEL")
    train_mesh = trainers.add_parser(
        "mesh", parents=[common], help="train the mesh landmarker on synthetic BFM scans"
    )
    train_mesh.add_argument("--config", default="facegraph-mesh", help="2s-sgcn-paper or facegraph-mesh")
    train_mesh.add_argument("--out", required=True, help="output folder (checkpoints, caches, history)")
    train_mesh.add_argument("--bfm", help="BFM folder with dense bases (default: $FACEGRAPH_BFM)")
    train_mesh.add_argument("--scans", type=int, default=2400, help="synthetic training scans (default 2400)")
    train_mesh.add_argument("--val-scans", type=int, default=200, help="validation scans (default 200)")
    train_mesh.add_argument("--points", type=int, help="override the configuration's input point count")
    train_mesh.add_argument("--epochs", type=int, help="override the configuration's epochs")
    train_mesh.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this budget")
    train_mesh.add_argument("--init", help="start from these weights (fine-tuning), e.g. the shipped ones")
    train_mesh.add_argument("--learning-rate", type=float, help="override the configuration's learning rate")
    train_mesh.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), help="override the configuration's schedule"
    )
    train_mesh.add_argument(
        "--second-pass-fraction",
        type=float,
        help="share of training samples that are second-pass face crops (two-pass configs; default 0.5)",
    )
    train_mesh.add_argument(
        "--warp",
        type=float,
        default=0.0,
        help="share of generated faces bent by smooth bumps, shape variation beyond the BFM's (default 0)",
    )
    train_mesh.add_argument("--seed", type=int, default=0)
    train_mesh.add_argument("--workers", type=int, default=1, help="data loader processes (default 1)")
    train_mesh.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train_mesh.add_argument("--quiet", action="store_true", help="no progress bar while generating scans")
    train_mesh.set_defaults(run=cmd_train_mesh)
    train_offsets = trainers.add_parser(
        "mesh-offsets",
        parents=[common],
        help="fit per-landmark offsets to another landmark convention from annotated scans, photos or a 3D"
        " mean face",
    )
    offsets_source = train_offsets.add_mutually_exclusive_group(required=True)
    offsets_source.add_argument(
        "--data", help="folder of meshes with landmark files of the same stem, your convention"
    )
    offsets_source.add_argument(
        "--photos",
        help="or a folder of photos with 68-point .pts (e.g. 300-W's training sets): their annotators' way",
    )
    offsets_source.add_argument(
        "--mean-face",
        help="or a 3D mean face annotated your way: SPIGA's models3D/mean_face_3D_68.txt or a 68-point"
        " 3D landmark file, any units",
    )
    train_offsets.add_argument(
        "--teacher", default="3ddfa-v2-mb05", help="with --photos: the 3DMM regressor fitting the photos"
    )
    train_offsets.add_argument("--teacher-weights", help="with --photos: that regressor's weights")
    train_offsets.add_argument(
        "--bfm",
        help="with --photos: BFM folder (default: $FACEGRAPH_BFM, else a bfm/ folder beside the weights')",
    )
    train_offsets.add_argument(
        "--markup-rules",
        action=argparse.BooleanOptionalAction,
        help="also apply the 68-point markup's rules (inner lips where they meet when the lips meet; nose"
        " bridge, nostrils, eyelids and outer lips evenly spaced) after the offsets (default: with --photos"
        " and --mean-face)",
    )
    train_offsets.add_argument("--out", required=True, help="the offsets' JSON file, for --offsets")
    train_offsets.add_argument("--plot", help="also draw the offsets on the mean face (PNG)")
    _add_mesh_args(train_offsets)
    train_offsets.set_defaults(run=cmd_train_mesh_offsets)
    from facegraph.training import mesh_prior

    train_prior = trainers.add_parser(
        "mesh-prior",
        parents=[common],
        help="add a statistical shape prior, made from the BFM, to mesh landmarker weights",
    )
    train_prior.add_argument(
        "--weights", required=True, help="two-pass mesh landmarker weights (.safetensors)"
    )
    train_prior.add_argument("--bfm", help="BFM folder with dense bases (default: $FACEGRAPH_BFM)")
    train_prior.add_argument("--out", required=True, help="the weights with the prior (.safetensors)")
    train_prior.add_argument(
        "--scans",
        type=int,
        default=mesh_prior.DEFAULT_SCANS,
        help="synthetic scans the network's noise is measured on",
    )
    train_prior.add_argument("--seed", type=int, default=mesh_prior.DEFAULT_SEED)
    train_prior.add_argument(
        "--off-model-mm",
        type=float,
        default=mesh_prior.DEFAULT_OFF_MODEL_MM,
        help="spread of shape beyond the BFM's components, mm per coordinate",
    )
    train_prior.add_argument("--quiet", action="store_true", help="no progress bar")
    train_prior.set_defaults(run=cmd_train_mesh_prior)
    train_photo = trainers.add_parser(
        "synergynet", parents=[common], help="train SynergyNet on face crops, distilled from a teacher"
    )
    train_photo.add_argument(
        "--config", default="facegraph-photo", help="facegraph-photo or synergynet-paper"
    )
    train_photo.add_argument(
        "--out", required=True, help="output folder (checkpoints, teacher labels, history)"
    )
    train_photo.add_argument("--aflw", action="append", default=[], help="an aflw-train folder (repeatable)")
    train_photo.add_argument(
        "--faces68", action="append", default=[], help="a folder of photos with 68-point .pts (repeatable)"
    )
    train_photo.add_argument("--teacher", default="3ddfa-v2-mb05", help="the model giving pseudo-labels")
    train_photo.add_argument("--teacher-weights", required=True, help="the teacher's weights")
    train_photo.add_argument("--bfm", help="BFM folder (default: the teacher's)")
    train_photo.add_argument("--epochs", type=int, help="override the configuration's epochs")
    train_photo.add_argument("--max-minutes", type=float, help="stop after the epoch that passes this budget")
    train_photo.add_argument(
        "--init",
        help="start from another run's last.pt (every network) or a weights file such as the shipped "
        "one (the image network; fine-tuning; keep its data and --seed)",
    )
    train_photo.add_argument("--learning-rate", type=float, help="override the configuration's learning rate")
    train_photo.add_argument(
        "--human-convention",
        choices=("teacher", "annotators"),
        help="use the human points as labelled ('annotators', the configurations' default) or move them "
        "into the teacher's landmark convention first ('teacher')",
    )
    train_photo.add_argument(
        "--targets",
        choices=("teacher", "refitted"),
        help="distil the teacher's fits as they are ('teacher', the default) or refitted to each face's "
        "human points first ('refitted')",
    )
    train_photo.add_argument(
        "--whitening",
        choices=("augmented", "plain"),
        help="scale the parameter losses by the targets' spread under augmentation ('augmented', the "
        "default) or before it ('plain', how runs before 2026-11-22 trained)",
    )
    train_photo.add_argument(
        "--augmentation",
        type=float,
        metavar="FACTOR",
        help="scale the configuration's rotation, scale, shift and colour augmentation (flips unchanged)",
    )
    train_photo.add_argument("--seed", type=int, default=0)
    train_photo.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train_photo.add_argument("--quiet", action="store_true", help="no progress bars")
    train_photo.set_defaults(run=cmd_train_synergynet)

    image = commands.add_parser(
        "image", parents=[common], help="68 2D/3D landmarks, head pose and the dense face for photos"
    )
    image.add_argument("images", nargs="+", metavar="IMG", help="photos, or folders of photos")
    image.add_argument("--model", default="synergynet", help="model name (default synergynet, shipped)")
    image.add_argument("--weights", help="weights (default: the shipped ones)")
    image.add_argument("--bfm", help="BFM folder (default: $FACEGRAPH_BFM); needed for --mesh")
    image.add_argument("--onnx", help="run the network from this `facegraph export onnx` file (ONNX Runtime)")
    image.add_argument(
        "--mirror-average",
        action="store_true",
        help="predict each face and its mirror image and average their landmarks and pose (twice the work;"
        " the dense mesh and the parameters stay the face's own)",
    )
    image.add_argument("--detector", default="dlib-hog", help="face detector (default dlib-hog)")
    image.add_argument(
        "--min-score",
        type=float,
        default=0.25,
        help="lowest detector score kept (default 0.25; dlib's own: 0)",
    )
    image.add_argument("--box", help="x0,y0,x1,y1: the face box in pixels; skips detection")
    image.add_argument("--json", help="write the faces as JSON here ('-': standard output)")
    image.add_argument("--out", help="folder for annotated PNGs, per-photo JSON and meshes")
    image.add_argument("--mesh", action="store_true", help="also write each dense face as OBJ (needs --out)")
    image.add_argument("--quiet", action="store_true", help="no progress bar")
    image.set_defaults(run=cmd_image)

    export = commands.add_parser("export", help="export a model to another runtime")
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
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
    onnx.add_argument("--quiet", action="store_true", help="no progress bar")
    onnx.set_defaults(run=cmd_export_onnx)

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
    except BrokenPipeError:
        # the reader (e.g. `| head`) left early: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
