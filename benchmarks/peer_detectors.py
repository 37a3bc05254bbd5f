"""Peer face detectors, for side-by-side comparison in ``detection.py`` only (never a package dependency).

Each peer has the interface of ``facegraph.image.detectors.DlibHogDetector``: ``detect(rgb) ->
list[Detection]``, boxes [x0, y0, x1, y1] in photo pixels, best first.

- ``dlib-mmod``: dlib's CNN face detector (max-margin object detection, King 2015), run with the
  dlib-bin wheel. Its weights come from the face_recognition_models 0.3.0 sdist (LICENSE: CC0 1.0; the
  README says public domain or CC0; the package metadata says MIT).
- ``blazeface-short`` and ``blazeface-full``: MediaPipe's BlazeFace (Bazarevsky et al. 2019) short-range
  (128 x 128 input, faces within about 2 m of the camera) and full-range (192 x 192, within about 5 m;
  the mediapipe 0.10.14 wheel ships only its sparse variant, which ai-edge-litert runs) models, from the
  mediapipe wheel (Apache-2.0), run with ai-edge-litert. The anchors, box decoding, score squashing,
  letterboxing and weighted NMS below follow the settings of MediaPipe's own face detection graphs.

The model files are put in a cache folder by ``../shared/tools/get-peer-models`` (``models_folder``);
nothing here imports mediapipe or face_recognition.
"""

from __future__ import annotations

import glob
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facegraph.image.detectors import FaceDetector, iou
from facegraph.types import Detection

HERE = Path(__file__).resolve().parent
GET_PEER_MODELS = HERE.parent.parent / "shared" / "tools" / "get-peer-models"
MEDIAPIPE_WHEEL = "mediapipe==0.10.14"
WHEEL_FOLDER = "mediapipe/modules/face_detection/"
FULL_RANGE_FILES = ("face_detection_full_range.tflite", "face_detection_full_range_sparse.tflite")
MMOD_FILE = "dlib/mmod_human_face_detector.dat"


def models_folder() -> Path:
    """The peers' model folder: ``get-peer-models`` fills it (a no-op once it has), and the BlazeFace
    full-range model, which that script does not extract, is taken from the mediapipe wheel here."""
    printed = subprocess.run([str(GET_PEER_MODELS)], check=True, capture_output=True, text=True).stdout
    models = Path(printed.strip().splitlines()[-1])
    mediapipe = models / "mediapipe"
    if not any((mediapipe / name).is_file() for name in FULL_RANGE_FILES):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                 "--python-version", "3.11", "--platform", "manylinux_2_17_x86_64", MEDIAPIPE_WHEEL,
                 "-d", tmp],
                check=True,
            )  # fmt: skip
            with zipfile.ZipFile(glob.glob(f"{tmp}/mediapipe-*.whl")[0]) as wheel:
                names = set(wheel.namelist())
                for name in FULL_RANGE_FILES:
                    if WHEEL_FOLDER + name in names:
                        (mediapipe / name).write_bytes(wheel.read(WHEEL_FOLDER + name))
    return models


def peer_detectors(models: Path) -> dict[str, FaceDetector]:
    """The peers whose model files are in ``models`` (see ``models_folder``), by name."""
    found: dict[str, FaceDetector] = {}
    if (models / MMOD_FILE).is_file():
        found["dlib-mmod"] = DlibMmodDetector(models / MMOD_FILE)
    for name, spec in BLAZEFACE.items():
        paths = [models / "mediapipe" / file for file in spec.files]
        path = next((path for path in paths if path.is_file()), None)
        if path is not None:
            found[name] = BlazeFaceDetector(path, spec)
    return found


