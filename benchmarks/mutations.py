# ruff: noqa: E501  (the mutation table keeps one mutation per line)
"""Mutation check: does the test suite fail when the product breaks?

Each mutation is a one-line change to the product (a metric, a protocol, a loader, a decoder, a command
line flag, a safety check), applied in a scratch copy of the repository, never in the working tree.
The tests that guard that code run against the mutated copy; the mutation is caught when they fail.
Writes the report to RESULTS.md ("mutations"). Usage: ``python benchmarks/mutations.py [--only TEXT]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import HERE, machine, write_section

ROOT = HERE.parent


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur once) by ``new`` in ``file``; ``tests`` are run against it."""

    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


M = "src/facegraph/"
METRICS = ("tests/metrics", "tests/evaluation")
CLI_MESH = ("tests/test_cli_mesh.py",)
CLI_IMAGE = ("tests/test_cli_image.py", "tests/test_commands_run.py")
MUTATIONS = [
    # metrics and protocols
    Mutation("AUC@8 computed at 10", M + "evaluation/faces68.py", 'summary["auc_8"] = auc(errors["corners"][indices], 8.0)', 'summary["auc_8"] = auc(errors["corners"][indices], 10.0)', METRICS),
    Mutation("FR@8 computed at 10", M + "evaluation/faces68.py", 'summary["fr_8"] = failure_rate(errors["corners"][indices], 8.0)', 'summary["fr_8"] = failure_rate(errors["corners"][indices], 10.0)', METRICS),
    Mutation("failure counts errors at the threshold", M + "metrics/curves.py", "> threshold))", ">= threshold))", METRICS),
    Mutation("AUC not divided by its threshold", M + "metrics/curves.py", "None)) / threshold)", "None)))", METRICS),
    Mutation("CED counts errors strictly below", M + "metrics/curves.py", 'side="right"', 'side="left"', METRICS),
    Mutation("NME without the percent", M + "metrics/landmarks.py", "return 100.0 * mean_error", "return mean_error", METRICS),
    Mutation("AFLW2000-3D NME normalised by the prediction's box", M + "metrics/aflw2000.py", "gt_xy, landmark_box_size(gt_xy))", "gt_xy, landmark_box_size(np.asarray(pred_xy)[..., :2]))", METRICS),
    Mutation("box size from width only", M + "metrics/landmarks.py", "np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))", "(boxes[:, 2] - boxes[:, 0])", METRICS),
    Mutation("yaw bin edge at 35", M + "metrics/aflw2000.py", '{"0-30": yaw <= 30, "30-60": (yaw > 30)', '{"0-30": yaw <= 35, "30-60": (yaw > 35)', METRICS),
    Mutation("faces past 90 degrees put in the last bin", M + "metrics/aflw2000.py", "(yaw > 60) & (yaw <= 90)", "(yaw > 60)", METRICS),
    Mutation("bins' mean replaced by all faces' mean", M + "metrics/aflw2000.py", 'summary["mean"] = float(np.mean([summary[name] for name in YAW_BINS]))', 'summary["mean"] = float(per_face.mean())', METRICS),
    Mutation("pose errors not wrapped at 180", M + "metrics/pose.py", "diff = (diff + 180.0) % 360.0 - 180.0", "diff = diff", METRICS),
    Mutation("pose range limit exclusive", M + "metrics/pose.py", "<= limit, axis=1)", "< limit - 1, axis=1)", METRICS),
    Mutation("inner 51 starts at the jaw", M + "metrics/landmarks.py", "INNER_51 = range(17, 68)", "INNER_51 = range(0, 68)", ("tests/metrics", "tests/evaluation", "tests/mesh")),
    Mutation("inter-ocular from the pupils", M + "evaluation/faces68.py", '"corners": np.array([normalisation_distance(p, "ibug68", "outer_eye_corners")', '"corners": np.array([normalisation_distance(p, "ibug68", "pupils")', METRICS),
    # loaders and formats
    Mutation("BFM triangles left 1-based", M + "morphable/bfm.py", "return tri - 1  # Matlab indices are 1-based", "return tri", ("tests/morphable",)),
    Mutation("BFM landmark vertices not divided by 3", M + "morphable/bfm.py", "landmark_vertices=keypoints[0::3] // 3,", "landmark_vertices=keypoints[0::3],", ("tests/morphable", "tests/datasets")),
    Mutation(".pts read without the 1-pixel shift", M + "io/landmarks.py", "points = np.array(rows, dtype=np.float64) - 1.0", "points = np.array(rows, dtype=np.float64)", ("tests/io", "tests/datasets")),
    Mutation(".pts written without the 1-pixel shift", M + "io/landmarks.py", 'f"{_fmt(x + 1.0)} {_fmt(y + 1.0)}"', 'f"{_fmt(x)} {_fmt(y)}"', ("tests/io",)),
    Mutation("five-point nose tip at iBUG 33", M + "schemes/registry.py", "(tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))", "(tuple(range(36, 42)), tuple(range(42, 48)), (33,), (48,), (54,))", ("tests/schemes", "tests/io")),
    Mutation("AFLW2000-3D crop rows not flipped", M + "geometry/crops.py", "out[..., 1] = (size + 1 - points[..., 1])", "out[..., 1] = (points[..., 1])", ("tests/geometry", "tests/datasets")),
    Mutation("photos not turned upright by their EXIF tag", M + "io/images.py", "ImageOps.exif_transpose(img, in_place=True)", "pass", ("tests/io",)),
    Mutation("pickles allowed any global", M + "io/safe_pickle.py", "if (module, name) in _ALLOWED:", "if True:", ("tests/io", "tests/test_robustness.py")),
    # decoding
    Mutation("landmark whitening ignores its spread", M + "image/synergynet.py", "points = values * values.new_tensor(self.std) + values.new_tensor(self.mean)", "points = values + values.new_tensor(self.mean)", ("tests/image", "tests/test_regression_guards.py")),
    Mutation("yaw from the wrong sign", M + "geometry/pose.py", "np.degrees(np.stack([np.arcsin(sin_yaw), pitch, roll], axis=-1))", "np.degrees(np.stack([-np.arcsin(sin_yaw), pitch, roll], axis=-1))", ("tests/geometry", "tests/image")),
    Mutation("mesh mirror keeps x", M + "mesh/landmarker.py", "return points[FLIP_ORDER] * MIRROR_X", "return points[FLIP_ORDER]", ("tests/mesh",)),
    # command-line flags
    Mutation("mesh ignores --no-shape-prior", M + "cli/mesh.py", "\n            mesh, args.refine, args.units, offsets=convention, shape_prior=args.shape_prior", "\n            mesh, args.refine, args.units, offsets=convention, shape_prior=True", CLI_MESH),
    Mutation("mesh ignores --refine", M + "cli/mesh.py", "\n            mesh, args.refine, args.units, offsets=convention, shape_prior=args.shape_prior", '\n            mesh, "snap", args.units, offsets=convention, shape_prior=args.shape_prior', CLI_MESH),
    Mutation("mesh ignores --units", M + "cli/mesh.py", "\n            mesh, args.refine, args.units, offsets=convention, shape_prior=args.shape_prior", "\n            mesh, args.refine, None, offsets=convention, shape_prior=args.shape_prior", CLI_MESH),
    Mutation("mesh ignores --offsets", M + "cli/mesh.py", "return load_convention(args.offsets, args.markup_rules)", "return load_convention(None, args.markup_rules)", CLI_MESH),
    Mutation("eval mesh reports scan units, not mm", M + "cli/mesh.py", 'to_mm=MM_PER_UNIT[args.units or "mm"],', "to_mm=1.0,", CLI_MESH),
    Mutation("image ignores --min-score", M + "cli/image.py", "min_score=args.min_score, selection=selection", "min_score=None, selection=selection", CLI_IMAGE),
    Mutation("image ignores --box", M + "cli/image.py", "box = None if args.box is None else parse_box(args.box)[None]", "box = None", CLI_IMAGE),
    Mutation("eval 300w ignores --boxes", M + "cli/image.py", "dataset, _photo_model(args), args.model, boxes=args.boxes,", 'dataset, _photo_model(args), args.model, boxes="gt",', CLI_IMAGE),
    # safety
    Mutation("outputs may replace inputs", M + "io/outputs.py", "if any(_same_file(path, read) for read in self.inputs) or any(", "if False and any(", ("tests/io/test_outputs.py", "tests/test_robustness.py")),
    Mutation("annotations beside scans may be replaced", M + "io/outputs.py", "annotated = annotated_file(path)", "annotated = None", ("tests/io/test_outputs.py", "tests/test_robustness.py")),
    Mutation("any existing file counts as facegraph's", M + "io/outputs.py", "if self.overwrite or written_by_facegraph(path):", "if True:", ("tests/io/test_outputs.py", "tests/test_robustness.py")),
    Mutation("NaN weights accepted", M + "io/weights.py", "and not torch.isfinite(value).all():", "and False:", ("tests/test_weight_checks.py",)),
    Mutation("units judged from every vertex", M + "mesh/checks.py", "limit = OUTLIER_FACTOR * np.quantile(distances, OUTLIER_QUANTILE)", "limit = np.inf", ("tests/mesh", "tests/test_robustness.py")),
]  # fmt: skip


