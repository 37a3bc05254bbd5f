"""FaceBoxes: the shipped weights, prior boxes, decoding, NMS, detection on photos and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facegraph.cli import main
from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image.detectors import DETECTORS, DlibHogDetector, iou, make_detector
from facegraph.image.faceboxes import (
    FaceBoxesDetector,
    bundled_weights,
    decode,
    load_faceboxes,
    nms,
    prior_boxes,
)
from facegraph.io import read_image, read_landmarks
from facegraph.nn.faceboxes import FaceBoxes


@pytest.fixture(scope="module")
def detector() -> FaceBoxesDetector:
    return FaceBoxesDetector(min_score=0.5)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_image(sample_path("astronaut.jpg"))


def test_shipped_weights_fill_every_tensor_of_the_module_and_no_more() -> None:
    tensors = load_file(str(bundled_weights()))
    network = FaceBoxes()
    assert set(tensors) == set(network.state_dict())
    network.load_state_dict(tensors, strict=True)
    assert bundled_weights().stat().st_size <= 20_000_000


def test_network_outputs_one_offset_and_probability_per_prior() -> None:
    offsets, scores = load_faceboxes()(torch.zeros(2, 3, 96, 160))
    n_priors = len(prior_boxes(96, 160))
    assert offsets.shape == (2, n_priors, 4)
    assert scores.shape == (2, n_priors)
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_prior_count_for_1024_square_follows_the_anchor_scheme() -> None:
    # stride 32: 32x32 cells x (16 + 4 + 1) anchors; stride 64: 16x16 x 1; stride 128: 8x8 x 1
    assert len(prior_boxes(1024, 1024)) == 32 * 32 * 21 + 16 * 16 + 8 * 8


def test_first_priors_are_the_densified_32_pixel_anchors_of_the_top_left_cell() -> None:
    priors = prior_boxes(64, 64)
    assert priors[:4].tolist() == [[0, 0, 32, 32], [8, 0, 32, 32], [16, 0, 32, 32], [24, 0, 32, 32]]
    assert priors[16].tolist() == [0, 0, 64, 64]
    assert priors[20].tolist() == [16, 16, 128, 128]  # the 128 px anchor sits at the cell's centre


def test_decoding_zero_offsets_gives_the_priors_themselves() -> None:
    priors = prior_boxes(128, 96)
    boxes = decode(np.zeros_like(priors), priors)
    np.testing.assert_allclose((boxes[:, :2] + boxes[:, 2:]) / 2, priors[:, :2])
    np.testing.assert_allclose(boxes[:, 2:] - boxes[:, :2], priors[:, 2:])


def test_nms_keeps_the_hand_worked_boxes() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0.9: kept
            [1, 0, 11, 10],  # 0.8: IoU 90/110 with box 0, dropped
            [5, 0, 15, 10],  # 0.7: IoU 50/150 with box 0: above 0.3, dropped
            [7, 0, 17, 10],  # 0.6: IoU 30/170 with box 0, 0 with nothing kept else: kept
            [50, 50, 60, 60],  # 0.95: alone, kept first
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    assert nms(boxes, scores, 0.3).tolist() == [4, 0, 3]
    assert nms(boxes[:0], scores[:0], 0.3).tolist() == []


def test_astronaut_gives_one_face_matching_dlib(detector, astronaut) -> None:
    found = detector.detect(astronaut)
    assert len(found) == 1
    (dlib,) = DlibHogDetector(threshold=0.25).detect(astronaut)
    assert iou(found[0].box, dlib.box) > 0.5
    assert found[0].score > 0.9


def test_einstein_and_the_seated_man_are_both_found(detector) -> None:
    found = detector.detect(read_image(sample_path("einstein.jpg")))
    einstein = read_landmarks(sample_path("einstein.pts")).box()
    seated_man = np.array([135.0, 625.0, 187.0, 677.0])  # dlib's box; the photo's other face
    assert len(found) == 2
    assert max(iou(d.box, einstein) for d in found) > 0.5
    assert max(iou(d.box, seated_man) for d in found) > 0.5


def test_blank_grey_photo_has_no_face(detector) -> None:
    assert detector.detect(np.full((480, 640, 3), 128, np.uint8)) == []


def test_mirrored_photo_gives_the_mirrored_box(detector, astronaut) -> None:
    (face,) = detector.detect(astronaut)
    (mirrored,) = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    right = astronaut.shape[1] - 1  # pixel-centre frame: x -> W - 1 - x
    expected = np.array([right - face.box[2], face.box[1], right - face.box[0], face.box[3]])
    np.testing.assert_allclose(mirrored.box, expected, atol=4)


def test_batch_matches_one_by_one(detector, astronaut) -> None:
    (single,) = detector.detect(astronaut)
    grey = np.full((200, 300, 3), 128, np.uint8)  # another size: a batch of its own
    batch = detector.detect_batch([astronaut, grey, astronaut])
    assert [len(found) for found in batch] == [1, 0, 1]
    np.testing.assert_allclose(batch[0][0].box, single.box, atol=1e-3)
    np.testing.assert_allclose(batch[2][0].box, single.box, atol=1e-3)


def test_photos_above_the_size_bound_are_searched_downscaled_and_boxes_scale_back(
    detector, astronaut
) -> None:
    (single,) = detector.detect(astronaut)
    (small,) = FaceBoxesDetector(min_score=0.5, max_side=256).detect(astronaut)
    assert iou(small.box, single.box) > 0.7


def test_registered_under_its_name() -> None:
    assert "faceboxes" in DETECTORS
    chosen = make_detector("faceboxes", 0.7, smallest_face=20)
    assert isinstance(chosen, FaceBoxesDetector) and chosen.min_score == 0.7
    assert chosen.smallest_face == 20


def small_faces_picture(astronaut: np.ndarray, sides: tuple[int, ...]) -> tuple[np.ndarray, list]:
    """A 640 x 480 grey picture with the astronaut's head pasted at each of ``sides`` (pixels, the face
    about half of it), and where each face's centre lies."""
    from PIL import Image

    head = Image.fromarray(astronaut[40:260, 110:330])  # the face with hair and collar around it
    picture = np.full((480, 640, 3), 128, np.uint8)
    centres = []
    for k, side in enumerate(sides):
        x, y = 40 + 150 * k, 200
        picture[y : y + side, x : x + side] = np.asarray(head.resize((side, side), Image.BILINEAR))
        centres.append(np.array([x + 0.5 * side, y + 0.5 * side]))
    return picture, centres


