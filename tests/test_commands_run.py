"""Every documented photo command and flag run once on tiny inputs, each asserting its effect as a value
(issue 26): ``eval 300w`` in both layouts, ``image --mesh``, ``--mirror-average``, ``--min-score``,
``eval aflw2000-3d --onnx``, photos over 1,600 pixels and NaN written as JSON null."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.geometry.crops import box_from_landmarks, crop
from facegraph.image import FaceAnalyzer
from facegraph.image.analyzer import BENCHMARK_TO_PIXEL_CENTRES
from facegraph.image.crop_regressor import MirrorAveraged
from facegraph.image.loading import load_photo_model
from facegraph.io import read_image, read_landmarks
from facegraph.io.landmarks import write_landmarks
from facegraph.types import Landmarks
from tests.image.test_synergynet_model import synthetic_morphable, write_random_synergynet
from tests.test_cli import write_layout

EINSTEIN_SHIFT = (40, 25)  # the second einstein is this many pixels cropped off the left and top


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    return write_random_synergynet(tmp_path_factory.mktemp("commands") / "weights" / "random.safetensors")


@pytest.fixture(scope="module")
def shipped():
    """The shipped SynergyNet as the commands load it (no BFM: its landmark head)."""
    return load_photo_model("synergynet")


def strict_json(text: str):
    """json.loads that refuses NaN and infinities, as strict parsers (JavaScript's) do."""

    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# --- eval 300w ------------------------------------------------------------------------------------


def einstein_faces(root: Path) -> list[tuple[Path, np.ndarray]]:
    """Two einstein photos with their .pts under root/afw and root/helen (the subsets): the sample and
    a copy cropped by EINSTEIN_SHIFT, its points moved with it. Returns (photo, 0-based points)."""
    rgb = read_image(sample_path("einstein.jpg"))
    points = read_landmarks(sample_path("einstein.pts")).points
    dx, dy = EINSTEIN_SHIFT
    faces = [
        (root / "afw" / "einstein.jpg", rgb, points),
        (root / "helen" / "shifted.png", rgb[dy:, dx:], points - [dx, dy]),
    ]
    for path, image, pts in faces:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        write_landmarks(path.with_suffix(".pts"), Landmarks(pts))
    return [(path, pts) for path, _, pts in faces]


def by_hand(model, photo: Path, gt: np.ndarray) -> tuple[float, float]:
    """Inter-ocular and inter-pupil NME (%) of one face, computed here from the model's prediction at
    the 300-W crop (the ground truth's box)."""
    box = box_from_landmarks(gt)
    predicted = model.predict(crop(read_image(photo), box, 120)[None], box[None]).landmarks[0, :, :2]
    error = np.linalg.norm(predicted - gt, axis=1).mean()
    ocular = np.linalg.norm(gt[36] - gt[45])
    pupils = np.linalg.norm(gt[36:42].mean(0) - gt[42:48].mean(0))
    return 100 * error / ocular, 100 * error / pupils


def test_eval_300w_on_an_ibug_folder_reports_the_nme_computed_by_hand(tmp_path, shipped, capsys):
    """`eval 300w --data FOLDER`: n, the subsets (first-level folders) and both NMEs equal those computed
    here from the written .pts and the model's prediction."""
    faces = einstein_faces(tmp_path / "ibug")
    assert main(["eval", "300w", "--data", str(tmp_path / "ibug"), "--quiet", "--json", "-"]) == 0
    report = strict_json(capsys.readouterr().out)
    expected = np.array([by_hand(shipped, photo, gt) for photo, gt in faces])
    assert (report["n"], report["boxes"]) == (2, "gt")
    assert sorted(report["subsets"]) == ["afw", "full", "helen"]
    assert report["nme_interocular"] == pytest.approx(expected[:, 0].mean(), abs=1e-6)
    assert report["nme_interpupil"] == pytest.approx(expected[:, 1].mean(), abs=1e-6)
    assert report["subsets"]["afw"]["nme_interocular"] == pytest.approx(expected[0, 0], abs=1e-6)
    assert report["subsets"]["helen"]["nme_interocular"] == pytest.approx(expected[1, 0], abs=1e-6)
    assert report["fr_8"] == np.mean(expected[:, 0] > 8)
    assert report["auc_8"] == pytest.approx(np.mean(np.clip(8 - expected[:, 0], 0, None)) / 8, abs=1e-9)


def test_eval_300w_boxes_detector_crops_from_the_detections(tmp_path, capsys):
    """`eval 300w --boxes detector`: the faces are cropped from dlib's detections, which gives other
    figures than the ground-truth boxes, and the misses are counted."""
    einstein_faces(tmp_path / "ibug")
    figures = {}
    for boxes in ("gt", "detector"):
        argv = ["eval", "300w", "--data", str(tmp_path / "ibug"), "--boxes", boxes, "--quiet", "--json", "-"]
        assert main(argv) == 0
        figures[boxes] = strict_json(capsys.readouterr().out)
    assert figures["detector"]["boxes"] == "detector" and figures["detector"]["detector_missed"] == 0
    assert figures["gt"]["detector_missed"] is None
    assert abs(figures["detector"]["nme_interocular"] - figures["gt"]["nme_interocular"]) > 1e-3


def test_eval_300w_mirror_average_scores_the_mirror_averaged_model(tmp_path, shipped, capsys):
    """`eval 300w --mirror-average`: the NME is that of the face and its mirror averaged (the Python
    API's MirrorAveraged), not the plain model's."""
    faces = einstein_faces(tmp_path / "ibug")
    argv = ["eval", "300w", "--data", str(tmp_path / "ibug"), "--quiet", "--json", "-", "--mirror-average"]
    assert main(argv) == 0
    report = strict_json(capsys.readouterr().out)
    averaged = load_photo_model("synergynet", mirror_average=True)
    expected = np.mean([by_hand(averaged, photo, gt)[0] for photo, gt in faces])
    plain = np.mean([by_hand(shipped, photo, gt)[0] for photo, gt in faces])
    assert report["nme_interocular"] == pytest.approx(expected, abs=1e-6)
    assert abs(expected - plain) > 1e-3


def test_eval_300w_on_spiga_annotations_scores_the_same_faces_the_same(tmp_path, capsys):
    """`eval 300w --data test.json --images ROOT`: SPIGA's layout gives the same faces the same NME as
    the iBUG folder holding them, and its db_info.json subsets are reported."""
    faces = einstein_faces(tmp_path / "photos")
    records = [
        {
            "imgpath": str(photo.relative_to(tmp_path / "photos")),
            "bbox": [*gt.min(0), *(gt.max(0) - gt.min(0))],
            "landmarks": gt.tolist(),
            "visible": [1] * 68,
        }
        for photo, gt in faces
    ]
    spiga = tmp_path / "annotations" / "test.json"
    spiga.parent.mkdir()
    spiga.write_text(json.dumps(records))
    (spiga.parent / "db_info.json").write_text(
        json.dumps(
            {"norm": {"corners": 8.0, "pupils": 8.0}, "test_subsets": {"common": [0], "challenge": [1]}}
        )
    )
    argv = ["eval", "300w", "--quiet", "--json", "-"]
    assert main([*argv, "--data", str(spiga), "--images", str(tmp_path / "photos")]) == 0
    from_spiga = strict_json(capsys.readouterr().out)
    assert main([*argv, "--data", str(tmp_path / "photos")]) == 0
    from_folder = strict_json(capsys.readouterr().out)

    assert from_spiga["n"] == from_folder["n"] == 2
    assert from_spiga["nme_interocular"] == from_folder["nme_interocular"]
    assert from_spiga["nme_interpupil"] == from_folder["nme_interpupil"]
    assert sorted(from_spiga["subsets"]) == ["challenge", "common", "full"]
    assert (
        from_spiga["subsets"]["common"]["nme_interocular"] == from_folder["subsets"]["afw"]["nme_interocular"]
    )
    assert (
        from_spiga["subsets"]["challenge"]["nme_interocular"]
        == from_folder["subsets"]["helen"]["nme_interocular"]
    )


# --- image --mesh, --mirror-average, --min-score, large photos ---------------------------------------

ASTRONAUT_BOX = "175,76,265,166"


def write_dense_bfm(folder: Path):
    """A 100-vertex morphable model in the BFM's full layout (dense bases, keypoints, tri.mat), so that
    `image --mesh` has a dense face to write without the research-only BFM."""
    model = synthetic_morphable(n_vertices=100, seed=1)
    folder.mkdir(parents=True)
    np.save(folder / "u_shp.npy", model.mean.numpy().reshape(-1, 1))
    np.save(folder / "u_exp.npy", np.zeros((300, 1), np.float32))
    np.save(folder / "w_shp_sim.npy", model.shape_basis.numpy())
    np.save(folder / "w_exp_sim.npy", model.expression_basis.numpy())
    keypoints = 3 * model.landmark_vertices.numpy()[:, None] + np.arange(3)
    np.save(folder / "keypoints_sim.npy", keypoints.reshape(-1).astype(np.int64))
    scipy.io.savemat(folder / "tri.mat", {"tri": (model.triangles + 1).T.astype(np.float64)})
    return model


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and 0-based triangles of an OBJ, read line by line."""
    lines = [line.split() for line in path.read_text().splitlines()]
    vertices = np.array([[float(v) for v in line[1:4]] for line in lines if line and line[0] == "v"])
    faces = np.array(
        [[int(v.split("/")[0]) - 1 for v in line[1:4]] for line in lines if line and line[0] == "f"]
    )
    return vertices, faces


def test_image_mesh_writes_each_faces_dense_mesh_as_obj(random_weights, tmp_path, capsys):
    """`image --mesh --out DIR`: <stem>-face1.obj holds the model's dense mesh (its vertex and triangle
    counts), equal to the Python API's, and its landmark vertices lie on the reported 2D points."""
    model = write_dense_bfm(tmp_path / "bfm")
    photo = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), photo)
    argv = ["image", str(photo), "--weights", str(random_weights), "--bfm", str(tmp_path / "bfm"), "--quiet"]
    assert main([*argv, "--box", ASTRONAUT_BOX, "--mesh", "--out", str(tmp_path / "out"), "--json", "-"]) == 0
    face = strict_json(capsys.readouterr().out)["faces"][0]

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "astronaut-annotated.png",
        "astronaut-face1.obj",
        "astronaut-mesh.png",
        "astronaut.json",
    ]
    vertices, triangles = read_obj(tmp_path / "out" / "astronaut-face1.obj")
    assert vertices.shape == (100, 3)
    np.testing.assert_array_equal(triangles, model.triangles)
    analyzer = FaceAnalyzer(load_photo_model("synergynet", random_weights, tmp_path / "bfm"))
    box = np.array([[175.0, 76.0, 265.0, 166.0]])
    expected = analyzer.analyze(read_image(photo), box, mesh=True)[0].mesh_vertices
    np.testing.assert_allclose(vertices, expected, atol=1e-3)
    on_mesh = vertices[model.landmark_vertices.numpy(), :2]
    np.testing.assert_allclose(on_mesh, face["points_2d"], atol=0.006)


