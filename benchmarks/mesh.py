"""Mesh landmarker figures: accuracy on three kinds of scan, the refinement methods, and speed.

Builds the test scans in a work folder (never in the repository: they derive from research-only
models), runs ``facegraph eval mesh`` on them exactly as a user would, and rewrites the ``mesh`` section
of benchmarks/RESULTS.md with the date, the machine and the commands (and, given ``--paper-weights``,
the ``mesh-paper`` section for the published configuration, so that the shipped model's figures can be
re-measured alone).

- (a) held-out synthetic BFM faces: a fixed seed the training never uses, with decimation, noise and
  holes, posed within the training ranges; a second set adds head context (scalp, ears, neck).
- (b) faces of another morphable model: the Surrey Face Model sampled from its prior (50 of the 68
  landmarks are defined on it; the others are left out of its errors).
- (c) the real scan menpo3d ``james.obj`` with ``james.ljson`` (mm).

Then the landmark-convention check on every set (its own section, ``mesh-conventions``): the shipped
``300w`` convention (learnt from 300-W's training photos) and ``spiga`` convention (from SPIGA's 3D mean
face), and offsets fitted (``facegraph fit mesh-offsets``) on 20 other Surrey Face Model faces
(another seed).

    .venv/bin/python benchmarks/mesh.py --bfm /path/to/bfm-with-dense-bases \
        [--shared ../shared/data] [--paper-weights W] [--work /tmp/facegraph-mesh-bench] \
        [--speed-only | --conventions-only]

The speed has its own section, which ``--speed-only`` re-measures alone (the speed of the same code
depends on the machine; the accuracy does not); ``--conventions-only`` re-measures the conventions
section alone.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import HERE, OUT, RESULTS, machine, write_section
from facegraph.datasets.synthetic_faces import Augmentation, SyntheticFaces
from facegraph.geometry.pose import pose_to_matrix
from facegraph.io import read_mesh, write_json, write_mesh
from facegraph.mesh.conventions import read_offsets
from facegraph.mesh.landmarker import DEFAULT_REFINE, MeshLandmarker, bundled_weights
from facegraph.mesh.refine import REFINE_METHODS
from facegraph.mesh.weights import load_weights
from facegraph.morphable.sfm import load_sfm, load_sfm_blendshapes, read_ibug_mapping
from facegraph.types import HeadPose, Landmarks, Mesh

SECTION = "mesh"
PAPER_SECTION = "mesh-paper"
SPEED_SECTION = "mesh-speed"
CONVENTIONS_SECTION = "mesh-conventions"
N_SCANS = 40
SEED = 20261121  # not a training seed
CALIBRATION_SCANS = 20
CALIBRATION_SEED = SEED + 1
EXPRESSION_SCANS = 30  # calibration faces with expressions: the markup rules must leave open mouths be
EXPRESSION_SEED = SEED + 2
SPEED_VERTICES = 30_000
SPEED_RUNS = 7


def _write_set(folder: Path, scans: list[tuple[Mesh, np.ndarray]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, (mesh, landmarks) in enumerate(scans):
        write_mesh(folder / f"scan{i:03d}.obj", mesh)
        visible = np.isfinite(landmarks).all(axis=1)
        write_json(folder / f"scan{i:03d}.json", Landmarks(landmarks, "ibug68", visible=visible))
    return folder


def synthetic_set(folder: Path, bfm: str, context: float, seed: int = SEED, n_scans: int = N_SCANS) -> Path:
    """Held-out BFM scans with decimation, noise and holes (and head context when asked)."""
    augmentation = Augmentation(context=context, crop=0.0)
    faces = SyntheticFaces(bfm, augmentation)
    rng = np.random.default_rng([seed, int(context * 10)])
    scans = [faces.sample(rng) for _ in range(n_scans)]
    return _write_set(folder, [(Mesh(s.vertices, s.faces), s.landmarks) for s in scans])


def sfm_set(
    folder: Path, shared: Path, seed: int = SEED, n_scans: int = N_SCANS, expressions: bool = False
) -> Path:
    """Surrey Face Model faces from its prior, posed within ±20° yaw, ±10° pitch, ±5° roll; with
    ``expressions``, each also wears one of the model's six expression blendshapes in turn (anger,
    disgust, fear, happiness, sadness, surprise) at a weight in [0.3, 1]: open mouths among them."""
    model = load_sfm(shared / "sfm" / "sfm_shape_3448.bin")
    mapping = read_ibug_mapping(shared / "sfm" / "ibug_to_sfm.txt")
    blendshapes = []
    if expressions:
        path = shared / "sfm" / "expression_blendshapes_3448.bin"
        blendshapes = list(load_sfm_blendshapes(path, len(model.mean)).values())
    rng = np.random.default_rng(seed)
    scans = []
    for i in range(n_scans):
        vertices = model.random(rng)
        if blendshapes:
            vertices = vertices + rng.uniform(0.3, 1.0) * blendshapes[i % len(blendshapes)]
        rotation = pose_to_matrix(
            HeadPose(yaw=rng.uniform(-20, 20), pitch=rng.uniform(-10, 10), roll=rng.uniform(-5, 5))
        )
        vertices = vertices @ rotation.T
        landmarks = np.full((68, 3), np.nan)
        for ibug, vertex in mapping.items():
            landmarks[ibug] = vertices[vertex]
        scans.append((Mesh(vertices, model.triangles), landmarks))
    return _write_set(folder, scans)


def james_set(folder: Path, shared: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("james.obj", "james.ljson"):
        link = folder / name
        if not link.exists():
            link.symlink_to((shared / "menpo3d" / name).resolve())
    return folder


def commands_block(commands: list[str]) -> list[str]:
    """A section's commands as a folded block of RESULTS.md lines."""
    return ["", "<details><summary>commands</summary>", "", *[f"    {c}" for c in commands], "", "</details>"]


