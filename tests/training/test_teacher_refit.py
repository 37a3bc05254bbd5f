"""Teacher fits refitted to human points (train.refit)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from facegraph.errors import InputError
from facegraph.training.refit import NON_CHIN_JAW, refit_to_points
from facegraph.training.synergynet import get_config
from tests.image.test_synergynet_model import face_whitening, synthetic_morphable
from tests.training.test_synergynet_training import _camera_params, _decoded_y_down

STD = face_whitening().std
INNER_AND_CHIN = [8, *range(17, 68)]


def _teacher_and_truth(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A teacher's fits and the faces they missed: other shapes and expressions, same cameras."""
    truth = _camera_params(n, seed=2)
    teacher = truth.copy()
    teacher[:, 12:] += np.random.default_rng(3).normal(0, 4, (n, 50))
    return teacher.astype(np.float32), truth.astype(np.float32)


def _error(morphable, params: np.ndarray, points: np.ndarray, which: list[int]) -> float:
    return float(
        np.linalg.norm(_decoded_y_down(morphable, params)[:, which] - points[:, which], axis=-1).mean()
    )


def test_refitting_moves_the_fit_onto_the_labelled_points_and_the_unlabelled_ones_follow():
    morphable = synthetic_morphable()
    teacher, truth = _teacher_and_truth()
    truth_points = _decoded_y_down(morphable, truth)
    labelled = np.full_like(truth_points, np.nan)
    labelled[:, INNER_AND_CHIN] = truth_points[:, INNER_AND_CHIN]
    refitted = refit_to_points(teacher, labelled, STD, morphable, strength=0.01)
    for which in (INNER_AND_CHIN, NON_CHIN_JAW):  # the jaw was not labelled: it follows the face
        before, after = (
            _error(morphable, teacher, truth_points, which),
            _error(morphable, refitted, truth_points, which),
        )
        assert after < 0.2 * before, (which[0], before, after)


def test_a_strong_prior_or_no_labels_keep_the_teacher_fit():
    morphable = synthetic_morphable()
    teacher, truth = _teacher_and_truth()
    points = _decoded_y_down(morphable, truth)
    points[0] = np.nan  # a face nobody labelled
    weak = refit_to_points(teacher, points, STD, morphable, strength=0.01)
    np.testing.assert_allclose(weak[0], teacher[0], atol=1e-6)
    assert np.abs(weak[1:] - teacher[1:]).max() > 1.0
    strong = refit_to_points(teacher, points, STD, morphable, strength=1e6)
    np.testing.assert_allclose(strong[:, 12:], teacher[:, 12:], atol=0.05)


def test_silhouette_jaw_points_do_not_move_the_fit():
    """A photo's jaw points lie on the silhouette, not on fixed model points: only the chin counts."""
    morphable = synthetic_morphable()
    teacher, truth = _teacher_and_truth()
    jaw_only = np.full((len(truth), 68, 2), np.nan)
    jaw_only[:, NON_CHIN_JAW] = _decoded_y_down(morphable, truth)[:, NON_CHIN_JAW]
    np.testing.assert_allclose(refit_to_points(teacher, jaw_only, STD, morphable, 0.01), teacher, atol=1e-6)


def test_unknown_targets_are_refused():
    with pytest.raises(InputError, match="unknown targets"):
        replace(get_config("facegraph-photo"), targets="dlib")