def test_image_mirror_average_averages_the_face_and_its_mirror(shipped, tmp_path, capsys):
    """`image --mirror-average`: the points are the mean of the face's prediction and its mirror
    crop's, mirrored back (left and right points swapped), and yaw and roll average with changed sign."""
    from facegraph.geometry.crops import crop_mirror_x
    from facegraph.schemes import get_scheme

    photo = sample_path("astronaut.jpg")
    argv = ["image", str(photo), "--box", ASTRONAUT_BOX, "--quiet", "--json", "-"]
    assert main([*argv, "--mirror-average"]) == 0
    averaged = strict_json(capsys.readouterr().out)["faces"][0]
    assert main(argv) == 0
    plain = strict_json(capsys.readouterr().out)["faces"][0]

    rgb = read_image(photo)
    box = np.array([[175.0, 76.0, 265.0, 166.0]])
    flip_order = get_scheme("ibug68").flip_order
    crop_box = FaceAnalyzer(shipped).analyze(rgb, box)[0].extra["crop_box"]
    plain_points = shipped.predict(crop(rgb, crop_box, 120)[None], crop_box[None]).landmarks[0]
    # the averaged run's last crop is cut around its own (averaged) landmarks
    crop_box = FaceAnalyzer(MirrorAveraged(shipped, flip_order)).analyze(rgb, box)[0].extra["crop_box"]
    face = crop(rgb, crop_box, 120)
    both = shipped.predict(np.stack([face, face[:, ::-1]]), np.stack([crop_box, crop_box]))
    back = both.landmarks[1, flip_order].copy()
    scale = (crop_box[2] - crop_box[0]) / 120
    back[:, 0] = 2 * crop_box[0] + crop_mirror_x(120) * scale - back[:, 0]
    expected_points = (both.landmarks[0, :, :2] + back[:, :2]) / 2 + BENCHMARK_TO_PIXEL_CENTRES
    (yaw, pitch, roll), (m_yaw, m_pitch, m_roll) = both.pose

    np.testing.assert_allclose(
        plain["points_2d"], plain_points[:, :2] + BENCHMARK_TO_PIXEL_CENTRES, atol=0.006
    )
    np.testing.assert_allclose(averaged["points_2d"], expected_points, atol=0.006)
    assert np.abs(np.array(averaged["points_2d"]) - plain["points_2d"]).max() > 0.1
    expected_pose = {"yaw": (yaw - m_yaw) / 2, "pitch": (pitch + m_pitch) / 2, "roll": (roll - m_roll) / 2}
    angles = {k: averaged["pose"][k] for k in ("yaw", "pitch", "roll")}  # the rest: its camera
    assert angles == pytest.approx(expected_pose, abs=0.006)