def facegraph(args: list[str]) -> str:
    """Run the ``facegraph`` command beside this Python, replacing its earlier outputs (the benchmark's
    own files, some from before outputs carried facegraph's mark); returns the command line."""
    args = [*args, "--overwrite"]
    executable = Path(sys.executable).parent / "facegraph"
    subprocess.run([str(executable), *args], check=True, cwd=HERE.parent, stdout=subprocess.DEVNULL)
    return shlex.join(["facegraph", *args])


def evaluate(
    data: Path, weights: Path, refine: str, name: str, convention: list[str] | None = None
) -> tuple[str, dict]:
    """Run ``facegraph eval mesh`` on a folder, with ``convention``'s arguments (``--offsets ...``)
    if given; returns the command and the report."""
    OUT.mkdir(exist_ok=True)
    json_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"facegraph-mesh-{name}.json"
    args = ["eval", "mesh", "--data", str(data), "--weights", str(weights), "--refine", refine]
    args += ["--json", str(json_path), "--quiet", *(convention or [])]
    return facegraph(args), json.loads(json_path.read_text())


def convention_section(shared: Path, work: Path, weights: Path, sets: dict[str, Path]) -> None:
    """The shipped conventions (``300w``, from 300-W's training photos; ``spiga``, from SPIGA's 3D mean
    face), each also without its markup rules, and offsets fitted on other Surrey Face Model faces,
    applied to every set with the default refinement, beside no offsets; the conventions are chosen on
    the calibration faces, neutral and with expressions."""
    neutral = sfm_set(work / "sfm-calibration", shared, CALIBRATION_SEED, CALIBRATION_SCANS)
    calibration_sets = {
        f"{CALIBRATION_SCANS} neutral calibration faces (seed {CALIBRATION_SEED})": neutral,
        f"{EXPRESSION_SCANS} with expressions (seed {EXPRESSION_SEED})": sfm_set(
            work / "sfm-calibration-expressions", shared, EXPRESSION_SEED, EXPRESSION_SCANS, expressions=True
        ),
    }
    offsets_path, plot = work / "sfm-offsets.json", OUT / "mesh-sfm-offsets.png"
    commands = [
        facegraph(
            ["fit", "mesh-offsets", "--data", str(neutral), "--weights", str(weights)]
            + ["--out", str(offsets_path), "--plot", str(plot.relative_to(HERE.parent)), "--quiet"]
        )
    ]
    conventions = {  # label: (run name, eval mesh arguments)
        "no offsets": ("none", []),
        "`300w` without rules": ("300w-no-rules", ["--offsets", "300w", "--no-markup-rules"]),
        "`--offsets 300w`": ("300w", ["--offsets", "300w"]),
        "`spiga` without rules": ("spiga-no-rules", ["--offsets", "spiga", "--no-markup-rules"]),
        "`--offsets spiga`": ("spiga", ["--offsets", "spiga"]),
    }
    calibration_lines = []
    for set_name, folder in calibration_sets.items():
        figures = []
        for label, (run, arguments) in conventions.items():
            command, report = evaluate(
                folder, weights, DEFAULT_REFINE, f"calibration-{folder.name}-{run}", arguments
            )
            commands.append(command)
            figures.append(f"{label.replace('`', '').replace('--offsets ', '')} {report['mean_mm_51']:.2f}")
        calibration_lines.append(f"{set_name}: {', '.join(figures)}")
    conventions["SFM-fitted offsets"] = ("sfm", ["--offsets", str(offsets_path)])
    offsets = read_offsets(offsets_path)
    sizes = np.linalg.norm(offsets.offsets, axis=1)
    largest = ", ".join(f"{i} ({sizes[i]:.1f})" for i in np.argsort(-sizes)[:8])
    lines = [
        "### Landmark conventions",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "Command: `.venv/bin/python benchmarks/mesh.py --bfm BFM --conventions-only` (also part of the full"
        " run).",
        "",
        "The package ships two conventions, both in-plane, mirror-symmetric and with the jaw untouched:"
        " `300w`, learnt from where 300-W's annotators put the inner 51 points on 1,207 of its training"
        " faces, AFW and HELEN, against a 3DMM regressor's fits (`facegraph fit mesh-offsets --photos`;"
        " `docs/mesh-300w-convention.png`), and `spiga`, from where SPIGA's 3D mean face puts them"
        " (`facegraph fit mesh-offsets --mean-face`; `docs/mesh-spiga-convention.png`). Both also apply"
        " the 68-point markup's rules after the offsets (`facegraph.mesh.markup`): when the lips meet, the"
        " inner lip pairs at the surface points between the inner mouth corners; nose bridge, nostrils,"
        " eyelids and outer lips evenly spaced between their ends; the columns"
        " 'without rules' are the same offsets without them (`--no-markup-rules`).",
        "",
        "Inner-51 error (mm) on the Surrey Face Model calibration faces, not the test faces: "
        + "; ".join(calibration_lines)
        + ".",
        "",
        f"The SFM offsets were fitted by `facegraph fit mesh-offsets` on the {CALIBRATION_SCANS} neutral"
        f" calibration faces: largest offsets (landmark, mm): {largest}; drawn on the mean face:"
        f" `{plot.relative_to(HERE.parent)}`. Inner-51 error in mm, {DEFAULT_REFINE}:",
        "",
        "| model | set | scans | " + " | ".join(conventions) + " |",
        "|---|---|---|" + "---|" * len(conventions),
    ]
    for set_name, folder in sets.items():
        figures = []
        for run, arguments in conventions.values():
            command, report = evaluate(
                folder, weights, DEFAULT_REFINE, f"offsets-{run}-{folder.name}", arguments
            )
            commands.append(command)
            figures.append(report["mean_mm_51"])
        lines.append(
            f"| facegraph-mesh (shipped) | {set_name} | {report['n']} | "
            + " | ".join(f"{f:.2f}" for f in figures)
            + " |"
        )
    lines += commands_block(commands)
    write_section(CONVENTIONS_SECTION, "\n".join(lines))


