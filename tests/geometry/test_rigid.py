import numpy as np
from scipy.spatial.transform import Rotation

from facegraph.geometry.rigid import similarity_fit


def test_similarity_fit_recovers_scale_rotation_and_shift():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(30, 3))
    rotation = Rotation.from_euler("yxz", [25, -10, 40], degrees=True).as_matrix()
    target = 87.5 * source @ rotation.T + np.array([3.0, -20.0, 7.0])
    scale, fitted, shift = similarity_fit(source, target)
    assert np.isclose(scale, 87.5)
    np.testing.assert_allclose(fitted, rotation, atol=1e-10)
    np.testing.assert_allclose(scale * source @ fitted.T + shift, target, atol=1e-9)


def test_similarity_fit_never_reflects():
    source = np.random.default_rng(1).normal(size=(30, 3))
    _, rotation, _ = similarity_fit(source, source * np.array([-1.0, 1.0, 1.0]))
    assert np.isclose(np.linalg.det(rotation), 1.0)
