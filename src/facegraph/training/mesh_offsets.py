"""Landmark conventions learnt from annotated photos: where annotators put each point relative to a
3D morphable model's keypoints.

A convention is one 3D offset per landmark in the model's own frame. On a photo it shows through the
face's camera: the annotator's point minus the model fit's projected keypoint is the projected offset
plus noise. Fitting the offsets to many faces, robustly, separates the constant convention from the
per-face errors of the fits; turning pose across faces is what makes the offsets three-dimensional.
The SynergyNet trainer moves human labels into its teacher's convention with them, and
``facegraph train mesh-offsets --photos`` turns them into offsets for the mesh landmarker.
"""

from __future__ import annotations

import numpy as np
import torch

from facegraph.datasets.face_crops import FaceCrops, to_y_down
from facegraph.errors import InputError
from facegraph.geometry.rigid import similarity_fit
from facegraph.image.crop_regressor import CropRegressor, regress_params
from facegraph.mesh.conventions import N_LANDMARKS, ConventionOffsets
from facegraph.metrics.landmarks import INNER_51, landmark_box_size
from facegraph.morphable.bfm import split_params

JAW = range(17)  # silhouette points on a photo: where they fall depends on the view, not a fixed offset

MIN_LABELLED_FACES = 50  # a landmark labelled on fewer faces keeps a zero convention offset


def _offset_projections(params: np.ndarray) -> np.ndarray:
    """(N, 2, 3): how a model-frame offset moves each face's point in the (x, y-down) crop frame."""
    rotation = split_params(torch.as_tensor(params, dtype=torch.float64))[0].numpy()
    return np.stack([rotation[:, 0], -rotation[:, 1]], axis=1)


def fit_convention_offsets(
    points: np.ndarray, teacher_points: np.ndarray, params: np.ndarray, iterations: int = 5
) -> np.ndarray:
    """(68, 3) model-frame offsets from the teacher's keypoints to where annotators put each landmark.

    ``points`` (N, 68, 2) human labels (NaN: unlabelled) and ``teacher_points`` (N, 68, 2), both
    x, y-down crop pixels; ``params`` (N, 62) the teacher's. Each offset minimises the Huber loss of
    the residual (projected offset minus the human-teacher gap, over the face's box) by iteratively
    reweighted least squares, so that faces the teacher got wrong do not set the convention."""
    size = landmark_box_size(teacher_points)[:, None, None]
    projections = _offset_projections(params) / size
    gaps = (points - teacher_points) / size
    offsets = np.zeros((points.shape[1], 3))
    for landmark in range(points.shape[1]):
        labelled = np.flatnonzero(np.isfinite(gaps[:, landmark, 0]))
        if len(labelled) < MIN_LABELLED_FACES:
            continue
        a, b = projections[labelled], gaps[labelled, landmark]
        weights = np.ones(len(labelled))
        for _ in range(iterations):
            root = np.sqrt(weights)
            offsets[landmark] = np.linalg.lstsq(
                (a * root[:, None, None]).reshape(-1, 3), (b * root[:, None]).reshape(-1), rcond=None
            )[0]
            residual = np.linalg.norm(a @ offsets[landmark] - b, axis=1)
            limit = 1.5 * np.median(residual)
            weights = np.where(residual > limit, limit / np.maximum(residual, 1e-12), 1.0)
    return offsets