def scratch_copy(folder: Path) -> Path:
    """The repository's code, tests and configuration, copied to ``folder``."""
    copy = folder / "repo"
    for name in ("src", "tests", "benchmarks", "pyproject.toml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "results"))
        else:
            shutil.copy2(source, copy / name)
    return copy


def caught(copy: Path, mutation: Mutation) -> tuple[bool, float]:
    """Apply ``mutation`` in the copy, run its tests, restore the file; (whether they failed, seconds)."""
    path = copy / mutation.file
    original = path.read_text()
    if original.count(mutation.old) != 1:
        raise SystemExit(
            f"{mutation.file}: the text to mutate for {mutation.what!r} is not there exactly once"
        )
    path.write_text(original.replace(mutation.old, mutation.new))
    tests = [t for t in mutation.tests if (copy / t).exists()]
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy, env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    finally:
        path.write_text(original)
    return done.returncode != 0, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the mutations whose description contains this text")
    only = parser.parse_args().only
    chosen = [m for m in MUTATIONS if only is None or only in m.what]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        copy = scratch_copy(Path(folder))
        for i, mutation in enumerate(chosen, 1):
            was_caught, seconds = caught(copy, mutation)
            print(
                f"[{i}/{len(chosen)}] {'caught' if was_caught else 'SURVIVED'}: {mutation.what}", flush=True
            )
            rows.append((mutation, was_caught, seconds))
    score = sum(c for _, c, _ in rows)
    if only is not None:
        return
    lines = [
        "## Mutation check",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "",
        f"**{score} of {len(rows)} mutations caught ({100 * score / len(rows):.0f} %).** Each is a one-line change to",
        "the product, made in a scratch copy; it is caught when the tests that guard that code fail.",
        "",
        "| mutation | file | caught | tests run |",
        "|---|---|---|---|",
        *(
            f"| {m.what} | `{m.file.removeprefix(M)}` | {'yes' if c else '**no**'} | {', '.join(m.tests)} |"
            for m, c, _ in rows
        ),
        "",
        "Command: `python benchmarks/mutations.py`",
    ]
    write_section("mutations", "\n".join(lines))


if __name__ == "__main__":
    main()
