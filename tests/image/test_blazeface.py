"""BlazeFace short-range: the shipped weights, the network, anchors, weighted NMS, detection on photos,
agreement with MediaPipe's .tflite model and ONNX export."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from facegraph.demo import sample_path
from facegraph.errors import InputError
from facegraph.image.blazeface import (
    BlazeFaceDetector,
    anchor_centres,
    bundled_weights,
    decode,
    load_blazeface,
    weighted_nms,
)
from facegraph.image.detectors import iou
from facegraph.image.faceboxes import FaceBoxesDetector
from facegraph.image.faceboxes import bundled_weights as faceboxes_weights
from facegraph.io import read_image
from facegraph.nn.blazeface import BlazeFace, same_padding

PEER_MODEL = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "facegraph-dev/peers/mediapipe/face_detection_short_range.tflite"
)


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector(min_score=0.5)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return read_image(sample_path("astronaut.jpg"))


def test_shipped_weights_fill_every_tensor_of_the_module_and_name_their_source() -> None:
    tensors = load_file(str(bundled_weights()))
    network = BlazeFace()
    assert set(tensors) == set(network.state_dict())
    network.load_state_dict(tensors, strict=True)
    with safe_open(str(bundled_weights()), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["model"] == "blazeface-short"
    assert metadata["source"] == "face_detection_short_range.tflite"
    assert metadata["license"].startswith("Apache-2.0")
    assert metadata["generator"].startswith("facegraph")
    assert bundled_weights().stat().st_size <= 1_000_000


def test_network_outputs_sixteen_regressors_and_a_logit_per_anchor() -> None:
    regressors, logits = load_blazeface()(torch.zeros(2, 3, 128, 128))
    assert regressors.shape == (2, 896, 16)
    assert logits.shape == (2, 896)


def test_same_padding_puts_the_odd_pixel_after() -> None:
    assert same_padding(5, 2, 128) == (1, 2)  # the stem
    assert same_padding(3, 2, 64) == (0, 1)  # a strided depthwise convolution
    assert same_padding(3, 1, 16) == (1, 1)


def test_anchors_tile_the_16_and_8_cell_grids_in_the_network_order() -> None:
    anchors = anchor_centres()
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(anchors[32], [1 / 32, 3 / 32])  # the second row of the 16x16 grid
    np.testing.assert_allclose(anchors[512:519], [[1 / 16, 1 / 16]] * 6 + [[3 / 16, 1 / 16]])


def test_anchors_are_the_peer_wrappers() -> None:
    peers = pytest.importorskip(
        "benchmarks.peer_detectors", reason="the peer wrapper is not in this checkout"
    )
    spec = peers.BLAZEFACE["blazeface-short"]
    np.testing.assert_array_equal(anchor_centres(), peers.blazeface_anchors(spec))


def test_decoding_zero_sizes_gives_the_anchor_and_sizes_are_input_pixels() -> None:
    anchors = np.array([[0.5, 0.25]])
    box = decode(np.array([[0.0, 0.0, 64.0, 32.0] + [0.0] * 12]), anchors)
    np.testing.assert_allclose(box, [[0.25, 0.125, 0.75, 0.375]])
    moved = decode(np.array([[12.8, -12.8, 0.0, 0.0] + [0.0] * 12]), anchors)
    np.testing.assert_allclose(moved, [[0.6, 0.15, 0.6, 0.15]])


def test_weighted_nms_blends_the_hand_worked_boxes() -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],  # 0.6: best, its group's score
            [2, 0, 12, 10],  # 0.2: IoU 80/120 with box 0: blended in
            [7, 0, 17, 10],  # 0.5: IoU 30/170 with box 0: kept apart
            [50, 50, 60, 60],  # 0.4: alone
        ],
        dtype=float,
    )
    scores = np.array([0.6, 0.2, 0.5, 0.4])
    merged = weighted_nms(boxes, scores, 0.3)
    assert [score for _, score in merged] == [0.6, 0.5, 0.4]
    np.testing.assert_allclose(merged[0][0], [0.5, 0, 10.5, 10])  # (0.6 * box 0 + 0.2 * box 1) / 0.8
    np.testing.assert_allclose(merged[1][0], boxes[2])
    assert weighted_nms(boxes[:0], scores[:0], 0.3) == []


def test_astronaut_gives_one_face_on_the_face(detector, astronaut) -> None:
    found = detector.detect(astronaut)
    assert len(found) == 1
    assert found[0].score > 0.8
    (faceboxes,) = FaceBoxesDetector(min_score=0.5).detect(astronaut)
    assert iou(found[0].box, faceboxes.box) > 0.7


@pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert (the peer's runtime) missing"
)
@pytest.mark.skipif(
    not PEER_MODEL.is_file(), reason=f"{PEER_MODEL} missing (../shared/tools/get-peer-models puts it there)"
)
def test_astronaut_box_is_the_tflite_models(detector, astronaut) -> None:
    peers = pytest.importorskip(
        "benchmarks.peer_detectors", reason="the peer wrapper is not in this checkout"
    )
    peer = peers.BlazeFaceDetector(PEER_MODEL, peers.BLAZEFACE["blazeface-short"], min_score=0.5)
    for photo in (astronaut, np.ascontiguousarray(astronaut[40:, :450])):  # square and letterboxed
        (expected,) = peer.detect(photo)
        (found,) = detector.detect(photo)
        np.testing.assert_allclose(found.box, expected.box, atol=0.01)
        assert found.score == pytest.approx(expected.score, abs=1e-4)


def test_mirrored_photo_gives_the_mirrored_box(detector, astronaut) -> None:
    (face,) = detector.detect(astronaut)
    (mirrored,) = detector.detect(np.ascontiguousarray(astronaut[:, ::-1]))
    right = astronaut.shape[1] - 1  # pixel-centre frame: x -> W - 1 - x
    expected = np.array([right - face.box[2], face.box[1], right - face.box[0], face.box[3]])
    np.testing.assert_allclose(mirrored.box, expected, atol=4)


def test_batch_matches_one_by_one(detector, astronaut) -> None:
    (single,) = detector.detect(astronaut)
    wide = np.ascontiguousarray(astronaut[60:380])  # another size, letterboxed in the same batch
    (single_wide,) = detector.detect(wide)
    grey = np.full((200, 300, 3), 128, np.uint8)
    batch = detector.detect_batch([astronaut, grey, wide])
    assert [len(found) for found in batch] == [1, 0, 1]
    np.testing.assert_allclose(batch[0][0].box, single.box, atol=1e-3)
    np.testing.assert_allclose(batch[2][0].box, single_wide.box, atol=1e-3)
    assert detector.detect_batch([]) == []


def test_face_free_photos_have_no_face(detector) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert detector.detect_batch([np.full((480, 640, 3), 128, np.uint8), noise]) == [[], []]


def test_truncated_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    damaged = tmp_path / "blazeface_short.safetensors"
    damaged.write_bytes(bundled_weights().read_bytes()[:100_000])
    with pytest.raises(InputError, match="blazeface_short.safetensors") as raised:
        BlazeFaceDetector(weights=damaged)
    assert raised.value.path == damaged


def test_other_models_weights_are_refused_naming_the_file() -> None:
    with pytest.raises(InputError, match="not BlazeFace weights") as raised:
        BlazeFaceDetector(weights=faceboxes_weights())
    assert raised.value.path == faceboxes_weights()


def test_missing_weights_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as raised:
        load_blazeface(tmp_path / "absent.safetensors")
    assert raised.value.path == tmp_path / "absent.safetensors"


def test_onnx_export_runs_in_onnxruntime_with_the_same_outputs(tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="ONNX export needs the export extra")
    onnxruntime = pytest.importorskip("onnxruntime", reason="running the export needs the export extra")
    network = load_blazeface()
    images = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = tmp_path / "blazeface.onnx"
    torch.onnx.export(
        network,
        (images,),
        str(path),
        input_names=["images"],
        output_names=["regressors", "logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (images, images[:1]):
        with torch.inference_mode():
            expected = [t.numpy() for t in network(batch)]
        got = session.run(None, {"images": batch.numpy()})
        for want, have in zip(expected, got, strict=True):
            np.testing.assert_allclose(have, want, atol=1e-3)