def test_image_min_score_keeps_only_detections_scoring_at_least_it(random_weights, capsys):
    """`image --min-score S`: just below the face's detector score it is kept (with the same box), just
    above it it is dropped and the photo has no face."""
    photo = str(sample_path("astronaut.jpg"))
    argv = ["image", photo, "--weights", str(random_weights), "--quiet", "--detector", "faceboxes"]
    assert main([*argv, "--json", "-"]) == 0
    faces = strict_json(capsys.readouterr().out)["faces"]
    assert len(faces) == 1
    score = faces[0]["score"]
    assert main([*argv, "--json", "-", "--min-score", f"{score - 0.001:.4f}"]) == 0
    kept = strict_json(capsys.readouterr().out)["faces"]
    assert len(kept) == 1 and kept[0]["box"] == faces[0]["box"] and kept[0]["score"] == score
    assert main([*argv, "--json", "-", "--min-score", f"{score + 0.001:.4f}"]) == 0
    captured = capsys.readouterr()
    assert strict_json(captured.out)["faces"] == []
    assert "no face found" in captured.err


def test_a_photo_over_1600_pixels_is_searched_at_1600_and_its_box_scaled_back(
    random_weights, tmp_path, capsys
):
    """A 3200-pixel-wide photo is searched at 1600: its face box is twice the one found in the same
    photo at 1600 pixels (which is searched as it is)."""
    wide = Image.new("RGB", (1600, 512), (128, 128, 128))
    wide.paste(Image.open(sample_path("astronaut.jpg")), (300, 0))
    wide.save(tmp_path / "wide.png")
    wide.resize((3200, 1024), Image.BILINEAR).save(tmp_path / "wider.png")
    # dlib's HOG searches what it is given as it is (FaceBoxes would resize both again, to 1024)
    argv = ["image", "--weights", str(random_weights), "--quiet", "--json", "-", "--detector", "dlib-hog"]
    assert main([*argv, str(tmp_path / "wide.png"), str(tmp_path / "wider.png")]) == 0
    small, large = strict_json(capsys.readouterr().out)["photos"]
    assert (small["size"], large["size"]) == ([1600, 512], [3200, 1024])
    assert len(small["faces"]) == len(large["faces"]) == 1
    assert large["faces"][0]["box"] == [2 * v for v in small["faces"][0]["box"]]


