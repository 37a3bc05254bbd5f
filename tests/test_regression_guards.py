"""Regression guards for the shipped weights: their figures on small fixed sets, within 5 % of the record.

The sanity tests beside the models (one photo, one scan) let a 35 % regression pass; these recompute
the figures that ``benchmarks/regression_guards.py`` recorded in ``tests/regression_guards.json`` (and in
benchmarks/RESULTS.md and the model cards) and fail when one moves by more than 5 %, or when the
weights are not the ones recorded (new weights must be re-recorded with that script).

The measuring functions live here so that the script and the tests measure the same way (tests do not
import ``benchmarks/``); the script imports them from this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from facegraph.datasets.aflw2000_3d import load_aflw2000
from facegraph.demo import sample_path
from facegraph.evaluation.aflw2000 import evaluate_aflw2000
from facegraph.geometry.pose import pose_to_matrix
from facegraph.image.loading import load_photo_model
from facegraph.image.synergynet import bundled_weights as photo_weights
from facegraph.io import read_landmarks, read_mesh
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.mesh.landmarker import bundled_weights as mesh_weights
from facegraph.metrics.landmarks import mesh_landmark_errors
from facegraph.morphable.bfm import BFM_ENV
from facegraph.morphable.sfm import load_sfm, read_ibug_mapping
from facegraph.types import HeadPose, Mesh
from tests.conftest import shared

RECORD = Path(__file__).with_name("regression_guards.json")
TOLERANCE = 0.05  # relative; the shipped weights' figures are deterministic on the CPU

PHOTO_FACES = 50  # the first faces of AFLW2000-3D, in the order of crops-120.list
SFM_SCANS = 10
SFM_SEED = 20270105  # not a training seed, nor one of benchmarks/mesh.py's test or calibration seeds

Scan = tuple[Mesh, np.ndarray]  # a mesh (mm) and its (68, 3) ground truth, NaN where undefined


def sha256(path: Path) -> str:
    """The file's SHA-256, to tie the recorded figures to one weights file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def set_definitions() -> dict:
    """What the figures are measured on, written beside them so that a change of set is visible."""
    return {
        "photo": {
            "dataset": "aflw2000-3d (3DDFA protocol layout)",
            "faces": f"the first {PHOTO_FACES} of crops-120.list",
            "bfm": None,
            "landmarks_from": "landmark head (the shipped default without a BFM)",
            "nme": "all faces, against the original ground truth, % of the box",
            "pose": "mean of yaw, pitch and roll MAE, degrees",
        },
        "mesh": {
            "james": "menpo3d james.obj with james.json (facegraph.demo samples)",
            "sfm": f"{SFM_SCANS} Surrey Face Model faces, seed {SFM_SEED}, posed within ±20° yaw, "
            "±10° pitch, ±5° roll (as benchmarks/mesh.py sfm_set)",
            "refine": "default",
            "figures": "mean error in mm over all 68 and the inner 51 points",
        },
    }


def first_faces(dataset, n: int):
    """The first ``n`` faces of an AFLW2000-3D dataset, every per-face array cut alike."""
    cut = {
        field.name: getattr(dataset, field.name)[:n]
        for field in dataclasses.fields(dataset)
        if field.name in ("names", "boxes", "landmarks", "landmarks_reannotated", "yaw", "pose")
        and getattr(dataset, field.name) is not None
    }
    return dataclasses.replace(dataset, **cut)


def photo_figures(aflw_root: Path, model=None) -> dict[str, float]:
    """NME (all faces, original ground truth) and mean pose MAE of the photo model on the first faces,
    as ``facegraph eval aflw2000-3d`` computes them; ``model`` defaults to the shipped one, no BFM."""
    if model is None:
        if os.environ.get(BFM_ENV):
            raise RuntimeError(f"unset ${BFM_ENV}: the guard measures the shipped default, without a BFM")
        model = load_photo_model("synergynet", device="cpu")
    dataset = first_faces(load_aflw2000(aflw_root), PHOTO_FACES)
    report = evaluate_aflw2000(dataset, model, "synergynet", progress=False).report
    return {"nme_all": report["nme"]["all"], "pose_mae_mean": report["pose_mae"]["mean"]}


