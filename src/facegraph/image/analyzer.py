"""From a photo to faces: detection, 3DDFA-style crops, one batched network call, results in pixels.

Points come back in the photo's pixel frame (x right, y down, (0, 0) the centre of the top-left
pixel). The networks' benchmark frame is Matlab's 1-based one (AFLW2000-3D's ground truth), so one
pixel is taken off x and y here, as 3DDFA_V2's own demo does. ``points_3d`` share x and y with
``points_2d``; z is depth toward the viewer in the same pixel scale, 0 at the face's farthest point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facegraph.devices import pick_device
from facegraph.errors import InputError
from facegraph.geometry.crops import (
    box_from_detection,
    box_from_landmarks,
    camera_to_image,
    crop,
    crop_to_image,
)
from facegraph.image.crop_regressor import CropPrediction, CropRegressor
from facegraph.image.detectors import DEFAULT_DETECTOR, Detection, FaceDetector, make_detector
from facegraph.io.images import read_image
from facegraph.types import Face, HeadPose, Landmarks

BENCHMARK_TO_PIXEL_CENTRES = -1.0
MIN_SIDE = 24  # pixels: below this no face can be found or cropped usefully
DETECTION_MAX_SIDE = 1600  # larger photos are searched at this size, then boxes scale back
# Times a face is cut again around the landmarks just predicted (3DDFA's crop rule, the one the networks
# were trained on) before the final prediction: a detector's box frames a face differently. Chosen on
# 300-W's training photos with FaceBoxes boxes (benchmarks/detection.py, crop-refinement section).
RECROP_PASSES = 2


@dataclass(frozen=True)
class FaceSelection:
    """Which detected faces are analysed: those at least ``min_side`` pixels on their box's shorter side,
    best first by ``order`` ("score", the detector's, or "size", the box's area), at most ``max_faces``."""

    order: str = "score"
    max_faces: int | None = None
    min_side: float = 0.0

    def __post_init__(self) -> None:
        if self.order not in ("score", "size"):
            raise InputError(f"unknown order {self.order!r}: score or size")
        if self.max_faces is not None and self.max_faces < 1:
            raise InputError(f"--max-faces must be at least 1, got {self.max_faces}")

    def apply(self, detections: list[Detection]) -> list[Detection]:
        sides = [min(d.box[2] - d.box[0], d.box[3] - d.box[1]) for d in detections]
        kept = [d for d, side in zip(detections, sides, strict=True) if side >= self.min_side]
        if self.order == "size":
            kept.sort(key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        else:
            kept.sort(key=lambda d: -d.score)
        return kept[: self.max_faces]


def check_photo(rgb: np.ndarray, source: str | Path | None = None) -> None:
    """InputError when a photo is too small to hold a face."""
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"the photo is too small ({w}x{h} pixels; at least {MIN_SIDE} on each side)", source)


def detect_faces(detector: FaceDetector, rgb: np.ndarray) -> list[Detection]:
    """Detections in photo pixels; photos larger than DETECTION_MAX_SIDE are searched downscaled."""
    scale = min(1.0, DETECTION_MAX_SIDE / max(rgb.shape[:2]))
    if scale == 1.0:
        return detector.detect(rgb)
    from PIL import Image

    h, w = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
    return [Detection(d.box / scale, d.score) for d in detector.detect(small)]


MIN_BOX_INSIDE = 0.5  # a user's box with less of its area on the photo is refused, not guessed from


def check_box(box: np.ndarray, rgb: np.ndarray, source: str | Path | None = None) -> np.ndarray:
    """A user's [x0, y0, x1, y1] box as floats, clipped to the photo; InputError when it is empty or
    when less than half of it lies on the photo (a face box mostly off the photo is a mistake, and
    cropping it would cost memory in proportion to its size)."""
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    h, w = rgb.shape[:2]
    if box.shape != (4,) or not np.isfinite(box).all():
        raise InputError("a box is four finite numbers x0,y0,x1,y1", source)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        raise InputError(f"the box {box.tolist()} is empty (x1 must exceed x0 and y1 exceed y0)", source)
    clipped = np.clip(box, 0.0, [w, h, w, h])
    inside = np.prod(np.maximum(clipped[2:] - clipped[:2], 0.0)) / np.prod(box[2:] - box[:2])
    if inside < MIN_BOX_INSIDE:
        raise InputError(
            f"the box {box.tolist()} lies {'mostly ' if inside > 0 else ''}outside the {w}x{h} photo"
            f" ({inside:.0%} of it on the photo; at least {MIN_BOX_INSIDE:.0%} is needed)",
            source,
        )
    return clipped


class FaceAnalyzer:
    """A photo model and a detector: ``analyze(photo)`` gives every face's landmarks, pose and mesh.

    ``model`` is a registered photo model's name (loaded with ``weights`` and ``bfm``) or a model. Either
    way it runs on ``facegraph.devices.pick_device(device)``: CUDA when there is a GPU, else the CPU.
    """

    def __init__(
        self,
        model: str | CropRegressor = "synergynet",
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        weights: str | Path | None = None,
        bfm: str | Path | None = None,
        device: str | torch.device | None = None,
        min_score: float | None = None,
        selection: FaceSelection | None = None,
        recrop_passes: int = RECROP_PASSES,
    ) -> None:
        if isinstance(model, str):
            from facegraph.registry import load_model

            self.model = load_model(model, weights, bfm, device, kind="image")
        else:
            self.model = model.to(pick_device(device))
        self._detector = detector
        self.min_score = min_score
        self.selection = selection or FaceSelection()
        self.recrop_passes = recrop_passes

    @property
    def detector(self) -> FaceDetector:
        if isinstance(self._detector, str):
            self._detector = make_detector(self._detector, self.min_score, self.selection.min_side or None)
        return self._detector

    def check_mesh(self) -> None:
        """InputError unless the model's morphable model can decode the dense face."""
        if getattr(self.model, "dimensions", 3) == 2:
            raise InputError("--mesh needs a 3DMM model such as synergynet; this one gives 2D landmarks only")
        if self.model.morphable is None or not self.model.morphable.has_dense:
            raise InputError(
                "a dense mesh needs the BFM's dense bases: run `facegraph setup bfm SOURCE` once"
                " (or pass --bfm DIR)"
            )

    def analyze(
        self, image: np.ndarray | str | Path, boxes: np.ndarray | None = None, mesh: bool = False
    ) -> list[Face]:
        """Faces in a photo (a path or an (H, W, 3) uint8 RGB array), best detection first.

        ``boxes`` (K, 4) skips detection: each is a face box in photo pixels (as a detector gives).
        ``mesh`` also decodes the dense face (needs the BFM's dense bases).
        """
        if mesh:
            self.check_mesh()
        source = image if isinstance(image, str | Path) else None
        rgb = read_image(image) if source is not None else np.asarray(image)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
        check_photo(rgb, source)
        if boxes is None:
            detections = self.selection.apply(detect_faces(self.detector, rgb))
        else:
            boxes = np.asarray(boxes, dtype=np.float64)
            if boxes.size == 0 or boxes.size % 4:
                raise InputError(
                    f"boxes must be (K, 4) [x0, y0, x1, y1] rows, got shape {boxes.shape}", source
                )
            detections = [Detection(check_box(b, rgb, source), 1.0) for b in boxes.reshape(-1, 4)]
        if not detections:
            return []
        crop_boxes = np.stack([box_from_detection(d.box) for d in detections])
        crop_boxes, prediction = predict_recropped(
            self.model, lambda boxes: _cut(rgb, boxes, self.model.input_size), crop_boxes, self.recrop_passes
        )
        vertices = self._dense(prediction.params, crop_boxes) if mesh else None
        cameras = None
        if prediction.params is not None:
            cameras = camera_to_image(
                prediction.params[:, :12].reshape(-1, 3, 4), crop_boxes, self.model.input_size
            )
            cameras[:, :2, 3] += BENCHMARK_TO_PIXEL_CENTRES
        three_d = getattr(self.model, "dimensions", 3) == 3
        faces = []
        for i, detection in enumerate(detections):
            points = prediction.landmarks[i].copy()
            points[:, :2] += BENCHMARK_TO_PIXEL_CENTRES
            yaw, pitch, roll = prediction.pose[i]
            face = Face(
                box=detection.box,
                score=detection.score,
                landmarks_2d=Landmarks(points[:, :2]),
                landmarks_3d=Landmarks(points) if three_d else None,
                pose=HeadPose(float(yaw), float(pitch), float(roll)),
                extra={"crop_box": crop_boxes[i]},
            )
            if cameras is not None:
                face.extra.update(params=prediction.params[i], camera=cameras[i])
            if vertices is not None:
                face.mesh_vertices, face.mesh_faces = vertices[i], self.model.morphable.triangles
            faces.append(face)
        return faces

    def face_crops(self, image: np.ndarray | str | Path) -> np.ndarray:
        """The (K, S, S, 3) crops the model would see of the faces detected in a photo (K may be 0)."""
        source = image if isinstance(image, str | Path) else None
        rgb = read_image(image) if source is not None else np.asarray(image)
        check_photo(rgb, source)
        detections = self.selection.apply(detect_faces(self.detector, rgb))
        size = self.model.input_size
        if not detections:
            return np.empty((0, size, size, 3), np.uint8)
        boxes = np.stack([box_from_detection(d.box) for d in detections])
        boxes, _ = predict_recropped(self.model, lambda b: _cut(rgb, b, size), boxes, self.recrop_passes)
        return _cut(rgb, boxes, size)

    @torch.inference_mode()
    def _dense(self, params: np.ndarray, crop_boxes: np.ndarray) -> np.ndarray:
        morphable = self.model.morphable
        dense = morphable.vertices(torch.as_tensor(params, dtype=torch.float32, device=morphable.mean.device))
        vertices = crop_to_image(dense.cpu().numpy(), crop_boxes, self.model.input_size)
        vertices[..., :2] += BENCHMARK_TO_PIXEL_CENTRES
        return vertices