# --- eval aflw2000-3d: NaN as null, --onnx ------------------------------------------------------------


def test_an_empty_yaw_bin_is_null_in_the_json_report(tmp_path, capsys):
    """`eval aflw2000-3d --json`: with no face at 30-60 degrees of yaw, that bin's NME and the mean of
    the bins are null (the file parses with a strict parser), and "all" is the mean over the 3 faces."""
    data = write_layout(tmp_path / "aflw")
    np.save(data / "configs" / "AFLW2000-3D.pose.npy", np.array([10.0, -20.0, 70.0], np.float32))
    report_path = tmp_path / "report.json"
    assert main(["eval", "aflw2000-3d", "--data", str(data), "--quiet", "--json", str(report_path)]) == 0
    report = strict_json(report_path.read_text())
    assert report["n"] == 3
    assert report["nme"]["30-60"] is None and report["nme"]["mean"] is None
    assert report["nme_reannotated"]["30-60"] is None
    assert report["nme"]["all"] == pytest.approx((2 * report["nme"]["0-30"] + report["nme"]["60-90"]) / 3)
    assert "NaN" not in report_path.read_text()


def test_eval_aflw2000_with_onnx_reports_the_pytorch_figures(tmp_path, capsys):
    """`eval aflw2000-3d --onnx FILE` (from `export onnx`): every NME of the report equals the PyTorch
    run's within the export's parity (landmarks within 1e-3 px)."""
    exported = tmp_path / "synergynet.onnx"
    assert main(["export", "onnx", str(exported), "--quiet"]) == 0
    data = write_layout(tmp_path / "aflw")
    argv = ["eval", "aflw2000-3d", "--data", str(data), "--quiet", "--json", "-"]
    capsys.readouterr()  # the export's line
    assert main(argv) == 0
    torch_report = strict_json(capsys.readouterr().out)
    assert main([*argv, "--onnx", str(exported)]) == 0
    onnx_report = strict_json(capsys.readouterr().out)
    assert onnx_report["n"] == torch_report["n"] == 3
    for key in ("nme", "nme_reannotated"):
        assert onnx_report[key] == pytest.approx(torch_report[key], abs=1e-3)


def test_image_keeps_the_largest_face_with_order_size_and_max_faces(tmp_path, capsys):
    """einstein.jpg holds two faces (FaceBoxes finds both): --order size --max-faces 1 keeps Einstein's,
    the larger; --min-face above the other's side keeps his too."""
    photo = sample_path("einstein.jpg")
    both = ["image", str(photo), "--detector", "faceboxes", "--quiet", "--json", "-"]
    assert main(both) == 0
    faces = json.loads(capsys.readouterr().out)["faces"]
    assert len(faces) == 2
    sides = [min(f["box"][2] - f["box"][0], f["box"][3] - f["box"][1]) for f in faces]
    largest = faces[int(np.argmax(sides))]["box"]
    for extra in (["--order", "size", "--max-faces", "1"], ["--min-face", str(min(sides) + 1)]):
        assert main([*both, *extra]) == 0
        assert [f["box"] for f in json.loads(capsys.readouterr().out)["faces"]] == [largest]