def james_scans() -> list[Scan]:
    """The real scan shipped as the demo's sample, with its annotation (mm)."""
    mesh = read_mesh(sample_path("james.obj"), normals=False)
    return [(mesh, read_landmarks(sample_path("james.json")).points)]


def sfm_scans(sfm_folder: Path, seed: int = SFM_SEED, n: int = SFM_SCANS) -> list[Scan]:
    """Surrey Face Model faces drawn from its prior and posed as benchmarks/mesh.py's set (b) is."""
    model = load_sfm(sfm_folder / "sfm_shape_3448.bin")
    mapping = read_ibug_mapping(sfm_folder / "ibug_to_sfm.txt")
    rng = np.random.default_rng(seed)
    scans = []
    for _ in range(n):
        vertices = model.random(rng)
        pose = HeadPose(yaw=rng.uniform(-20, 20), pitch=rng.uniform(-10, 10), roll=rng.uniform(-5, 5))
        vertices = vertices @ pose_to_matrix(pose).T
        truth = np.full((68, 3), np.nan)
        for ibug, vertex in mapping.items():
            truth[ibug] = vertices[vertex]
        scans.append((Mesh(vertices, model.triangles), truth))
    return scans


@cache
def shipped_landmarker() -> MeshLandmarker:
    return MeshLandmarker(device="cpu")


def mesh_figures(scans: list[Scan], landmarker: Callable | None = None) -> dict[str, float]:
    """Mean error (mm) over all 68 and the inner 51 points, default refinement, as ``facegraph eval
    mesh`` computes it; ``landmarker`` defaults to the shipped one."""
    landmarker = landmarker or shipped_landmarker()
    predictions = np.stack([landmarker(mesh).points for mesh, _ in scans])
    errors = mesh_landmark_errors(predictions, np.stack([truth for _, truth in scans]))
    return {"mean_mm": float(np.mean(errors["mean_68"])), "mean_mm_51": float(np.mean(errors["mean_51"]))}


def recorded() -> dict:
    if not RECORD.is_file():
        pytest.fail(f"{RECORD.name} is missing: run benchmarks/regression_guards.py")
    return json.loads(RECORD.read_text())


def assert_close(measured: dict[str, float], record: dict[str, float], what: str) -> None:
    """Every recorded figure within TOLERANCE (relative) of the measured one, all named on failure."""
    off = {
        name: (measured[name], value)
        for name, value in record.items()
        if not abs(measured[name] - value) <= TOLERANCE * abs(value)
    }
    assert not off, f"{what} moved beyond {TOLERANCE:.0%} (measured, recorded): {off}"


@pytest.mark.parametrize("model, path", [("photo", photo_weights()), ("mesh", mesh_weights())])
def test_the_shipped_weights_are_the_recorded_ones(model, path):
    assert sha256(path) == recorded()[model]["sha256"], (
        f"{path.name} changed: re-record its guard with benchmarks/regression_guards.py"
    )


def test_the_guard_sets_are_the_recorded_ones():
    assert recorded()["sets"] == json.loads(json.dumps(set_definitions()))


def test_the_photo_model_keeps_its_figures_on_the_first_aflw2000_faces(monkeypatch):
    root = shared("aflw2000-3d")
    monkeypatch.delenv(BFM_ENV, raising=False)
    assert_close(photo_figures(root), recorded()["photo"]["figures"], "photo model on AFLW2000-3D")


def test_the_mesh_landmarker_keeps_its_figures_on_james():
    assert_close(mesh_figures(james_scans()), recorded()["mesh"]["figures"]["james"], "james")


def test_the_mesh_landmarker_keeps_its_figures_on_surrey_face_model_faces():
    scans = sfm_scans(shared("sfm"))
    assert_close(mesh_figures(scans), recorded()["mesh"]["figures"]["sfm"], "Surrey Face Model faces")