def speed(bfm: str, weights: Path, work: Path) -> dict:
    """Seconds per ~30k-vertex scan end to end (read → sample → graph → network → refine), and memory."""
    faces = SyntheticFaces(bfm, Augmentation(decimate=0.0, holes=0.0, crop=0.0, context=0.0))
    scan = faces.sample(np.random.default_rng(SEED))
    import fast_simplification

    reduction = 1.0 - SPEED_VERTICES / len(scan.vertices)
    vertices, triangles = fast_simplification.simplify(
        scan.vertices.astype(np.float32), scan.faces.astype(np.int32), target_reduction=reduction
    )
    path = work / "speed.obj"
    write_mesh(path, Mesh(vertices.astype(np.float64), triangles.astype(np.int64)))
    landmarker = MeshLandmarker(weights)
    timings = []
    for _ in range(SPEED_RUNS):
        start = time.perf_counter()
        mesh = read_mesh(path, normals=False)
        read = time.perf_counter() - start
        result = landmarker(mesh)
        timings.append({"read": read, **result.seconds, "end to end": time.perf_counter() - start})
    median = {key: float(np.median([t[key] for t in timings])) for key in timings[0]}
    return {
        "vertices": int(len(mesh.vertices)),
        "median": median,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def paper_forward_seconds() -> float:
    """The published network's forward pass alone at its 32,768 points (random weights, random graph)."""
    import torch

    from facegraph.mesh.preprocess import get_config
    from facegraph.nn.sgcn import StratifiedGcn

    config = get_config("2s-sgcn-paper")
    model = StratifiedGcn(config.network).eval()
    n, k = config.n_points, config.network.neighbours
    inputs = (torch.randn(1, n, 6), torch.randint(0, n, (1, n, k)), torch.randint(0, n, (1, 68)))
    with torch.inference_mode():
        model(*inputs)
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            model(*inputs)
            runs.append(time.perf_counter() - start)
    return float(np.median(runs))


def speed_section(bfm: str, weights: Path, work: Path) -> None:
    """Measure the speed on this machine and rewrite its own section of RESULTS.md (speed depends on the
    machine, the accuracy figures do not)."""
    work.mkdir(parents=True, exist_ok=True)
    timing = speed(bfm, weights, work)
    parts = ", ".join(f"{k} {v:.3f}" for k, v in timing["median"].items())
    lines = [
        "### Mesh landmarker speed",
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        "Command: `.venv/bin/python benchmarks/mesh.py --bfm BFM --speed-only` (also part of the full run).",
        "",
        f"Shipped configuration, one ~{timing['vertices']:,}-vertex OBJ scan, {DEFAULT_REFINE}"
        f" refinement (the default), median of {SPEED_RUNS} runs (s): {parts}. Peak resident memory of the"
        f" process: {timing['peak_rss_mb']:.0f} MB.",
        "",
        f"The published network's forward pass alone at 32,768 points: {paper_forward_seconds():.2f} s.",
    ]
    (OUT / "mesh-speed.json").write_text(json.dumps(timing, indent=1))
    write_section(SPEED_SECTION, "\n".join(lines))
    print(f"wrote {RESULTS}")


def accuracy_section(
    section: str, heading: str, model_name: str, weights: Path, sets: dict[str, Path], flag: str
) -> None:
    """One model's errors on every set with every refinement, as the RESULTS.md section ``section``
    (the shipped model's and the published configuration's are re-measured separately)."""
    lines = [
        heading,
        "",
        f"Measured {datetime.date.today().isoformat()} on {machine()}.",
        f"Command: `.venv/bin/python benchmarks/mesh.py --bfm BFM{flag}` (scans made with fixed"
        " seeds; each row is one `facegraph eval mesh` run).",
        "",
        "Mean landmark error in mm over the 68 points and over the 51 inner points (iBUG 17-67); (b) counts"
        " the 50 points the Surrey Face Model defines (49 of them inner).",
        "",
        "| model | refine | set | scans | mean 68 | inner 51 | median | s/scan |",
        "|---|---|---|---|---|---|---|---|",
    ]
    commands, reports = [], {}
    for refine in REFINE_METHODS:
        for set_name, folder in sets.items():
            key = f"{model_name}|{refine}|{folder.name}"
            command, report = evaluate(folder, weights, refine, key.replace("|", "_").replace(" ", ""))
            reports[key] = report
            commands.append(command)
            lines.append(
                f"| {model_name} | {refine} | {set_name} | {report['n']} | {report['mean_mm']:.2f} | "
                f"**{report['mean_mm_51']:.2f}** | {report['median_mm']:.2f} | "
                f"{report['seconds_per_mesh']:.2f} |"
            )
    lines += commands_block(commands)
    (OUT / f"{section}.json").write_text(json.dumps({"reports": reports}, indent=1))
    write_section(section, "\n".join(lines))


def add_data_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """The options every mesh benchmark takes: the shared data, the BFM and a folder for its scans."""
    parser.add_argument("--shared", default=str(HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--bfm", default=os.environ.get("FACEGRAPH_BFM"), help="BFM folder with dense bases")
    parser.add_argument("--work", default=work, help="folder for the generated scans")


def parse_data_arguments(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path, Path]:
    """The parsed options, the shared data folder and the work folder; a BFM is required."""
    args = parser.parse_args()
    if not args.bfm:
        parser.error("--bfm (or FACEGRAPH_BFM) must name a BFM folder with the dense bases")
    return args, Path(args.shared), Path(args.work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, "/tmp/facegraph-mesh-bench")
    parser.add_argument(
        "--weights", default=str(bundled_weights()), help="the shipped configuration's weights"
    )
    parser.add_argument("--paper-weights", help="2s-sgcn-paper weights trained on the same data")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--speed-only", action="store_true", help="re-measure only the speed section")
    only.add_argument(
        "--conventions-only", action="store_true", help="re-measure only the landmark conventions section"
    )
    args, shared, work = parse_data_arguments(parser)
    if not args.conventions_only:
        speed_section(args.bfm, Path(args.weights), work)
    if args.speed_only:
        return
    sets = {
        "(a) synthetic BFM": synthetic_set(work / "bfm", args.bfm, context=0.0),
        "(a') synthetic BFM with head context": synthetic_set(work / "bfm-context", args.bfm, context=1.0),
        "(b) Surrey Face Model": sfm_set(work / "sfm", shared),
        "(c) james (real scan)": james_set(work / "james", shared),
    }
    if args.conventions_only:
        convention_section(shared, work, Path(args.weights), sets)
        print(f"wrote {RESULTS}")
        return
    heading = "## Mesh landmarker (2S-SGCN): 68 landmarks on 3D scans"
    accuracy_section(SECTION, heading, "facegraph-mesh (shipped)", Path(args.weights), sets, "")
    if args.paper_weights:
        points = load_weights(args.paper_weights)[1].n_points
        name = f"2s-sgcn-paper ({points:,} points, same data)"
        heading = "### The published configuration, trained on the same data"
        paper = Path(args.paper_weights)
        accuracy_section(PAPER_SECTION, heading, name, paper, sets, " --paper-weights W")
    convention_section(shared, work, Path(args.weights), sets)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
