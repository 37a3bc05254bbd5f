"""Landmark conventions learnt from annotated photos: where annotators put each point relative to a
3D morphable model's keypoints.

A convention is one 3D offset per landmark in the model's own frame. On a photo it shows through the
face's camera: the annotator's point minus the model fit's projected keypoint is the projected offset
plus noise. Fitting the offsets to many faces, robustly, separates the constant convention from the
per-face errors of the fits; turning pose across faces is what makes the offsets three-dimensional.
The SynergyNet trainer moves human labels into its teacher's convention with them, and
``facegraph fit mesh-offsets --photos`` turns them into offsets for the mesh landmarker.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

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


def offsets_from_scans(
    landmarker, folder: str | Path, refine: str, units: str | None, shape_prior: bool, progress: bool
) -> tuple[ConventionOffsets, int, float]:
    """Offsets from a folder of scans annotated another way (landmark files of the same stem), the
    number of scans with ground truth, and the landmarker's inner-51 error on them without offsets (mm)."""
    from facegraph.datasets.scans import annotated_records
    from facegraph.evaluation.meshes import predict_scans
    from facegraph.mesh.checks import MM_PER_UNIT
    from facegraph.mesh.conventions import fit_offsets
    from facegraph.metrics.landmarks import mesh_landmark_errors

    run = predict_scans(
        annotated_records(folder),
        lambda mesh: landmarker(mesh, refine, units, shape_prior=shape_prior).points,
        progress,
    )
    to_mm = MM_PER_UNIT[units or "mm"]
    predictions, truths = run.predictions * to_mm, run.truths * to_mm
    source = f"{len(run.names)} scans of {Path(folder).resolve()}"
    offsets = fit_offsets(predictions, truths, landmarker.canonical_landmarks, source)
    return offsets, len(run.names), float(mesh_landmark_errors(predictions, truths)["mean_51"].mean())


def offsets_from_photo_folder(
    photos: str | Path, teacher: str, teacher_weights: str | None, bfm: str | None, progress: bool
) -> ConventionOffsets:
    """Offsets from where the annotators of a folder of 68-point photos put the landmarks, relative to
    a 3DMM regressor's fits (its morphable model's keypoints are the mesh network's convention)."""
    from facegraph.datasets.face_crops import load_faces68_crops
    from facegraph.datasets.synthetic_faces import MICRONS_PER_MM
    from facegraph.registry import get_model_spec, load_model
    from facegraph.schemes.registry import get_scheme

    spec = get_model_spec(teacher, kind="image")
    if spec.needs_weights and teacher_weights is None:
        raise InputError(f"--photos needs --teacher-weights: {spec.weights_source}")
    model = load_model(teacher, weights=teacher_weights, bfm=bfm, kind="image")
    if model.morphable is None:
        raise InputError(f"--photos needs the BFM to decode {teacher}'s fits: pass --bfm DIR")
    faces = load_faces68_crops(photos, progress=progress)
    offsets, counts = annotator_offsets(faces, model, progress=progress)
    if not counts[len(JAW) :].any():
        raise InputError(
            f"{len(faces)} annotated faces: a convention needs at least {MIN_LABELLED_FACES}", photos
        )
    source = (
        f"{len(faces)} faces of {Path(photos).resolve().name}: where their annotators put the inner 51"
        f" points against {teacher}'s fits (in-plane, mirror-symmetric; jaw and depth left to the model)"
    )
    flip_order = np.array(get_scheme("ibug68").flip_order)
    return mesh_offsets_from_photos(offsets, counts, 1.0 / MICRONS_PER_MM, flip_order, source)


def offsets_from_mean_face_file(path: str | Path, canonical: np.ndarray) -> ConventionOffsets:
    """Offsets from a 3D mean face annotated another way: SPIGA's ``mean_face_3D_68.txt`` or a 68-point
    3D landmark file (.json, .ljson, .pp, .csv), in any units."""
    from facegraph.io.landmarks import read_landmarks, read_spiga_mean_face
    from facegraph.schemes.registry import get_scheme

    name = f"the 3D mean face {Path(path).name}"
    if Path(path).suffix.lower() == ".txt":
        points = read_spiga_mean_face(path)
        name = f"SPIGA's 3D mean face ({Path(path).name})"
    else:
        landmarks = read_landmarks(path, scheme="ibug68")
        if landmarks.points.shape != (68, 3) or (
            landmarks.visible is not None and not landmarks.visible.all()
        ):
            raise InputError("a mean face needs all 68 points in 3D", path)
        points = landmarks.points
    source = (
        f"{name}: where its annotation puts the inner 51 points"
        " (in-plane, mirror-symmetric; jaw and depth left to the model)"
    )
    flip_order = np.array(get_scheme("ibug68").flip_order)
    try:
        return offsets_from_mean_face(points, canonical, flip_order, source)
    except InputError as exc:
        raise InputError(exc.problem, path) from None


def save_offsets(
    offsets: ConventionOffsets,
    canonical: np.ndarray,
    out: str | Path,
    with_rules: bool,
    plot: str | Path | None = None,
    title: str = "",
) -> str:
    """Write the offsets (with the 68-point markup's rules or not) and, with ``plot``, draw them on the
    mean face; returns a line naming the largest offsets."""
    from facegraph.mesh.conventions import write_offsets
    from facegraph.mesh.markup import MARKUP_RULES

    offsets = replace(offsets, rules=MARKUP_RULES if with_rules else ())
    write_offsets(out, offsets)
    if plot:
        from facegraph.viz.mesh_views import plot_landmark_offsets

        plot_landmark_offsets(canonical, offsets.offsets, plot, title=f"convention offsets: {title}")
    sizes = np.linalg.norm(offsets.offsets, axis=1)
    largest = ", ".join(f"{i} {sizes[i]:.1f}" for i in np.argsort(-sizes)[:5])
    rules = f"; markup rules: {', '.join(offsets.rules)}" if offsets.rules else ""
    return f"largest offsets (landmark mm): {largest}{rules} -> {out}"


def convention_landmarker(weights: str | Path | None, device: str | None = None):
    """The mesh landmarker whose canonical frame offsets are fitted in (two-pass weights only)."""
    from facegraph.mesh.landmarker import MeshLandmarker

    landmarker = MeshLandmarker(weights, device=device)
    if landmarker.canonical_landmarks is None:
        raise InputError("convention offsets need weights with a canonical frame (facegraph-mesh)", weights)
    return landmarker
