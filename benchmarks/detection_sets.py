"""Photo sets for the detection benchmark, each built from photos read where they lie (never copied).

- ``crowd_pictures``: 300-W's training faces cut out with some context, shrunk to 20-120 pixels and
  scattered over blurred scenery, several dozen to a picture, with their known places and sizes.
- ``moving_portrait``: 640 x 480 frames of single-face 300-W photos under a smooth camera path (pan,
  zoom, roll), as a handheld clip would show them.
- ``face_free_photos``: scikit-image's sample photos without a person (read from its wheel, which is
  downloaded with pip into a cache folder, never installed) and crops of 300-W photos away from the
  annotated face.

A known face is found when a detection holds the centre of its 68 points and the detection's mean side
is 0.4-3 times the points' longest side (so that one box cannot claim a whole group of small faces).
"""

from __future__ import annotations

import glob
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facegraph.datasets.faces68 import Faces68
from facegraph.io.images import read_image
from facegraph.types import Detection

CACHE = Path.home() / ".cache" / "facegraph-dev" / "peers" / "scikit-image"
SCIKIT_IMAGE = "scikit-image==0.26.0"
# scikit-image's sample photos that show no person (astronaut and camera do)
FACE_FREE_SAMPLES = (
    "brick.png", "cell.png", "chelsea.png", "clock_motion.png", "coffee.png", "coins.png", "color.png",
    "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png", "logo.png",
    "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png", "page.png",
    "phantom.png", "retina.jpg", "rocket.jpg", "text.png",
)  # fmt: skip
SIZE_RANGE = (0.4, 3.0)
CROWD_CANVAS = (960, 720)
CROWD_SIZES = (20.0, 120.0)  # face sizes (longest side of the 68 points), log-uniform
BACKGROUND_SIDE = 320  # face-free crops are enlarged to this, as a photo of that scenery
CONTEXT = 2.0  # a pasted tile is this many times the face's size


@dataclass(frozen=True)
class Labelled:
    """A picture and its known faces: (K, 2) centres of their points and (K,) sizes (longest side)."""

    rgb: np.ndarray
    centres: np.ndarray
    sizes: np.ndarray


