"""Landmark conventions from annotated photos: offsets recovered through each face's camera, and
their form for the mesh landmarker."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from facegraph.train.conventions import (
    JAW,
    MIN_LABELLED_FACES,
    fit_convention_offsets,
    mesh_offsets_from_photos,
    to_teacher_convention,
)


def convention_faces(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Teacher points, their parameters, model-frame offsets of a few pixels, and human points that
    follow those offsets with label noise, one face in ten mislabelled by 30 px."""
    rng = np.random.default_rng(seed)
    params = np.zeros((n, 62))
    turns = Rotation.from_euler("yxz", rng.uniform(-30, 30, (n, 3)), degrees=True).as_matrix()
    params[:, :12] = np.concatenate([1e-3 * turns, rng.uniform(40, 80, (n, 3, 1))], axis=2).reshape(n, 12)
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


def test_mesh_offsets_from_photos_keep_the_in_plane_offsets_of_the_inner_points_in_mm():
    offsets = np.arange(68 * 3, dtype=float).reshape(68, 3) * 1000.0  # micrometres
    converted = mesh_offsets_from_photos(offsets, np.full(68, 1147), 1e-3, "300-W")
    np.testing.assert_array_equal(converted.offsets[list(JAW)], 0.0)
    np.testing.assert_array_equal(converted.counts[list(JAW)], 0)
    np.testing.assert_array_equal(converted.offsets[17:, 2], 0.0)
    np.testing.assert_allclose(converted.offsets[17:, :2], offsets[17:, :2] / 1000.0)
    assert converted.n_scans == 1147 and converted.source == "300-W"