def _cut(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(K, size, size, 3) crops of a photo at (K, 4) crop boxes."""
    return np.stack([crop(rgb, box, size) for box in boxes])


def predict_recropped(
    model: CropRegressor,
    cut: Callable[[np.ndarray], np.ndarray],
    boxes: np.ndarray,
    passes: int = RECROP_PASSES,
) -> tuple[np.ndarray, CropPrediction]:
    """The final crop boxes and prediction: predicted at ``boxes`` (K, 4), then ``passes`` times again
    at the crop box of the landmarks just predicted. ``cut(boxes)`` gives the crops at boxes."""
    prediction = model.predict(cut(boxes), boxes)
    for _ in range(passes):
        boxes = np.stack([box_from_landmarks(points) for points in prediction.landmarks])
        prediction = model.predict(cut(boxes), boxes)
    return boxes, prediction


_DEFAULT: FaceAnalyzer | None = None


def analyze(image: np.ndarray | str | Path, boxes: np.ndarray | None = None) -> list[Face]:
    """Faces in a photo with the shipped SynergyNet and the default detector (loaded once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FaceAnalyzer()
    return _DEFAULT.analyze(image, boxes)


def face_to_dict(face: Face) -> dict:
    """The JSON record of a face: box, score, scheme, points_2d, points_3d (3D models), pose and, when the
    model gives them, its 62 parameters and the 3x4 camera taking the 3DMM's model frame to photo pixels
    (the pose's translation and scale are the camera's)."""
    record = {
        "box": [round(float(v), 2) for v in face.box],
        "score": round(float(face.score), 4),
        "scheme": face.landmarks_2d.scheme,
        "points_2d": np.round(face.landmarks_2d.points, 2).tolist(),
    }
    if face.landmarks_3d is not None:
        record["points_3d"] = np.round(face.landmarks_3d.points, 2).tolist()
    record["pose"] = {k: round(v, 2) for k, v in face.pose.as_dict().items()}
    camera = face.extra.get("camera")
    if camera is not None:
        scale = float(np.linalg.norm(camera[:, :3], axis=1).mean())
        record["pose"].update(translation=np.round(camera[:, 3], 3).tolist(), scale=round(scale, 6))
        record["camera"] = [[float(f"{v:.6g}") for v in row] for row in camera]
    if face.extra.get("params") is not None:
        record["params"] = [float(f"{v:.6g}") for v in face.extra["params"]]
    return record
