"""Annotated photos: landmarks coloured by facial region, boxes and head-pose axes."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from facegraph.geometry.pose import pose_to_matrix
from facegraph.types import Face, HeadPose

# iBUG 68 regions and their colours (RGB).
IBUG68_REGIONS: dict[str, tuple[range, tuple[int, int, int]]] = {
    "jaw": (range(0, 17), (255, 215, 0)),
    "eyebrows": (range(17, 27), (255, 127, 80)),
    "nose": (range(27, 36), (0, 200, 255)),
    "eyes": (range(36, 48), (50, 255, 50)),
    "mouth": (range(48, 68), (255, 60, 160)),
}
AXIS_COLOURS = ((230, 40, 40), (40, 200, 40), (40, 90, 255))  # x, y, z


def _radius(image: Image.Image, box: np.ndarray | None) -> float:
    """Marker radius: about 1% of the face's width, or of the photo's size without a box."""
    reference = min(image.size) / 2 if box is None else float(box[2] - box[0])
    return max(0.8, reference / 110)


def annotate(
    rgb: np.ndarray,
    points: np.ndarray | None = None,
    box: np.ndarray | None = None,
    pose: HeadPose | None = None,
    pose_origin: np.ndarray | None = None,
    extra_points: np.ndarray | None = None,
) -> np.ndarray:
    """Draw on a copy of an (H, W, 3) photo: 68 points by region (others in one colour), a box,
    the head-pose axes at ``pose_origin`` (x red, y green, z blue; y drawn upward), extra points as rings.
    """
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).copy()
    draw = ImageDraw.Draw(image)
    r = _radius(image, box)
    width = max(1, int(round(r / 1.5)))
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=(255, 255, 255), width=width)
    if points is not None:
        points = np.asarray(points, dtype=np.float64)[:, :2]
        colours = np.tile(np.array([0, 255, 255]), (len(points), 1))
        if len(points) == 68:
            for indices, colour in IBUG68_REGIONS.values():
                colours[list(indices)] = colour
        for (x, y), colour in zip(points, colours, strict=True):
            if np.isfinite(x) and np.isfinite(y):
                draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in colour))
    if extra_points is not None:
        for x, y in np.asarray(extra_points, dtype=np.float64)[:, :2]:
            draw.ellipse(
                [x - 2.5 * r, y - 2.5 * r, x + 2.5 * r, y + 2.5 * r], outline=(255, 255, 255), width=width
            )
    if pose is not None and pose_origin is not None:
        length = 0.15 * min(image.size) if box is None else 0.35 * (box[2] - box[0])
        rotation = pose_to_matrix(pose)
        ox, oy = np.asarray(pose_origin, dtype=np.float64)[:2]
        for axis, colour in zip(rotation.T, AXIS_COLOURS, strict=True):
            # camera frame is y-up; photo rows grow downward
            draw.line([ox, oy, ox + length * axis[0], oy - length * axis[1]], fill=colour, width=2 * width)
    return np.asarray(image)


def annotate_faces(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Draw every face's box, 2D landmarks and pose axes (at the landmarks' centre) on a copy of a photo."""
    drawn = rgb
    for face in faces:
        points = face.landmarks_2d.points
        drawn = annotate(drawn, points, face.box, face.pose, points.mean(axis=0))
    return np.array(drawn, copy=True)
