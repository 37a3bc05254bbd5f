"""BlazeFace short-range face detection on photos: letterboxing, anchors, decoding, weighted NMS.

The shipped weights are MediaPipe's BlazeFace short-range model (Apache-2.0; model card
``data/weights/blazeface_short.md``), converted once from its .tflite file to safetensors, so neither
mediapipe nor a TFLite runtime is needed. The network sees the whole photo at 128 x 128 pixels
(letterboxed: padded black to a centred square first, so faces keep their shape), so it finds large,
near faces (spanning about an eighth of the photo's long side or more) quickly, and misses small
ones; FaceBoxes (``facegraph.image.faceboxes``) finds those.

The preprocessing, anchors, decoding and weighted NMS follow MediaPipe's face detection graph settings,
and give the boxes of the .tflite model run that way.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegraph.io.weights import load_detector_network
from facegraph.nn.blazeface import ANCHORS_STRIDE8, ANCHORS_STRIDE16, INPUT_SIZE, BlazeFace
from facegraph.types import Detection

BUNDLED_NAME = "blazeface_short.safetensors"
MODEL_NAME = "blazeface-short"  # the "model" entry of the weights file's metadata
# (stride, anchors per cell) of each feature map, in the network's output order; anchors are unit
# size (the regressors give a box's size directly) and sit at their cells' centres.
GRIDS = ((8, ANCHORS_STRIDE8), (16, ANCHORS_STRIDE16))
SCORE_CLIP = 100.0  # logits are clipped to +-this before the sigmoid, as MediaPipe does
NMS_IOU = 0.3  # MediaPipe's weighted NMS blends boxes overlapping the best one by more than this


def bundled_weights() -> Path:
    return Path(str(resources.files("facegraph") / "data" / "weights" / BUNDLED_NAME))


def load_blazeface(weights: str | Path | None = None) -> BlazeFace:
    """The BlazeFace network from a safetensors file (None: the shipped one), in eval mode.

    A missing, damaged or foreign file raises InputError naming it.
    """
    path = bundled_weights() if weights is None else Path(weights)
    return load_detector_network(path, BlazeFace(), MODEL_NAME, "BlazeFace")


def anchor_centres(size: int = INPUT_SIZE) -> np.ndarray:
    """(896, 2) anchor centres [x, y] in the input square's unit frame, in the network's output order:
    the stride-8 grid's cells row by row, a cell's anchors together, then the stride-16 grid's."""
    parts = []
    for stride, per_cell in GRIDS:
        cells = -(-size // stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) / cells
        parts.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(parts)


def letterbox(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, int, int, int]:
    """The (3, size, size) float32 network input of a photo, and the square it was cut from.

    The photo is padded black to a centred square of side ``side`` (``left``, ``top``: where the photo
    starts in it), resized bilinearly to ``size`` and scaled to [-1, 1]. Returns (input, side, left, top).
    """
    height, width = rgb.shape[:2]
    side = max(height, width)
    left, top = (side - width) // 2, (side - height) // 2
    square = np.zeros((side, side, 3), dtype=np.uint8)
    square[top : top + height, left : left + width] = rgb
    small = np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR), dtype=np.float32)
    scaled = small / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1)), side, left, top


def decode(regressors: np.ndarray, anchors: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(A, 16) regressors on (A, 2) unit anchors -> (A, 4) [x0, y0, x1, y1] boxes in the unit square.

    The first four regressors are the box's centre offset and size in input pixels."""
    centre = anchors + regressors[:, :2] / size
    half = regressors[:, 2:4] / size / 2
    return np.concatenate([centre - half, centre + half], axis=1).astype(np.float64)


def face_probabilities(logits: np.ndarray) -> np.ndarray:
    """Sigmoid of the logits clipped to +-``SCORE_CLIP``, in float64."""
    clipped = np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)
    return 1.0 / (1.0 + np.exp(-clipped))


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, max_iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: the best remaining box and every remaining box overlapping it by more
    than ``max_iou`` (intersection over union) become one box, their score-weighted mean, with the
    best one's score. Returns (box, score) pairs, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    merged = []
    while order.size:
        best = order[0]
        low = np.maximum(boxes[best, :2], boxes[order, :2])
        high = np.minimum(boxes[best, 2:], boxes[order, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        union = areas[best] + areas[order] - inter
        overlaps = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        group = order[overlaps > max_iou]
        group = group if group.size else order[:1]  # a zero-area best box overlaps nothing, not even itself
        weights = scores[group] / scores[group].sum()
        merged.append((weights @ boxes[group], float(scores[best])))
        order = order[overlaps <= max_iou]
    return merged


class BlazeFaceDetector:
    """BlazeFace short-range behind ``detect(rgb) -> list[Detection]``, plus ``detect_batch``.

    ``min_score``: the lowest face probability kept (MediaPipe keeps 0.5 and up). Boxes are [x0, y0,
    x1, y1] in the photo's pixel frame, (0, 0) the centre of the top-left pixel, as FaceBoxes' are.
    The six keypoints the network also regresses (eyes, nose, mouth, ears) are not kept.
    """

    def __init__(
        self, min_score: float = 0.5, weights: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> None:
        self.device = torch.device(device)
        # channels-last: CPU convolutions (depthwise ones above all) run about twice as fast
        self.network = load_blazeface(weights).to(self.device, memory_format=torch.channels_last)
        self.min_score = min_score
        self.anchors = anchor_centres()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB photo, best first."""
        return self.detect_batch([rgb])[0]

    def detect_batch(self, photos: list[np.ndarray]) -> list[list[Detection]]:
        """Faces in each photo; all photos go through the network together (each is letterboxed to the
        same input size, whatever its own)."""
        if not photos:
            return []
        prepared = [letterbox(rgb) for rgb in photos]
        batch = torch.from_numpy(np.stack([inputs for inputs, *_ in prepared]))
        batch = batch.to(self.device, memory_format=torch.channels_last)
        with torch.inference_mode():
            regressors, logits = self.network(batch)
        found = []
        for (_, side, left, top), raw, logit in zip(
            prepared, regressors.cpu().numpy(), logits.cpu().numpy(), strict=True
        ):
            scores = face_probabilities(logit)
            keep = np.flatnonzero(scores >= self.min_score)
            merged = weighted_nms(decode(raw[keep], self.anchors[keep]), scores[keep], NMS_IOU)
            # unit square -> pixel edges in the square -> the photo's pixel-centre frame
            shift = np.array([left, top, left, top], dtype=np.float64) + 0.5
            found.append([Detection(box * side - shift, score) for box, score in merged])
        return found
