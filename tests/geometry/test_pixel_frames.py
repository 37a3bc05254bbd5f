"""Where a face's points land in the photo: hand-worked pixels through the whole photo path.

Three frames meet here. The network's crop frame (3DDFA): x right, y up, a crop of 120 px. The
benchmark frame of AFLW2000-3D's ground truth: Matlab's, 1-based, so the centre of the top-left pixel
is (1, 1); 3DDFA maps the crop frame to it as x_b = x_c * s + x0, y_b = (121 - y_c) * s + y0 for a crop
box with corner (x0, y0) and scale s. facegraph's output frame: 0-based pixel centres, so the centre
of pixel column j, row i is (j, i).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facegraph.image import FaceAnalyzer
from facegraph.image.crop_regressor import CropRegressor
from facegraph.morphable import MorphableModel, ParamWhitening

# A detection box whose crop box (3DDFA_V2's rule: 1.58 x the side, centre moved down 0.14 x the side)
# is [0, -10, 120, 110]: side 76 -> int(120.08) = 120 px wide, centre (60, 1.36 + 38 + 10.64) = (60, 50).
# The crop is then 1:1 with the photo (s = 1) and x0, y0 = 0, -10.
DETECTION = np.array([22.0, 1.36, 98.0, 77.36])
CROP_BOX = [0.0, -10.0, 120.0, 110.0]

# (crop frame x, y) of three landmark vertices, and by hand the 0-based photo pixel each lands on:
# x_b = x_c, y_b = 121 - y_c - 10 = 111 - y_c, then one less on both for 0-based pixel centres.
CROP_POINTS = {0: (1.0, 110.0), 8: (11.0, 90.0), 30: (60.5, 60.0)}
PIXELS = {0: (0.0, 0.0), 8: (10.0, 20.0), 30: (59.5, 50.0)}  # top-left pixel; pixel (10, 20); ...


class FixedParams(nn.Module):
    """A network that answers the same (whitened = unwhitened) parameters for every crop: camera
    [I | 0], no shape, no expression, so the decoded points are the mean's, in the crop frame."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        params = torch.zeros(len(images), 62)
        params[:, [0, 5, 10]] = 1.0
        return params


def model() -> CropRegressor:
    """The mean has 68 landmark vertices (0..67) and one more (so that it is a dense mesh)."""
    mean = np.zeros((69, 3))
    mean[:, :2] = 60.0
    for index, point in CROP_POINTS.items():
        mean[index, :2] = point
    morphable = MorphableModel(
        mean.reshape(-1),
        np.zeros((207, 40)),
        np.zeros((207, 10)),
        landmark_vertices=np.arange(68),
        triangles=np.array([[0, 8, 30]]),
    )
    return CropRegressor(FixedParams(), ParamWhitening(np.zeros(62), np.ones(62)), morphable)


def test_points_come_back_in_0_based_pixel_centres() -> None:
    """Hand-worked for the detection's own crop (no refinement pass: the refined crops follow the
    points, see the next test)."""
    analyzer = FaceAnalyzer(model=model(), detector="dlib-hog", device="cpu", recrop_passes=0)
    photo = np.zeros((200, 200, 3), np.uint8)
    (face,) = analyzer.analyze(photo, boxes=DETECTION[None], mesh=True)
    assert face.extra["crop_box"].tolist() == pytest.approx(CROP_BOX)
    for index, pixel in PIXELS.items():
        np.testing.assert_allclose(face.landmarks_2d.points[index], pixel, atol=1e-9, err_msg=str(index))
        np.testing.assert_allclose(face.landmarks_3d.points[index, :2], pixel, atol=1e-9)
        np.testing.assert_allclose(face.mesh_vertices[index, :2], pixel, atol=1e-9)  # the dense mesh too


def test_a_refinement_pass_cuts_the_face_again_around_the_points_just_predicted() -> None:
    """With one pass, the final crop box is 3DDFA's box of the first prediction's landmarks (pixels in
    the benchmark frame, one more than the 0-based points): their extent and centre, times sqrt(2)."""
    first = FaceAnalyzer(model=model(), device="cpu", recrop_passes=0)
    refined = FaceAnalyzer(model=model(), device="cpu", recrop_passes=1)
    photo = np.zeros((200, 200, 3), np.uint8)
    (before,) = first.analyze(photo, boxes=DETECTION[None])
    (after,) = refined.analyze(photo, boxes=DETECTION[None])
    points = before.landmarks_2d.points + 1.0  # the benchmark frame the crop rule works in
    lo, hi = points.min(axis=0), points.max(axis=0)
    half = np.sqrt(2.0) * (hi - lo).max() / 2
    expected = np.round(np.concatenate([(lo + hi) / 2 - half, (lo + hi) / 2 + half]))
    assert after.extra["crop_box"].tolist() == expected.tolist()
    assert not np.allclose(after.extra["crop_box"], before.extra["crop_box"])


def test_the_camera_takes_model_points_to_the_same_pixels() -> None:
    """The camera [I | 0] of the crop frame becomes, in photo pixels (s = 1, y flipped about 121 - 10,
    one off both for pixel centres): x = X - 1, y = 110 - Y, z = Z."""
    from facegraph.image.analyzer import face_to_dict

    analyzer = FaceAnalyzer(model=model(), detector="dlib-hog", device="cpu", recrop_passes=0)
    (face,) = analyzer.analyze(np.zeros((200, 200, 3), np.uint8), boxes=DETECTION[None])
    expected = [[1.0, 0.0, 0.0, -1.0], [0.0, -1.0, 0.0, 110.0], [0.0, 0.0, 1.0, 0.0]]
    np.testing.assert_allclose(face.extra["camera"], expected, atol=1e-9)
    record = face_to_dict(face)
    assert record["camera"] == expected and record["pose"]["translation"] == [-1.0, 110.0, 0.0]
    assert record["pose"]["scale"] == 1.0 and len(record["params"]) == 62
    for index, pixel in PIXELS.items():  # the camera agrees with the landmarks it explains
        point = np.asarray(expected) @ [*CROP_POINTS[index], 0.0, 1.0]
        np.testing.assert_allclose(point[:2], pixel, atol=1e-9)
