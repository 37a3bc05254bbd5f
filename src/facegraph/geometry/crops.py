"""Square face crops: the boxes 3DDFA-style networks expect, cutting them out, and mapping back.

A crop box is [x0, y0, x1, y1] in photo pixels. Parts of a box outside the photo are filled with
black, as the networks were trained.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from facegraph.errors import InputError

LANDMARK_BOX_SCALE = np.sqrt(2.0)
# Where pixel column j's centre lies in 3DDFA's crop frame (j + CROP_PIXEL_OFFSET): taken from the
# 3DDFA_V2 peer, whose landmarks on a crop and on its mirror image add up in x to size - 1 + 2 * offset
# on the training faces. A crop's mirror image then maps x to ``size - 1 + 2 * offset - x``.
CROP_PIXEL_OFFSET = 0.8
DETECTOR_BOX_SCALE = 1.58
DETECTOR_BOX_SHIFT = 0.14


def box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """3DDFA's crop box around landmarks: a square of sqrt(2) times their longest side, same centre.

    Rounded to whole pixels, as AFLW2000-3D's published crop boxes are.
    """
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    lo, hi = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
    centre = (lo + hi) / 2
    half = LANDMARK_BOX_SCALE * (hi - lo).max() / 2
    return np.round(np.concatenate([centre - half, centre + half]))


def box_from_detection(box: np.ndarray) -> np.ndarray:
    """3DDFA_V2's crop box from a face detector's box: 1.58 times its mean side, shifted down 0.14."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    side = (x1 - x0 + y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + DETECTOR_BOX_SHIFT * side
    half = int(side * DETECTOR_BOX_SCALE) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut ``box`` out of an (H, W, 3) uint8 photo (zero outside it) and resize it to size x size."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {list(box)}")
    canvas = np.zeros((y1 - y0, x1 - x0, image.shape[2]), dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))


def crop_to_image(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Map (..., P, 3) points of 3DDFA's y-up crop frame to photo pixels (x right, y down).

    3DDFA's benchmark convention, which its published AFLW2000-3D figures use: y flips as
    ``size + 1 - y`` (Matlab's 1-based rows), x keeps its value, then both scale by the box over the crop
    size and shift by the box's corner. (3DDFA_V2's demo code takes one more pixel off x and y, which
    moves the peer's AFLW2000-3D NME a little.) z scales by the mean scale, shifted so its minimum
    is 0: it is depth toward the viewer, up to a constant.
    """
    points = np.array(points, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    scale_x = (box[..., 2] - box[..., 0]) / size
    scale_y = (box[..., 3] - box[..., 1]) / size
    out = np.empty_like(points)
    out[..., 0] = points[..., 0] * scale_x[..., None] + box[..., 0, None]
    out[..., 1] = (size + 1 - points[..., 1]) * scale_y[..., None] + box[..., 1, None]
    z = points[..., 2] * ((scale_x + scale_y) / 2)[..., None]
    out[..., 2] = z - z.min(axis=-1, keepdims=True)
    return out


def camera_to_image(camera: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The (..., 3, 4) camera that takes model points straight to photo pixels, from a camera of the
    crop frame: ``camera_to_image(P) @ [X, 1]`` is ``crop_to_image`` of ``P @ [X, 1]`` in x and y; z keeps
    ``crop_to_image``'s scale without its shift (depth toward the viewer, up to a constant)."""
    camera = np.array(camera, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    scale_x = (box[..., 2] - box[..., 0]) / size
    scale_y = (box[..., 3] - box[..., 1]) / size
    rows = np.stack([scale_x, -scale_y, (scale_x + scale_y) / 2], axis=-1)
    out = camera * rows[..., :, None]
    out[..., 0, 3] += box[..., 0]
    out[..., 1, 3] += (size + 1) * scale_y + box[..., 1]
    return out


def crop_mirror_x(size: int) -> float:
    """The x at which mirroring an (size x size) crop maps its frame's x: x -> crop_mirror_x(size) - x."""
    return size - 1 + 2 * CROP_PIXEL_OFFSET


def parse_box(text: str) -> np.ndarray:
    """A face box given as text, ``x0,y0,x1,y1`` in pixels."""
    try:
        box = np.array([float(v) for v in text.split(",")])
    except ValueError:
        box = np.array([])
    if box.shape != (4,) or not np.isfinite(box).all():
        raise InputError(f"--box expects four numbers x0,y0,x1,y1, got {text!r}")
    return box
