"""Photos to faces with a random-weight SynergyNet: detection, boxes, frames, records and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image import FaceAnalyzer, face_to_dict
from facegraph.image.analyzer import check_box, check_photo
from facegraph.image.detectors import iou
from facegraph.image.synergynet import load_synergynet
from facegraph.io import read_image
from tests.image.test_synergynet_model import synthetic_morphable, write_random_synergynet

# Where the astronaut's face is in the bundled 512x512 portrait (dlib's box is about 175,76-265,166).
FACE_REGION = np.array([170.0, 60.0, 270.0, 180.0])
BOX = np.array([180.0, 80.0, 260.0, 160.0])


class NoDetector:
    def detect(self, rgb):
        raise AssertionError("the detector ran although boxes were given")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_random_synergynet(tmp_path_factory.mktemp("analyze") / "synergynet.safetensors")


@pytest.fixture(scope="module")
def analyzer(weights) -> FaceAnalyzer:
    return FaceAnalyzer(model=load_synergynet(weights, None), device="cpu")


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return read_image(sample_path("astronaut.jpg"))


@pytest.fixture(scope="module")
def portrait_faces(analyzer):
    return analyzer.analyze(sample_path("astronaut.jpg"))


def test_the_portrait_gives_the_astronauts_face_first(portrait_faces):
    assert portrait_faces, "no face found in the bundled portrait"
    assert iou(portrait_faces[0].box, FACE_REGION) > 0.5
    scores = [face.score for face in portrait_faces]
    assert scores == sorted(scores, reverse=True)


def test_a_face_record_has_the_documented_fields(portrait_faces):
    record = face_to_dict(portrait_faces[0])
    assert set(record) == {"box", "score", "scheme", "points_2d", "points_3d", "pose", "camera", "params"}
    assert record["scheme"] == "ibug68"
    assert np.array(record["box"]).shape == (4,)
    assert np.array(record["points_2d"]).shape == (68, 2)
    assert np.array(record["points_3d"]).shape == (68, 3)
    assert set(record["pose"]) == {"yaw", "pitch", "roll", "translation", "scale"}
    assert np.array(record["camera"]).shape == (3, 4) and len(record["params"]) == 62
    assert np.array(record["points_3d"])[:, :2] == pytest.approx(np.array(record["points_2d"]))
    assert json.loads(json.dumps(record)) == record


def test_points_lie_in_the_face_crop(portrait_faces):
    face = portrait_faces[0]
    crop_box = face.extra["crop_box"]
    points = face.landmarks_2d.points
    assert ((points > crop_box[:2]) & (points < crop_box[2:])).all()
    assert face.landmarks_3d.points[:, 2].min() == pytest.approx(0.0, abs=1e-6)


def test_a_blank_photo_has_no_faces(analyzer):
    assert analyzer.analyze(np.full((200, 300, 3), 128, np.uint8)) == []


def test_boxes_skip_detection(weights, portrait):
    """Where the points land in the photo is worked out by hand in tests/geometry/test_pixel_frames.py."""
    model = load_synergynet(weights, None)
    faces = FaceAnalyzer(model=model, detector=NoDetector(), device="cpu").analyze(portrait, boxes=BOX[None])
    assert len(faces) == 1 and faces[0].score == 1.0
    np.testing.assert_array_equal(faces[0].box, BOX)


def test_several_boxes_give_one_face_each_in_their_order(analyzer, portrait):
    boxes = np.array([BOX, [20.0, 300.0, 120.0, 400.0]])
    analyzer = FaceAnalyzer(model=analyzer.model, detector=NoDetector())
    faces = analyzer.analyze(portrait, boxes=boxes)
    assert [face.box.tolist() for face in faces] == boxes.tolist()


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([600.0, 10.0, 700.0, 100.0], "lies outside the 512x512 photo"),
        ([-100.0, -100.0, -10.0, -10.0], "lies outside the 512x512 photo"),
        # mostly off the photo: a huge box would cost memory in proportion to its size, and a box
        # half on the background would give landmarks on it with full confidence
        ([-1e5, -1e5, 1e5, 1e5], "lies mostly outside the 512x512 photo"),
        ([-5000.0, -5000.0, 5000.0, 5000.0], "lies mostly outside the 512x512 photo"),
        ([-50.0, -50.0, 100.0, 100.0], r"44% of it on the photo; at least 50% is needed"),
        ([100.0, 100.0, 100.0, 200.0], "is empty"),
        ([100.0, 200.0, 200.0, 100.0], "is empty"),
        ([1.0, 2.0, 3.0], "four finite numbers"),
        ([1.0, 2.0, np.nan, 40.0], "four finite numbers"),
    ],
)
def test_a_bad_box_is_a_user_error(box, message):
    photo = np.zeros((512, 512, 3), np.uint8)
    with pytest.raises(InputError, match=message) as error:
        check_box(np.array(box), photo, "photo.jpg")
    assert error.value.path == Path("photo.jpg")


def test_a_box_mostly_on_the_photo_is_clipped_to_it():
    box = check_box(np.array([-20, -20, 50, 50]), np.zeros((100, 100, 3), np.uint8))
    assert box.tolist() == [0.0, 0.0, 50.0, 50.0]


def test_analyze_refuses_a_box_outside_the_photo(analyzer, portrait):
    with pytest.raises(InputError, match="outside"):
        analyzer.analyze(portrait, boxes=np.array([[600.0, 10.0, 700.0, 100.0]]))


def test_a_tiny_photo_is_a_user_error(analyzer, tmp_path):
    with pytest.raises(InputError, match=r"too small \(10x10 pixels"):
        analyzer.analyze(np.zeros((10, 10, 3), np.uint8))
    path = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(path)
    with pytest.raises(InputError, match="too small") as error:
        analyzer.analyze(path)
    assert error.value.path == path
    check_photo(np.zeros((24, 24, 3), np.uint8))  # the smallest accepted


def test_an_array_that_is_not_rgb_uint8_is_refused(analyzer):
    with pytest.raises(InputError, match="uint8 RGB"):
        analyzer.analyze(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(InputError, match="uint8 RGB"):
        analyzer.analyze(np.zeros((100, 100), np.uint8))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_and_transparent_files_are_read_as_rgb(analyzer, portrait, tmp_path, mode):
    path = tmp_path / f"portrait-{mode}.png"
    Image.fromarray(portrait).convert(mode).save(path)
    faces = analyzer.analyze(path)
    assert faces and iou(faces[0].box, FACE_REGION) > 0.5
    assert faces[0].landmarks_2d.points.shape == (68, 2)


def test_a_mesh_needs_the_dense_bfm(analyzer, weights, portrait):
    with pytest.raises(InputError, match="dense mesh needs the BFM"):
        analyzer.analyze(portrait, boxes=BOX[None], mesh=True)
    with pytest.raises(InputError, match="dense mesh needs the BFM"):  # even where no face is found
        analyzer.analyze(np.full((200, 300, 3), 128, np.uint8), mesh=True)
    sparse = FaceAnalyzer(model=load_synergynet(weights, synthetic_morphable()), detector=NoDetector())
    with pytest.raises(InputError, match="dense mesh needs the BFM"):
        sparse.analyze(portrait, boxes=BOX[None], mesh=True)


def test_a_mesh_shares_its_landmark_vertices_with_the_points(weights, portrait):
    morphable = synthetic_morphable(n_vertices=100, seed=1)
    analyzer = FaceAnalyzer(model=load_synergynet(weights, morphable), detector=NoDetector())
    face = analyzer.analyze(portrait, boxes=BOX[None], mesh=True)[0]
    assert face.mesh_vertices.shape == (100, 3)
    np.testing.assert_array_equal(face.mesh_faces, morphable.triangles)
    on_mesh = face.mesh_vertices[morphable.landmark_vertices.numpy()]
    np.testing.assert_allclose(on_mesh[:, :2], face.landmarks_3d.points[:, :2], atol=1e-3)


def test_face_selection_orders_filters_and_caps_the_detections():
    from facegraph.image.analyzer import FaceSelection
    from facegraph.types import Detection

    small_sure = Detection(np.array([0.0, 0.0, 20.0, 30.0]), 0.9)  # shorter side 20
    big_unsure = Detection(np.array([0.0, 0.0, 100.0, 80.0]), 0.3)  # area 8000
    middle = Detection(np.array([0.0, 0.0, 40.0, 40.0]), 0.6)  # area 1600
    found = [big_unsure, small_sure, middle]
    assert FaceSelection().apply(found) == [small_sure, middle, big_unsure]
    assert FaceSelection(order="size").apply(found) == [big_unsure, middle, small_sure]
    assert FaceSelection(max_faces=2).apply(found) == [small_sure, middle]
    assert FaceSelection(min_side=21).apply(found) == [middle, big_unsure]
    with pytest.raises(InputError, match="at least 1"):
        FaceSelection(max_faces=0)
