"""FaceBoxes face detection on photos: preprocessing, prior boxes, decoding, NMS, photo-pixel boxes.

The shipped weights are 3DDFA_V2's FaceBoxesProd (MIT, trained on WIDER FACE; model card
``data/weights/faceboxes.md``), converted once to safetensors, so nothing is downloaded. Unlike dlib's
HOG model it was trained on faces in every pose, so it also finds profile faces.

Photos larger than ``MAX_SIDE`` are searched downscaled: the network's cost grows with the photo's
area while its smallest anchor is 32 pixels, so a bounded size keeps CPU time per photo bounded and
still finds any face at least a thirtieth of the photo's long side (3DDFA_V2 bounds photos to
720 x 1080 for the same reason). Faces below about ``NATIVE_SMALLEST_FACE`` pixels are often missed:
for smaller ones the detector searches the photo a second time, enlarged so that such faces reach that
size (up to ``MAX_ENLARGED_SIDE``), and keeps the small faces found there. By default it does so only
where small faces are likely: when the first search found a sure face less than ``SMALL_FACE_CUE``
pixels across (a group photo, a crowd), it searches again for faces down to ``AUTO_SMALLEST_FACE``
pixels; a portrait costs one search.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegraph.io.weights import load_detector_network
from facegraph.nn.faceboxes import FaceBoxes
from facegraph.types import Detection

BUNDLED_NAME = "faceboxes.safetensors"
MODEL_NAME = "faceboxes"  # the "model" entry of the weights file's metadata
MEAN_BGR = (104.0, 117.0, 123.0)  # the network takes BGR in 0..255 less this mean, unscaled
VARIANCES = (0.1, 0.2)  # centre and log-size offsets are predicted in these units
# (stride, ((anchor size, density), ...)) per feature map; density d tiles d x d anchors per cell.
LEVELS = ((32, ((32, 4), (64, 2), (128, 1))), (64, ((256, 1),)), (128, ((512, 1),)))
MAX_SIDE = 1024
NMS_IOU = 0.3  # 3DDFA_V2's setting: overlapping boxes of one face are merged quite eagerly
MAX_CANDIDATES = 5000  # best-scoring boxes that enter NMS
NATIVE_SMALLEST_FACE = 48.0  # pixels: smaller faces are searched in an enlarged photo
MAX_ENLARGED_SIDE = 2048  # the enlarged search's bound on the photo's long side
# A face found below this size (pixels as the network saw it: twice the smallest it finds reliably), this
# sure, means the photo shows faces at a scale where smaller ones are likely too.
SMALL_FACE_CUE = 2 * NATIVE_SMALLEST_FACE
CUE_SCORE = 0.5
AUTO_SMALLEST_FACE = 20.0  # pixels: how small the automatic second search looks


def bundled_weights() -> Path:
    return Path(str(resources.files("facegraph") / "data" / "weights" / BUNDLED_NAME))


def load_faceboxes(weights: str | Path | None = None) -> FaceBoxes:
    """The FaceBoxes network from a safetensors file (None: the shipped one), in eval mode.

    A missing, damaged or foreign file raises InputError naming it.
    """
    path = bundled_weights() if weights is None else Path(weights)
    return load_detector_network(path, FaceBoxes(), MODEL_NAME, "FaceBoxes")


def prior_boxes(height: int, width: int) -> np.ndarray:
    """(P, 4) anchors [cx, cy, w, h] in input pixels, in the network's output order.

    Anchors of density 1 sit at their cell's centre; the densified ones (32 and 64 px) tile the cell
    from its top-left corner at steps of 1/density, rows outer, as the released weights were trained.
    """
    parts = []
    for stride, anchors in LEVELS:
        cell = []  # per anchor: x and y offset in cells, size in cells
        for size, density in anchors:
            offsets = np.arange(density) / density if density > 1 else np.array([0.5])
            dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
            cell.append(np.stack([dx.ravel(), dy.ravel(), np.full(dx.size, size / stride)], axis=1))
        per_cell = np.concatenate(cell)
        rows, cols = np.meshgrid(
            np.arange(math.ceil(height / stride)), np.arange(math.ceil(width / stride)), indexing="ij"
        )
        cx = (cols.reshape(-1, 1) + per_cell[:, 0]) * stride
        cy = (rows.reshape(-1, 1) + per_cell[:, 1]) * stride
        side = np.broadcast_to(per_cell[:, 2] * stride, cx.shape)
        parts.append(np.stack([cx, cy, side, side], axis=-1).reshape(-1, 4))
    return np.concatenate(parts)


def decode(offsets: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """(P, 4) network offsets on (P, 4) [cx, cy, w, h] priors -> (P, 4) [x0, y0, x1, y1] boxes."""
    centre = priors[:, :2] + offsets[:, :2] * VARIANCES[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(offsets[:, 2:] * VARIANCES[1])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, max_iou: float) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best first: each box is dropped
    when it overlaps a better kept one by more than ``max_iou`` (intersection over union)."""
    order = np.argsort(-scores, kind="stable")
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        low = np.maximum(boxes[best, :2], boxes[rest, :2])
        high = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(high - low, 0, None), axis=1)
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= max_iou]
    return np.array(keep, dtype=np.int64)


def detection_scale(height: int, width: int, max_side: int = MAX_SIDE) -> float:
    """The factor a photo is resized by before the network sees it (never above 1)."""
    return min(1.0, max_side / max(height, width))


