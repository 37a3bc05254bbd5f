"""Landmark conventions from annotated photos: offsets recovered through each face's camera, and
their form for the mesh landmarker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from facegraph.datasets.face_crops import to_y_down
from facegraph.errors import InputError
from facegraph.mesh.landmarker import MeshLandmarker
from facegraph.morphable.bfm import MorphableModel
from facegraph.schemes.registry import get_scheme
from facegraph.training.mesh_offsets import (
    JAW,
    MIN_LABELLED_FACES,
    fit_convention_offsets,
    mesh_offsets_from_photos,
    mirror_symmetric,
    offsets_from_mean_face,
    to_teacher_convention,
)
from tests.image.test_synergynet_model import synthetic_morphable

FLIP_ORDER = np.array(get_scheme("ibug68").flip_order)


def _turned_cameras(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 62) parameters: cameras turned within ±30° about every axis, scale 1e-3, zero shape."""
    params = np.zeros((n, 62))
    turns = Rotation.from_euler("yxz", rng.uniform(-30, 30, (n, 3)), degrees=True).as_matrix()
    params[:, :12] = np.concatenate([1e-3 * turns, rng.uniform(40, 80, (n, 3, 1))], axis=2).reshape(n, 12)
    return params


def test_a_moved_model_keypoint_shows_in_the_crop_where_the_convention_says():
    """Independent of the fit: move landmark 30's vertex of a morphable model and decode."""
    params = torch.as_tensor(_turned_cameras(20, np.random.default_rng(7)), dtype=torch.float32)
    model = synthetic_morphable()
    offset = np.array([3000.0, -2000.0, 1500.0])
    mean = model.mean.numpy().reshape(68, 3).copy()
    mean[30] += offset
    moved = MorphableModel(
        mean.ravel(),
        model.shape_basis.numpy(),
        model.expression_basis.numpy(),
        landmark_vertices=np.arange(68),
    )
    before, after = (to_y_down(m.landmarks(params)).numpy() for m in (model, moved))
    assert np.linalg.norm(after - before, axis=-1)[:, 30].min() > 1.0  # pixels: the move shows
    offsets = np.zeros((68, 3))
    offsets[30] = offset
    np.testing.assert_allclose(to_teacher_convention(after, params.numpy(), offsets), before, atol=2e-3)


def test_offsets_are_made_mirror_symmetric():
    rng = np.random.default_rng(5)
    offsets = rng.normal(0, 1, (68, 3))
    symmetric = mirror_symmetric(offsets, FLIP_ORDER)
    np.testing.assert_allclose(symmetric[FLIP_ORDER] * [-1, 1, 1], symmetric)
    assert np.abs(symmetric[[27, 28, 29, 30, 33, 51, 57, 62, 66], 0]).max() < 1e-12  # the midline keeps x = 0
    shifted = mirror_symmetric(
        offsets + [0.5, 0.0, 0.0], FLIP_ORDER
    )  # a shift of the whole face is no convention
    np.testing.assert_allclose(shifted, symmetric)