def to_teacher_convention(points: np.ndarray, params: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(N, 68, 2) human points moved by each face's projection of the (68, 3) convention offsets."""
    return points - np.einsum("nij,pj->npi", _offset_projections(params), offsets)


def annotator_offsets(
    faces: FaceCrops, model: CropRegressor, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(68, 3) offsets (model units and frame) from ``model``'s fits of the faces to where their
    annotators put each landmark, and (68,) how many faces labelled each one (0 where too few did for
    an offset to be fitted)."""
    params = regress_params(model, faces.crops, progress)
    with torch.inference_mode():
        keypoints = to_y_down(model.morphable.landmarks(torch.as_tensor(params))).numpy()
    counts = np.isfinite(faces.points[..., 0]).sum(axis=0)
    counts = np.where(counts >= MIN_LABELLED_FACES, counts, 0)
    return fit_convention_offsets(faces.points, keypoints, params), counts


def mirror_symmetric(offsets: np.ndarray, flip_order: np.ndarray) -> np.ndarray:
    """The mean of (68, 3) offsets and their mirror image (each point's partner's offset with x
    negated): a convention is a property of the face, the same on both sides; what differs between
    the sides (a sub-pixel frame shift, noise) is not convention."""
    mirrored = offsets[flip_order] * np.array([-1.0, 1.0, 1.0])
    return (offsets + mirrored) / 2


def _symmetric_in_plane(offsets: np.ndarray, flip_order: np.ndarray) -> np.ndarray:
    """Offsets (68, 3) made mirror-symmetric, without depth and with the jaw's set to zero: the form
    both photo and mean-face conventions take."""
    in_plane = mirror_symmetric(offsets, np.asarray(flip_order)) * np.array([1.0, 1.0, 0.0])
    in_plane[list(JAW)] = 0.0
    return in_plane


def mesh_offsets_from_photos(
    offsets: np.ndarray, counts: np.ndarray, mm_per_unit: float, flip_order: np.ndarray, source: str
) -> ConventionOffsets:
    """Offsets for the mesh landmarker from offsets fitted on photos (model units, model frame, which
    is the landmarker's canonical frame up to units), made mirror-symmetric: the jaw's are dropped (a
    photo's jaw points lie on the silhouette), and so is depth, which near-frontal photos hardly
    constrain and which the landmarker's snap to the surface decides anyway."""
    offsets = np.asarray(offsets, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64).copy()
    if offsets.shape != (N_LANDMARKS, 3) or counts.shape != (N_LANDMARKS,):
        raise ValueError(f"need (68, 3) offsets and (68,) counts, got {offsets.shape}, {counts.shape}")
    in_plane = _symmetric_in_plane(offsets * mm_per_unit, flip_order)
    counts[list(JAW)] = 0
    in_plane[counts == 0] = 0.0
    return ConventionOffsets(in_plane, counts, source)


MEAN_FACE_MISFIT_MM = 8.0  # a mean face farther than this from the canonical face (inner 51, mm) is refused


def offsets_from_mean_face(
    mean_face: np.ndarray, canonical: np.ndarray, flip_order: np.ndarray, source: str
) -> ConventionOffsets:
    """Offsets for the mesh landmarker from a 3D mean face annotated another way (68, 3), any units:
    scaled, turned and moved onto the landmarker's canonical landmarks (mm) over the inner 51 points,
    whose differences are then the offsets; mirror-symmetric, in-plane, jaw untouched, as those from
    photos (depth is left to the snap to the surface; on the calibration scans that did as well as the
    mean face's own depth)."""
    mean_face = np.asarray(mean_face, dtype=np.float64)
    if mean_face.shape != (N_LANDMARKS, 3):
        raise ValueError(f"need a (68, 3) mean face, got {mean_face.shape}")
    inner = list(INNER_51)
    if not np.ptp(mean_face[inner], axis=0).any():
        raise InputError("the mean face's inner points all coincide: not a face")
    scale, rotation, shift = similarity_fit(mean_face[inner], canonical[inner])
    aligned = scale * mean_face @ rotation.T + shift
    misfit = float(np.linalg.norm(aligned[inner] - canonical[inner], axis=1).mean())
    if not misfit <= MEAN_FACE_MISFIT_MM:
        raise InputError(
            f"the mean face is {misfit:.1f} mm from the canonical face after alignment: not 68 points in"
            " iBUG order, or in a mirrored (e.g. y-down) frame?"
        )
    offsets = _symmetric_in_plane(aligned - canonical, flip_order)
    counts = np.zeros(N_LANDMARKS, dtype=np.int64)
    counts[inner] = 1
    return ConventionOffsets(offsets, counts, source)