class FaceBoxesDetector:
    """FaceBoxes behind ``detect(rgb) -> list[Detection]``, plus ``detect_batch`` for many photos.

    ``min_score``: the lowest face probability kept (3DDFA_V2 keeps 0.5 and up). Boxes are [x0, y0,
    x1, y1] in the photo's pixel frame, (0, 0) the centre of the top-left pixel, as landmarks are.
    ``smallest_face`` (pixels): search for faces down to this size, with a second, enlarged search when
    it is below ``NATIVE_SMALLEST_FACE``; None decides per photo (see the module's docstring).
    """

    def __init__(
        self,
        min_score: float = 0.5,
        weights: str | Path | None = None,
        device: str | torch.device = "cpu",
        max_side: int = MAX_SIDE,
        smallest_face: float | None = None,
    ) -> None:
        self.device = torch.device(device)
        # channels-last: CPU convolutions run about twice as fast
        self.network = load_faceboxes(weights).to(self.device, memory_format=torch.channels_last)
        self.min_score = min_score
        self.max_side = max_side
        self.smallest_face = smallest_face

    def enlargement(self, height: int, width: int) -> float:
        """The factor of the second, enlarged search (1: none), for faces down to ``smallest_face``
        (``AUTO_SMALLEST_FACE`` when it is None)."""
        smallest = AUTO_SMALLEST_FACE if self.smallest_face is None else self.smallest_face
        if not 0 < smallest < NATIVE_SMALLEST_FACE:
            return 1.0
        wanted = NATIVE_SMALLEST_FACE / smallest
        return max(1.0, min(wanted, MAX_ENLARGED_SIDE / max(height, width)))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB photo, best first."""
        return self.detect_batch([rgb])[0]

    def detect_batch(self, photos: list[np.ndarray]) -> list[list[Detection]]:
        """Faces in each photo; photos of the same size go through the network together."""
        found: list[list[Detection]] = [[] for _ in photos]
        sizes: dict[tuple[int, int], list[int]] = {}
        for index, rgb in enumerate(photos):
            sizes.setdefault(tuple(rgb.shape[:2]), []).append(index)
        for (height, width), indices in sizes.items():
            scale = detection_scale(height, width, self.max_side)
            for i, detections in zip(indices, self._search([photos[i] for i in indices], scale), strict=True):
                found[i] = detections
            enlargement = self.enlargement(height, width)
            again = [i for i in indices if self.smallest_face is not None or _small_face_cue(found[i], scale)]
            if enlargement > 1.0 and again:
                # the enlarged search adds the faces the first one may miss (a little overlap)
                largest = NATIVE_SMALLEST_FACE * 4 / 3 / scale
                small = self._search([photos[i] for i in again], enlargement, largest)
                for i, extra in zip(again, small, strict=True):
                    found[i] = _merged(found[i] + extra)
        return found

    def _search(
        self, photos: list[np.ndarray], scale: float, largest: float = np.inf
    ) -> list[list[Detection]]:
        """Detections in same-sized photos seen at ``scale``, those with a mean side up to ``largest``."""
        height, width = photos[0].shape[:2]
        batch = np.stack([self._prepare(rgb, scale) for rgb in photos])
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.device, memory_format=torch.channels_last)
            offsets, scores = self.network(inputs)
        priors = prior_boxes(*batch.shape[2:])
        # per-axis factors, exact after the rounding of the resized size
        factors = np.array([batch.shape[3] / width, batch.shape[2] / height] * 2)
        found = []
        for loc, score in zip(offsets.cpu().numpy(), scores.cpu().numpy(), strict=True):
            detections = self._select(decode(loc, priors), score, factors)
            found.append([d for d in detections if (d.box[2:] - d.box[:2]).mean() <= largest])
        return found

    @staticmethod
    def _prepare(rgb: np.ndarray, scale: float) -> np.ndarray:
        """(3, h, w) float32 network input: resized, BGR, less the training mean."""
        if scale != 1.0:
            size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        planes = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
        for channel, mean in enumerate(MEAN_BGR):  # channel by channel: no interleaved float copy
            np.subtract(rgb[:, :, 2 - channel], np.float32(mean), out=planes[channel], dtype=np.float32)
        return planes

    def _select(self, boxes: np.ndarray, scores: np.ndarray, factors: np.ndarray) -> list[Detection]:
        """Boxes scoring at least ``min_score`` after NMS, in photo pixels, best first."""
        candidates = np.flatnonzero(scores >= self.min_score)
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")[:MAX_CANDIDATES]]
        kept = candidates[nms(boxes[candidates], scores[candidates], NMS_IOU)]
        # edges in the resized input -> edges in the photo -> the pixel-centre frame
        photo_boxes = boxes[kept].astype(np.float64) / factors - 0.5
        return [Detection(box, float(scores[k])) for box, k in zip(photo_boxes, kept, strict=True)]


def _small_face_cue(detections: list[Detection], scale: float) -> bool:
    """Whether a search at ``scale`` found a sure face small enough to expect smaller ones."""
    return any(
        d.score >= CUE_SCORE and (d.box[2:] - d.box[:2]).mean() * scale < SMALL_FACE_CUE for d in detections
    )


def _merged(detections: list[Detection]) -> list[Detection]:
    """Detections of two searches with each face's best box only (NMS), best first."""
    if not detections:
        return []
    boxes = np.stack([d.box for d in detections])
    scores = np.array([d.score for d in detections])
    return [detections[k] for k in nms(boxes, scores, NMS_IOU)]