def convention_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Teacher points, their parameters, model-frame offsets of a few pixels, and human points that
    follow those offsets with label noise, one face in ten mislabelled by 30 px."""
    rng = np.random.default_rng(seed)
    params = _turned_cameras(n, rng)
    teacher = rng.uniform(20, 100, (n, 68, 2))
    offsets = rng.normal(0, 2000, (68, 3))  # the cameras scale by 1e-3: about 2 px
    human = to_teacher_convention(teacher, params, -offsets) + rng.normal(0, 0.5, (n, 68, 2))
    human[rng.random(n) < 0.1] += 30.0
    return teacher, params, offsets, human


def test_convention_offsets_are_recovered_despite_label_noise_and_mislabelled_faces():
    teacher, params, offsets, human = convention_faces(400, seed=3)
    human[MIN_LABELLED_FACES - 10 :, 5] = np.nan  # landmark 5 is labelled on too few faces
    fitted = fit_convention_offsets(human, teacher, params)
    np.testing.assert_array_equal(fitted[5], 0.0)
    keep = np.arange(68) != 5
    moved = to_teacher_convention(teacher, params, -fitted)[:, keep]
    expected = to_teacher_convention(teacher, params, -offsets)[:, keep]
    assert np.abs(moved - expected).mean() < 0.1  # pixels, against offsets of about 2 px
    aligned = to_teacher_convention(human, params, fitted)
    assert np.nanmedian(np.linalg.norm(aligned - teacher, axis=-1)) < 1.0


def test_mesh_offsets_from_photos_keep_the_in_plane_offsets_of_the_fitted_inner_points_in_mm():
    offsets = mirror_symmetric(np.random.default_rng(2).normal(0, 3000, (68, 3)), FLIP_ORDER)  # micrometres
    counts = np.full(68, 1147)
    counts[40] = 0  # too few faces labelled it for a fit
    converted = mesh_offsets_from_photos(offsets, counts, 1e-3, FLIP_ORDER, "300-W")
    np.testing.assert_array_equal(converted.offsets[list(JAW)], 0.0)
    np.testing.assert_array_equal(converted.counts[list(JAW)], 0)
    np.testing.assert_array_equal(converted.offsets[:, 2], 0.0)
    np.testing.assert_array_equal(converted.offsets[40], 0.0)
    keep = [i for i in range(17, 68) if i != 40]
    np.testing.assert_allclose(converted.offsets[keep, :2], offsets[keep, :2] / 1000.0)
    assert converted.n_scans == 1147 and converted.source == "300-W"


@pytest.fixture(scope="module")
def canonical() -> np.ndarray:
    """The shipped mesh network's canonical landmarks (mm), the frame offsets are expressed in."""
    return MeshLandmarker().canonical_landmarks


def _local_convention() -> np.ndarray:
    """Offsets (mm) that move only the inner brow ends inward and the top of the nose bridge up."""
    offsets = np.zeros((68, 3))
    offsets[21], offsets[22], offsets[27] = [8.0, 0.0, 0.0], [-8.0, 0.0, 0.0], [0.0, 9.0, 0.0]
    return offsets


def test_offsets_from_a_mean_face_in_other_units_and_pose_are_its_convention(canonical):
    turn = Rotation.from_euler("yxz", [20, -15, 5], degrees=True).as_matrix()
    mean_face = 0.01 * (canonical + _local_convention()) @ turn.T + np.array([0.3, -0.1, 2.0])  # 1 = 10 cm
    offsets = offsets_from_mean_face(mean_face, canonical, FLIP_ORDER, "a test face")
    # The alignment over 51 points spreads the three moved points' mean over all: about 0.5 mm.
    np.testing.assert_allclose(offsets.offsets, _local_convention(), atol=0.6)
    assert offsets.offsets[21, 0] > 7.0 and offsets.offsets[27, 1] > 8.0
    np.testing.assert_array_equal(offsets.offsets[list(JAW)], 0.0)
    np.testing.assert_array_equal(offsets.offsets[:, 2], 0.0)
    assert list(offsets.counts) == [0] * 17 + [1] * 51 and offsets.source == "a test face"


def test_offsets_from_a_mean_face_are_mirror_symmetric(canonical):
    lopsided = canonical.copy()
    lopsided[21, 0] += 6.0  # only the right brow's inner end moves inward
    offsets = offsets_from_mean_face(lopsided, canonical, FLIP_ORDER, "").offsets
    np.testing.assert_allclose(offsets[FLIP_ORDER] * [-1, 1, 1], offsets, atol=1e-9)
    assert offsets[21, 0] > 2.0 and offsets[22, 0] < -2.0


def test_a_mean_face_in_another_point_order_is_refused(canonical):
    shuffled = canonical[np.random.default_rng(0).permutation(68)]
    with pytest.raises(InputError, match="not 68 points in iBUG order"):
        offsets_from_mean_face(shuffled, canonical, FLIP_ORDER, "")


def test_a_mean_face_whose_points_coincide_is_refused(canonical):
    with pytest.raises(InputError, match="inner points all coincide"):
        offsets_from_mean_face(np.zeros((68, 3)), canonical, FLIP_ORDER, "")


def test_a_mean_face_in_a_y_down_frame_is_refused(canonical):
    with pytest.raises(InputError, match="mirrored"):
        offsets_from_mean_face(canonical * [1.0, -1.0, 1.0], canonical, FLIP_ORDER, "")