class DlibMmodDetector:
    """dlib's CNN (MMOD) face detector, CPU only in the dlib-bin wheel. ``upsample``: times the photo is
    doubled first, each halving the smallest face found: at 0 an 80 px face in a 640 x 480 photo is
    found and a 40 px one is not, at 1 both are, at about five times the time (some 2.5 s against 12 s
    per 640 x 480 photo on two busy cores). ``min_score``: the lowest confidence kept (the network
    itself reports only detections above 0)."""

    def __init__(self, weights: Path, upsample: int = 0, min_score: float = 0.0) -> None:
        import dlib

        self._detector = dlib.cnn_face_detection_model_v1(str(weights))
        self.upsample = upsample
        self.min_score = min_score

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        found = [
            Detection(
                np.array([r.rect.left(), r.rect.top(), r.rect.right(), r.rect.bottom()], dtype=np.float64),
                float(r.confidence),
            )
            for r in self._detector(np.ascontiguousarray(rgb), self.upsample)
            if r.confidence >= self.min_score
        ]
        return sorted(found, key=lambda d: -d.score)


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model's input size, anchor layout and score threshold, as MediaPipe's graphs set them.

    ``strides``: one per SSD layer; each layer puts ``anchors_per_layer`` unit-size anchors on every cell
    of its (size / stride)-square grid, and layers of equal stride share one grid (their anchors
    alternate within each cell).
    """

    files: tuple[str, ...]
    size: int
    strides: tuple[int, ...]
    anchors_per_layer: int
    min_score: float


BLAZEFACE = {
    # 16 x 16 x 2 + 8 x 8 x 6 = 896 anchors
    "blazeface-short": BlazeFaceSpec(("face_detection_short_range.tflite",), 128, (8, 16, 16, 16), 2, 0.5),
    # 48 x 48 x 1 = 2304 anchors; MediaPipe keeps full-range faces scoring 0.6 and up
    "blazeface-full": BlazeFaceSpec(FULL_RANGE_FILES, 192, (4,), 1, 0.6),
}
SCORE_CLIP = 100.0  # raw scores are clipped to +-this before the sigmoid
NMS_IOU = 0.3  # MediaPipe's weighted NMS merges boxes overlapping the best by more than this
ANCHOR_OFFSET = 0.5  # anchors sit at their cells' centres


def blazeface_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """(A, 2) anchor centres [x, y] in the input square's unit frame, in the network's output order:
    layers of one stride in turn, each grid's cells row by row, a cell's anchors together."""
    parts = []
    for stride in dict.fromkeys(spec.strides):  # distinct strides, in order
        per_cell = spec.anchors_per_layer * spec.strides.count(stride)
        cells = -(-spec.size // stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + ANCHOR_OFFSET) / cells
        parts.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(parts)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, max_iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's tie resolution: the best remaining box and every remaining box overlapping it by more
    than ``max_iou`` become one box, their score-weighted mean, with the best one's score."""
    order = np.argsort(-scores, kind="stable")
    merged = []
    while order.size:
        overlaps = np.array([iou(boxes[order[0]], boxes[k]) for k in order])
        group = order[overlaps > max_iou]
        group = group if group.size else order[:1]
        weights = scores[group] / scores[group].sum()
        merged.append((weights @ boxes[group], float(scores[order[0]])))
        order = order[overlaps <= max_iou]
    return merged


class BlazeFaceDetector:
    """A MediaPipe BlazeFace model through ai-edge-litert. The photo is letterboxed (padded black to a
    centred square, so faces keep their shape), resized to the input size and scaled to [-1, 1] RGB.
    ``min_score``: the lowest face probability kept (None: MediaPipe's, ``spec.min_score``). The six
    keypoints the model also regresses (eyes, nose, mouth, ears) are not kept.
    """

    def __init__(
        self, weights: Path, spec: BlazeFaceSpec, min_score: float | None = None, threads: int | None = None
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec = spec
        self.min_score = spec.min_score if min_score is None else min_score
        self._interpreter = Interpreter(model_path=str(weights), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        # outputs: (1, A, 16) regressors and (1, A, 1) scores; told apart by their last dimension
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self._regressors, self._scores = (d["index"] for d in outputs)
        self.anchors = blazeface_anchors(spec)
        if outputs[0]["shape"][1] != len(self.anchors):
            raise ValueError(f"{weights} has {outputs[0]['shape'][1]} anchors, expected {len(self.anchors)}")

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        side = max(height, width)
        square = np.zeros((side, side, 3), dtype=np.uint8)
        left, top = (side - width) // 2, (side - height) // 2
        square[top : top + height, left : left + width] = rgb
        small = Image.fromarray(square).resize((self.spec.size, self.spec.size), Image.BILINEAR)
        tensor = np.asarray(small, dtype=np.float32)[None] / np.float32(127.5) - np.float32(1.0)
        self._interpreter.set_tensor(self._input, tensor)
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._regressors)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores)[0, :, 0], -SCORE_CLIP, SCORE_CLIP)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        keep = np.flatnonzero(scores >= self.min_score)
        # regressors: centre offset x, y and width, height in input pixels (unit anchors), then keypoints
        centre = self.anchors[keep] + raw[keep, :2] / self.spec.size
        size = raw[keep, 2:4] / self.spec.size
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float64)
        # unit square -> photo pixel edges -> the pixel-centre frame (as FaceBoxes' boxes)
        shift = np.array([left, top, left, top], dtype=np.float64) + 0.5
        merged = weighted_nms(boxes, scores[keep], NMS_IOU)
        return [Detection(box * side - shift, score) for box, score in merged]
