"""The ``facegraph mesh``, ``eval mesh`` and ``train mesh`` commands, with tiny random weights."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import trimesh

from facegraph.cli import main
from facegraph.io import read_landmarks, read_mesh, write_json, write_mesh
from facegraph.schemes.registry import get_scheme
from facegraph.types import Landmarks, Mesh
from tests.conftest import shared
from tests.mesh.test_landmarker import tiny_weights

REPORT_KEYS = {
    "generator",
    "n",
    "mean_mm",
    "mean_mm_51",
    "median_mm",
    "per_mesh",
    "per_landmark_mm",
    "seconds_per_mesh",
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors"))


FLIP_ORDER = np.array(get_scheme("ibug68").flip_order)


def write_head(path: Path, radius: float = 80.0, subdivisions: int = 3) -> Path:
    """An icosphere standing in for a scan, written as a mesh file (its folder made if need be)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    write_mesh(path, Mesh(np.asarray(sphere.vertices), np.asarray(sphere.faces)))
    return path


def user_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run a command expecting a user error (exit code 2, no traceback); returns stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("facegraph: error: ")
    assert "Traceback" not in err
    return err


def test_mesh_writes_json_and_per_scan_files(weights, tmp_path, capsys):
    scan = write_head(tmp_path / "head.obj")
    report_path, out = tmp_path / "head_report.json", tmp_path / "out"
    argv = ["mesh", str(scan), "--weights", weights, "--json", str(report_path), "--out", str(out)]
    assert main([*argv, "--refine", "geodesic"]) == 0
    assert f"{scan}: 68 landmarks (refine: geodesic" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["mesh"] == str(scan) and report["scheme"] == "ibug68"
    assert len(report["points"]) == len(report["vertex_indices"]) == 68
    vertices = read_mesh(scan).vertices
    np.testing.assert_allclose(report["points"], vertices[report["vertex_indices"]], atol=1e-6)
    for name in ("head.json", "head.pp", "head_landmarks.ply", "head.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "head.png").read_bytes().startswith(b"\x89PNG")
    np.testing.assert_allclose(read_landmarks(out / "head.json").points, report["points"])
    np.testing.assert_allclose(read_landmarks(out / "head.pp").points, report["points"], atol=1e-4)
    np.testing.assert_allclose(read_mesh(out / "head_landmarks.ply").vertices, report["points"])


def test_mesh_json_to_standard_output_is_only_json(weights, tmp_path, capsys, monkeypatch):
    scan = write_head(tmp_path / "head.obj")
    monkeypatch.chdir(tmp_path)
    assert main(["mesh", str(scan), "--weights", weights, "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["points"]) == 68
    assert f"{scan}: 68 landmarks" in captured.err
    assert not (tmp_path / "-").exists()  # not a file named '-'


def test_mesh_json_naming_the_scan_is_refused_and_the_scan_kept(weights, tmp_path, capsys):
    scan = write_head(tmp_path / "head.obj")
    before = scan.read_bytes()
    err = user_error(["mesh", str(scan), "--weights", weights, "--json", str(scan)], capsys)
    assert f"{scan}: is an input of this run" in err and scan.read_bytes() == before


def test_mesh_out_beside_annotated_scans_keeps_their_annotations(weights, tmp_path, capsys):
    folder = write_scan_folder(tmp_path / "scans")
    annotations = {p: p.read_bytes() for p in folder.glob("*.json")}
    err = user_error(["mesh", str(folder), "--weights", weights, "--out", str(folder)], capsys)
    assert "is the annotation beside s0_scan.obj, which evaluations read: it is never replaced" in err
    assert annotations and all(p.read_bytes() == data for p, data in annotations.items())
    assert not list(folder.glob("*.png"))  # refused before any work


def test_mesh_on_a_folder_reports_every_scan(weights, tmp_path):
    write_head(tmp_path / "scans" / "a.ply")
    write_head(tmp_path / "scans" / "b.obj", radius=90.0)
    report_path = tmp_path / "report.json"
    argv = ["mesh", str(tmp_path / "scans"), "--weights", weights, "--json", str(report_path), "--quiet"]
    assert main(argv) == 0
    scans = json.loads(report_path.read_text())["scans"]
    assert [Path(s["mesh"]).name for s in scans] == ["a.ply", "b.obj"]


def test_mesh_refuses_a_file_that_is_not_a_mesh(weights, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a mesh\n")
    err = user_error(["mesh", str(text), "--weights", weights], capsys)
    assert err.splitlines()[0].startswith(f"facegraph: error: {text}: unknown mesh format '.txt'")


def test_mesh_refuses_a_single_bad_scan_in_one_line(weights, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a mesh\n")
    assert user_error(["mesh", str(text), "--weights", weights], capsys).count("\n") == 1


def test_mesh_refuses_a_scan_in_metres_and_names_the_flag(weights, tmp_path, capsys):
    scan = write_head(tmp_path / "metres.ply", radius=0.08)
    err = user_error(["mesh", str(scan), "--weights", weights], capsys)
    assert f"{scan}: " in err and "--units m" in err
    assert main(["mesh", str(scan), "--weights", weights, "--units", "m"]) == 0


def write_scan_folder(folder: Path, count: int = 2) -> Path:
    """Scans with project-JSON ground truth: the 68 vertices nearest the front of each sphere."""
    for i in range(count):
        scan = write_head(folder / f"s{i}_scan.obj", radius=80.0 + 5 * i)
        vertices = read_mesh(scan).vertices
        write_json(folder / f"s{i}_scan.json", Landmarks(vertices[np.argsort(-vertices[:, 2])[:68]]))
    return folder


def test_eval_mesh_writes_the_documented_report_and_a_plot(weights, tmp_path, capsys):
    data = write_scan_folder(tmp_path / "scans")
    report_path, plot = tmp_path / "report.json", tmp_path / "ced.png"
    argv = ["eval", "mesh", "--data", str(data), "--weights", weights, "--quiet"]
    assert main([*argv, "--json", str(report_path), "--plot", str(plot)]) == 0
    assert "scans" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert set(report) == REPORT_KEYS
    assert report["n"] == 2 and len(report["per_mesh"]) == 2
    assert len(report["per_landmark_mm"]) == 68
    per_mesh = [m["mean_mm"] for m in report["per_mesh"]]
    assert report["mean_mm"] == pytest.approx(np.mean(per_mesh))
    assert report["median_mm"] == pytest.approx(np.median(per_mesh))
    assert report["mean_mm"] == pytest.approx(np.mean(report["per_landmark_mm"]))
    assert report["mean_mm"] > 0 and report["mean_mm_51"] > 0 and report["seconds_per_mesh"] > 0
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_eval_mesh_reports_millimetres_for_scans_in_metres(weights, tmp_path):
    write_head(tmp_path / "scans" / "s0.ply", radius=0.08)
    far = Landmarks(np.tile([0.0, 0.0, 1.0], (68, 1)))  # 1 m in front of the sphere's centre
    write_json(tmp_path / "scans" / "s0.json", far)
    report_path = tmp_path / "report.json"
    argv = ["eval", "mesh", "--data", str(tmp_path / "scans"), "--weights", weights, "--units", "m"]
    assert main([*argv, "--quiet", "--json", str(report_path)]) == 0
    assert 900.0 < json.loads(report_path.read_text())["mean_mm"] < 1100.0


def test_eval_mesh_needs_ground_truth(weights, tmp_path, capsys):
    write_head(tmp_path / "scans" / "lonely.obj")
    err = user_error(["eval", "mesh", "--data", str(tmp_path / "scans"), "--weights", weights], capsys)
    assert "no mesh has a ground-truth landmark file" in err


@pytest.mark.parametrize("option", ["--second-pass-fraction", "--warp", "--learning-rate", "--max-minutes"])
def test_train_mesh_refuses_numbers_that_are_not_finite_before_any_work(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "mesh", option, "nan", "--out", str(tmp_path / "run")])
    assert exit_.value.code == 2 and "must be a finite number, not nan" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_mesh_refuses_an_unknown_config(tmp_path, capsys):
    err = user_error(["train", "mesh", "--config", "nope", "--out", str(tmp_path / "run")], capsys)
    assert "unknown --config 'nope'" in err and "facegraph-mesh" in err
    assert not (tmp_path / "run").exists()


def test_train_mesh_refuses_missing_initial_weights_before_making_data(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    err = user_error(["train", "mesh", "--init", str(missing), "--out", str(tmp_path / "run")], capsys)
    assert "weights file not found" in err and "nope.safetensors" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("config", "fraction"),
    [("facegraph-mesh", "0"), ("facegraph-mesh", "1"), ("2s-sgcn-paper", "0.5")],
)
def test_train_mesh_refuses_a_second_pass_fraction_it_cannot_train(config, fraction, tmp_path, capsys):
    out = str(tmp_path / "run")
    argv = ["train", "mesh", "--config", config, "--second-pass-fraction", fraction, "--out", out]
    err = user_error(argv, capsys)
    assert "--second-pass-fraction needs a two-pass configuration" in err and config in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("share", ["-0.1", "1.5"])
def test_train_mesh_refuses_a_warp_share_outside_zero_to_one(share, tmp_path, capsys):
    out = str(tmp_path / "run")
    err = user_error(["train", "mesh", "--warp", share, "--out", out], capsys)
    assert "--warp is a share of the faces, between 0 and 1" in err
    assert not (tmp_path / "run").exists()


def test_fit_mesh_offsets_fits_a_file_that_mesh_and_eval_mesh_apply(weights, tmp_path, capsys):
    data = write_scan_folder(tmp_path / "scans")
    offsets, plot = tmp_path / "offsets.json", tmp_path / "offsets.png"
    argv = ["fit", "mesh-offsets", "--data", str(data), "--weights", weights, "--out", str(offsets)]
    assert main([*argv, "--quiet", "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "2 scans, inner-51 error without offsets" in capsys.readouterr().out
    record = json.loads(offsets.read_text())
    assert record["counts"] == [2] * 68 and len(record["offsets_mm"]) == 68
    assert record["rules"] == []  # scans annotated another way need not follow the 68-point markup
    assert main([*argv, "--quiet", "--markup-rules"]) == 0
    assert json.loads(offsets.read_text())["rules"] == ["closed-mouth", "even-spacing"]
    report_path = tmp_path / "report.json"
    argv = ["mesh", str(data / "s0_scan.obj"), "--weights", weights, "--offsets", str(offsets)]
    assert main([*argv, "--json", str(report_path)]) == 0
    assert "convention offsets from 2 scans of" in json.loads(report_path.read_text())["notes"][0]
    argv = ["eval", "mesh", "--data", str(data), "--weights", weights, "--offsets", str(offsets), "--quiet"]
    reports = {}
    for switch in ("--markup-rules", "--no-markup-rules"):
        report_path = tmp_path / f"eval{switch}.json"
        assert main([*argv, switch, "--json", str(report_path)]) == 0
        reports[switch] = json.loads(report_path.read_text())["per_landmark_mm"]
    assert reports["--markup-rules"] != reports["--no-markup-rules"]  # the switch turns the file's none on


@pytest.mark.parametrize(
    ("name", "source", "moved_most"),
    [("300w", "300w-train", (21, 22)), ("spiga", "SPIGA's 3D mean face", (21, 27))],
)
def test_mesh_applies_a_shipped_convention_by_name(name, source, moved_most, weights, tmp_path):
    scan = write_head(tmp_path / "head.obj")
    plain_path, moved_path = tmp_path / "plain.json", tmp_path / "moved.json"
    assert main(["mesh", str(scan), "--weights", weights, "--refine", "none", "--json", str(plain_path)]) == 0
    argv = ["mesh", str(scan), "--weights", weights, "--refine", "none", "--offsets", name]
    assert main([*argv, "--json", str(moved_path)]) == 0
    plain, moved = (np.array(json.loads(p.read_text())["points"]) for p in (plain_path, moved_path))
    shift = np.linalg.norm(moved - plain, axis=1)
    assert shift[:17].max() < 1e-6  # the jaw keeps the network's own points
    assert all(5.0 < shift[i] < 12.0 for i in moved_most)  # the inner brow ends, the nose bridge's top
    assert source in json.loads(moved_path.read_text())["notes"][0]
    bare_path = tmp_path / "bare.json"
    assert main([*argv, "--no-markup-rules", "--json", str(bare_path)]) == 0
    bare = np.array(json.loads(bare_path.read_text())["points"])
    assert not np.allclose(bare, moved)  # the shipped convention's rules moved points
    ruled = [i for i in range(68) if not np.allclose(bare[i], moved[i])]
    spaced = {28, 29, 32, 33, 34, 37, 38, 40, 41, 43, 44, 46, 47, 49, 50, 51, 52, 53, 55, 56, 57, 58, 59}
    assert set(ruled) <= spaced | {61, 62, 63, 65, 66, 67}  # what the rules may move, written out by hand


def test_fit_mesh_offsets_learns_a_convention_from_a_mean_face_in_other_units(weights, tmp_path):
    from facegraph.mesh.landmarker import MeshLandmarker

    canonical = MeshLandmarker(weights).canonical_landmarks
    face = canonical.copy()
    face[[21, 22], 0] += [6.0, -6.0]  # the inner brow ends 6 mm nearer the midline
    mean_face = tmp_path / "mean_face.json"
    write_json(mean_face, Landmarks(face / 10.0))  # in cm
    offsets = tmp_path / "offsets.json"
    argv = ["fit", "mesh-offsets", "--mean-face", str(mean_face), "--weights", weights]
    assert main([*argv, "--out", str(offsets), "--quiet"]) == 0
    record = json.loads(offsets.read_text())
    moved = np.array(record["offsets_mm"])
    assert 5.0 < moved[21, 0] < 6.5 and -6.5 < moved[22, 0] < -5.0
    assert record["counts"] == [0] * 17 + [1] * 51
    assert "the 3D mean face mean_face.json" in record["source"]
    assert record["rules"] == ["closed-mouth", "even-spacing"]
    assert main([*argv, "--out", str(offsets), "--quiet", "--no-markup-rules"]) == 0
    assert json.loads(offsets.read_text())["rules"] == []


def test_fit_mesh_offsets_refuses_a_mean_face_with_missing_points(weights, tmp_path, capsys):
    from facegraph.mesh.landmarker import MeshLandmarker

    face = MeshLandmarker(weights).canonical_landmarks.copy()
    visible = np.ones(68, dtype=bool)
    visible[30] = False
    mean_face = tmp_path / "mean_face.json"
    write_json(mean_face, Landmarks(face, visible=visible))
    argv = ["fit", "mesh-offsets", "--mean-face", str(mean_face), "--weights", weights]
    err = user_error([*argv, "--out", str(tmp_path / "o.json")], capsys)
    assert f"{mean_face}: a mean face needs all 68 points in 3D" in err
    assert not (tmp_path / "o.json").exists()


def test_fit_mesh_offsets_reads_spigas_mean_face_layout_and_refuses_a_shuffled_one(weights, tmp_path, capsys):
    from facegraph.mesh.landmarker import MeshLandmarker
    from tests.io.test_landmarks import write_spiga_mean_face

    face = MeshLandmarker(weights).canonical_landmarks.copy()
    face[27, 1] += 7.0  # the top of the nose bridge 7 mm higher
    spiga = write_spiga_mean_face(tmp_path / "mean_face_3D_68.txt", face / 100.0)  # in SPIGA's units
    out = tmp_path / "offsets.json"
    argv = ["fit", "mesh-offsets", "--mean-face", str(spiga), "--weights", weights, "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert 6.0 < record["offsets_mm"][27][1] < 7.5
    assert record["source"].startswith("SPIGA's 3D mean face (mean_face_3D_68.txt)")
    shuffled = write_spiga_mean_face(
        tmp_path / "shuffled.txt", face[np.random.default_rng(0).permutation(68)]
    )
    err = user_error([*argv[:3], str(shuffled), *argv[4:], "--out", str(tmp_path / "o.json")], capsys)
    assert f"{shuffled}: the mean face is" in err and "not 68 points in iBUG order" in err
    assert not (tmp_path / "o.json").exists()


def test_the_shipped_spiga_convention_is_what_train_mesh_offsets_makes_of_spigas_file(tmp_path):
    spiga = shared("spiga-annotations/models3D/mean_face_3D_68.txt")
    out = tmp_path / "spiga.json"
    assert main(["fit", "mesh-offsets", "--mean-face", str(spiga), "--out", str(out), "--quiet"]) == 0
    shipped = Path(str(resources.files("facegraph") / "data" / "conventions" / "spiga.json"))
    fitted = json.loads(out.read_text())
    assert fitted.pop("generator").startswith("facegraph ")
    assert fitted == json.loads(shipped.read_text())


def _photo_folder(folder: Path, n_faces: int) -> Path:
    """A folder linking the first ``n_faces`` photos of 300-W's AFW training set with their .pts."""
    photos = shared("300w-train/afw")
    folder.mkdir()
    for pts in sorted(photos.glob("*.pts"))[:n_faces]:
        for path in (pts, pts.with_suffix(".jpg")):
            (folder / path.name).symlink_to(path)
    return folder


def test_fit_mesh_offsets_learns_a_convention_from_annotated_photos(weights, tmp_path):
    folder = _photo_folder(tmp_path / "photos", 60)
    teacher = shared("3ddfa-v2")
    offsets = tmp_path / "offsets.json"
    argv = ["fit", "mesh-offsets", "--photos", str(folder), "--teacher-weights", str(teacher)]
    assert main([*argv, "--weights", weights, "--out", str(offsets), "--quiet"]) == 0
    record = json.loads(offsets.read_text())
    moved = np.array(record["offsets_mm"])
    assert record["counts"][:17] == [0] * 17 and record["counts"][17:] == [60] * 51
    np.testing.assert_array_equal(moved[:17], 0.0)
    np.testing.assert_array_equal(moved[:, 2], 0.0)
    assert moved[21, 0] > 3.0 and moved[22, 0] < -3.0  # 300-W's inner brow ends lie nearer the midline
    assert (moved[27:30, 1] > 2.0).all()  # and its nose bridge higher
    np.testing.assert_allclose(moved[FLIP_ORDER] * [-1, 1, 1], moved, atol=1e-3)  # the same on both sides
    assert record["rules"] == ["closed-mouth", "even-spacing"]  # photos follow the 68-point markup


def test_fit_mesh_offsets_refuses_too_few_annotated_photos(weights, tmp_path, capsys):
    folder = _photo_folder(tmp_path / "photos", 3)
    argv = ["fit", "mesh-offsets", "--photos", str(folder), "--teacher-weights", str(shared("3ddfa-v2"))]
    err = user_error([*argv, "--weights", weights, "--out", str(tmp_path / "o.json"), "--quiet"], capsys)
    assert "3 annotated faces: a convention needs at least 50" in err
    assert not (tmp_path / "o.json").exists()


def test_fit_mesh_offsets_from_photos_needs_the_teacher_weights(weights, tmp_path, capsys):
    argv = ["fit", "mesh-offsets", "--photos", str(tmp_path), "--weights", weights]
    err = user_error([*argv, "--out", str(tmp_path / "o.json")], capsys)
    assert "--photos needs --teacher-weights" in err


def test_mesh_refuses_an_offsets_file_that_is_not_one(weights, tmp_path, capsys):
    scan = write_head(tmp_path / "head.obj")
    bad = tmp_path / "offsets.json"
    bad.write_text(json.dumps({"points": []}))
    err = user_error(["mesh", str(scan), "--weights", weights, "--offsets", str(bad)], capsys)
    assert f"{bad}: not a landmark offsets file" in err


def test_markup_rules_without_a_convention_are_a_user_error(weights, tmp_path, capsys):
    scan = write_head(tmp_path / "head.obj")
    err = user_error(["mesh", str(scan), "--weights", weights, "--markup-rules"], capsys)
    assert "--markup-rules and --no-markup-rules need --offsets" in err


def test_fit_mesh_prior_refuses_bad_arguments_in_one_line(weights, tmp_path, capsys):
    argv = ["fit", "mesh-prior", "--weights", weights, "--out", str(tmp_path / "w.safetensors")]
    assert "at least 10 scans" in user_error([*argv, "--bfm", str(tmp_path), "--scans", "5"], capsys)
    assert "BFM folder not found" in user_error([*argv, "--bfm", str(tmp_path / "none")], capsys)
    err = user_error(
        [
            "fit",
            "mesh-prior",
            "--weights",
            str(tmp_path / "nope.safetensors"),
            "--bfm",
            str(tmp_path),
            "--out",
            str(tmp_path / "w.safetensors"),
        ],
        capsys,
    )
    assert "weights file not found" in err
    assert not (tmp_path / "w.safetensors").exists()


PRIOR_SWITCHES = {"--shape-prior": True, "--no-shape-prior": False}


def test_mesh_shape_prior_switch_reaches_the_landmarker(tmp_path):
    """The shipped weights carry a prior: --no-shape-prior gives the landmarker's unfused points, and the
    default the fused ones, which differ."""
    from facegraph.demo import sample_path
    from facegraph.mesh.landmarker import MeshLandmarker

    scan = sample_path("james.obj")
    landmarker, mesh = MeshLandmarker(), read_mesh(scan, normals=False)
    assert landmarker.shape_prior is not None
    expected = {switch: landmarker(mesh, shape_prior=on).points for switch, on in PRIOR_SWITCHES.items()}
    assert np.abs(expected["--shape-prior"] - expected["--no-shape-prior"]).max() > 0.05
    for switch in PRIOR_SWITCHES:
        report = tmp_path / f"{switch}.json"
        assert main(["mesh", str(scan), switch, "--json", str(report), "--quiet"]) == 0
        np.testing.assert_allclose(json.loads(report.read_text())["points"], expected[switch], atol=1e-9)