def holds(detections, centre) -> bool:
    return any((d.box[:2] <= centre).all() and (centre <= d.box[2:]).all() for d in detections)


def test_small_faces_are_found_by_an_enlarged_search_when_asked_for(astronaut) -> None:
    """A face of about 24 pixels is below FaceBoxes' reach at the photo's own size; with
    ``smallest_face=20`` the photo is searched again enlarged and it is found, as the large one still is."""
    picture, (small, large) = small_faces_picture(astronaut, (48, 220))
    plain = FaceBoxesDetector(min_score=0.5, smallest_face=48).detect(picture)
    assert holds(plain, large) and not holds(plain, small)
    asked = FaceBoxesDetector(min_score=0.5, smallest_face=20)
    assert asked.enlargement(480, 640) == pytest.approx(48 / 20)
    found = asked.detect(picture)
    assert holds(found, small) and holds(found, large)
    assert len(found) == 2  # the large face once, although both searches see it


def test_by_default_photos_showing_small_faces_are_searched_again_enlarged_and_portraits_are_not(
    detector, astronaut
) -> None:
    """A found face of about 60 pixels cues the second search, which finds the 24-pixel one; beside a
    face of about 115 pixels nothing is searched for below FaceBoxes' own reach."""
    group, (small, medium) = small_faces_picture(astronaut, (48, 140))
    found = detector.detect(group)
    assert holds(found, small) and holds(found, medium) and len(found) == 2
    portrait, (small, large) = small_faces_picture(astronaut, (48, 260))
    found = detector.detect(portrait)
    assert holds(found, large) and not holds(found, small)


def test_the_enlarged_search_is_bounded_on_huge_photos() -> None:
    asked = FaceBoxesDetector(min_score=0.5, smallest_face=10)
    assert asked.enlargement(4000, 6000) == 1.0  # no second search beyond the bound
    assert asked.enlargement(480, 640) * 640 <= 2048
    assert FaceBoxesDetector(smallest_face=60).enlargement(480, 640) == 1.0


def test_cli_reports_the_astronauts_one_face(tmp_path: Path, capsys) -> None:
    photo = tmp_path / "astronaut.jpg"
    shutil.copy(sample_path("astronaut.jpg"), photo)
    assert main(["image", str(photo), "--detector", "faceboxes", "--json", "-", "--quiet"]) == 0
    assert len(json.loads(capsys.readouterr().out)["faces"]) == 1


def test_truncated_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    damaged = tmp_path / "faceboxes.safetensors"
    damaged.write_bytes(bundled_weights().read_bytes()[:100_000])
    with pytest.raises(InputError, match="faceboxes.safetensors") as raised:
        FaceBoxesDetector(weights=damaged)
    assert raised.value.path == damaged