def found_faces(detections: list[Detection], centres: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(K,) bool: which known faces a detection holds (centre inside, mean side in ``SIZE_RANGE``)."""
    found = np.zeros(len(centres), dtype=bool)
    for d in detections:
        side = (d.box[2] - d.box[0] + d.box[3] - d.box[1]) / 2
        inside = ((d.box[:2] <= centres) & (centres <= d.box[2:])).all(axis=1)
        fits = (side >= SIZE_RANGE[0] * sizes) & (side <= SIZE_RANGE[1] * sizes)
        found |= inside & fits
    return found


def _extent(points: np.ndarray) -> tuple[np.ndarray, float]:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return (lo + hi) / 2, float((hi - lo).max())


def _scenery(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A blurred, enlarged view of a photo: a plausible background without sharp faces."""
    w, h = size
    small = Image.fromarray(photo).resize((w // 24, h // 24), Image.BILINEAR)
    return np.array(small.resize((w, h), Image.BICUBIC))


def crowd_pictures(faces: Faces68, seed: int = 0) -> list[Labelled]:
    """Every face of ``faces`` once, shrunk and placed without overlap on crowded scenery pictures."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(faces))
    pictures, start = [], 0
    while start < len(order):
        canvas = _scenery(read_image(faces.photos[order[(start + 1) % len(order)]]), CROWD_CANVAS)
        taken = np.zeros(canvas.shape[:2], dtype=bool)
        centres, sizes = [], []
        for index in order[start:]:
            size = float(np.exp(rng.uniform(*np.log(CROWD_SIZES))))
            placed = _paste(canvas, taken, faces, int(index), size, rng)
            if placed is None:
                break
            centres.append(placed)
            sizes.append(size)
            start += 1
        pictures.append(Labelled(canvas, np.array(centres), np.array(sizes)))
    return pictures


def _paste(
    canvas: np.ndarray, taken: np.ndarray, faces: Faces68, index: int, size: float, rng: np.random.Generator
) -> np.ndarray | None:
    """Paste face ``index`` at ``size`` pixels in a free spot (200 tries); its centre there, or None."""
    centre, extent = _extent(faces.landmarks[index])
    tile = int(round(CONTEXT * size))
    h, w = taken.shape
    for _ in range(200):
        x, y = int(rng.integers(0, w - tile)), int(rng.integers(0, h - tile))
        if taken[y : y + tile, x : x + tile].any():
            continue
        lo = np.round(centre - CONTEXT * extent / 2).astype(int)
        side = int(round(CONTEXT * extent))
        # PIL's crop fills what lies off the photo with black; the face's centre is the crop's
        cut = Image.fromarray(read_image(faces.photos[index])).crop((*lo, *(lo + side)))
        canvas[y : y + tile, x : x + tile] = np.asarray(cut.resize((tile, tile), Image.BILINEAR))
        taken[y : y + tile, x : x + tile] = True
        return np.array([x + tile / 2 - 0.5, y + tile / 2 - 0.5])
    return None


def portrait_indices(faces: Faces68, count: int, min_size: float = 120.0) -> list[int]:
    """``count`` faces spread over ``faces`` that are alone in their photo and at least ``min_size``."""
    photos = [str(p) for p in faces.photos]
    stems = [p.rsplit("_", 1)[0] for p in photos]
    alone = [i for i in range(len(faces)) if stems.count(stems[i]) == 1]
    large = [i for i in alone if _extent(faces.landmarks[i])[1] >= min_size]
    return [large[k] for k in np.linspace(0, len(large) - 1, count).round().astype(int)]


def moving_portrait(
    faces: Faces68, index: int, frames: int, size: tuple[int, int] = (640, 480)
) -> list[Labelled]:
    """``frames`` frames of face ``index``'s photo seen by a camera that pans across the face, zooms
    (the face from about a quarter to half the frame's height) and rolls up to 15 degrees each way."""
    rgb = Image.fromarray(read_image(faces.photos[index]))
    centre, extent = _extent(faces.landmarks[index])
    w, h = size
    clip = []
    for t in np.linspace(0.0, 1.0, frames):
        zoom = h * (0.25 + 0.25 * (0.5 - 0.5 * np.cos(2 * np.pi * t))) / extent
        roll = np.deg2rad(15.0 * np.sin(2 * np.pi * t))
        target = np.array([w * (0.3 + 0.4 * t), h * (0.45 + 0.1 * np.sin(4 * np.pi * t))])
        # frame = target + zoom * R(roll) (photo - centre); PIL wants frame -> photo
        c, s = np.cos(roll), np.sin(roll)
        inverse = np.array([[c, s], [-s, c]]) / zoom
        offset = centre - inverse @ target
        matrix = (*inverse[0], offset[0], *inverse[1], offset[1])
        frame = np.asarray(rgb.transform(size, Image.AFFINE, matrix, Image.BILINEAR))
        clip.append(Labelled(frame, target[None], np.array([zoom * extent])))
    return clip


def face_free_photos(faces: Faces68, crops: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """scikit-image's sample photos without people, and ``crops`` crops of 300-W photos that keep clear
    of the annotated face; other people may still be in those photos, so their false detections are an
    upper bound."""
    samples = []
    with zipfile.ZipFile(scikit_image_wheel()) as wheel:
        for name in FACE_FREE_SAMPLES:
            with wheel.open(f"skimage/data/{name}") as handle:
                samples.append(np.asarray(Image.open(handle).convert("RGB")))
    rng = np.random.default_rng(seed)
    backgrounds: list[np.ndarray] = []
    for index in rng.permutation(len(faces)):
        if len(backgrounds) == crops:
            break
        crop = _clear_crop(read_image(faces.photos[index]), faces.landmarks[index], rng)
        if crop is not None:
            backgrounds.append(crop)
    return {"scikit-image samples": samples, "300-W backgrounds": backgrounds}


def _clear_crop(rgb: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A random crop (enlarged to ``BACKGROUND_SIDE``) of at least 64 pixels a side that misses the
    face's points' box grown by 30 %, if one fits (300-W's photos here are cut at 2.5 times that box)."""
    centre, extent = _extent(points)
    face = np.concatenate([centre - 0.65 * extent, centre + 0.65 * extent])
    h, w = rgb.shape[:2]
    for _ in range(50):
        side = int(rng.integers(64, max(65, min(h, w) // 3)))
        if side >= min(h, w):
            return None
        x, y = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
        if x + side < face[0] or x > face[2] or y + side < face[1] or y > face[3]:
            cut = Image.fromarray(rgb[y : y + side, x : x + side])
            return np.asarray(cut.resize((BACKGROUND_SIDE, BACKGROUND_SIDE), Image.BICUBIC))
    return None


def scikit_image_wheel() -> Path:
    """scikit-image's wheel, downloaded once with pip into the cache (its sample photos are in it)."""
    wheels = glob.glob(str(CACHE / "scikit_image-*.whl"))
    if not wheels:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
             SCIKIT_IMAGE, "-d", str(CACHE)],
            check=True,
        )  # fmt: skip
        wheels = glob.glob(str(CACHE / "scikit_image-*.whl"))
    return Path(wheels[0])
