"""Synthetic 3D face scans with exact landmarks, drawn from the Basel Face Model, for training.

Each face is the BFM with shape and expression coefficients drawn from the model's prior (the spread of
3DDFA's fitted parameters, widened because fits shrink toward the mean), in millimetres, in the canonical
frame (+Y up, +Z toward the viewer, the subject's right eye at -x), optionally bent by a few smooth
bumps so that faces also vary outside the model's 40 shape components. Then, so that the network meets
what real scans look like: optional head context (scalp, ears, neck, shoulders), re-meshing by decimation,
holes, partial crops, surface noise, a random rigid pose about the canonical frame and a scale jitter.
The 68 landmarks are the BFM's landmark vertices, moved with the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from facegraph.errors import InputError
from facegraph.extras import require
from facegraph.geometry.pose import pose_to_matrix
from facegraph.morphable import MorphableModel, load_bfm
from facegraph.types import HeadPose

MICRONS_PER_MM = 1000.0


@dataclass
class SyntheticScan:
    """A generated scan: vertices (V, 3) mm, faces (F, 3) and the 68 landmarks (68, 3) mm."""

    vertices: np.ndarray
    faces: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class Augmentation:
    """How far the generator strays from a clean, frontal, face-only BFM mesh."""

    shape_scale: float = 1.5
    expression_scale: float = 2.0
    yaw: float = 35.0
    pitch: float = 25.0
    roll: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 50.0
    context: float = 0.5
    decimate: float = 0.7
    max_reduction: float = 0.9
    holes: float = 0.5
    crop: float = 0.3
    noise: tuple[float, float] = (0.0, 0.6)
    warp: float = 0.0
    warp_mm: tuple[float, float] = (2.0, 6.0)


CLEAN = Augmentation(
    shape_scale=1.0,
    expression_scale=1.0,
    yaw=0.0,
    pitch=0.0,
    roll=0.0,
    scale=(1.0, 1.0),
    shift=0.0,
    context=0.0,
    decimate=0.0,
    holes=0.0,
    crop=0.0,
    noise=(0.0, 0.0),
)


def dense_bfm(bfm: MorphableModel | str | Path | None) -> MorphableModel:
    """The BFM (loaded from a folder when given one), refused unless it has the dense bases, triangles
    and parameter statistics (the coefficients' spread) that synthetic faces are drawn from."""
    model = bfm if isinstance(bfm, MorphableModel) else load_bfm(bfm)
    folder = bfm if isinstance(bfm, str | Path) else None
    if model.triangles is None or not model.has_dense:
        raise InputError(
            "synthetic faces need the BFM's dense bases and triangles (../shared/tools/get-bfm-bases)", folder
        )
    if model.whitening is None:
        raise InputError("synthetic faces need param_whitening.pkl, the coefficients' spread", folder)
    return model


class SyntheticFaces:
    """Draws synthetic scans from a BFM folder with dense bases (see docs/data-layouts.md)."""

    def __init__(self, bfm: MorphableModel | str | None = None, augmentation: Augmentation | None = None):
        model = dense_bfm(bfm)
        self.mean = model.mean.numpy().astype(np.float64) / MICRONS_PER_MM
        self.shape_basis = model.shape_basis.numpy().astype(np.float64) / MICRONS_PER_MM
        self.expression_basis = model.expression_basis.numpy().astype(np.float64) / MICRONS_PER_MM
        self.landmark_vertices = model.landmark_vertices.numpy().astype(np.int64)
        # 3DDFA's triangles wind clockwise seen from the front; reverse them so normals point outwards.
        self.faces = np.asarray(model.triangles, dtype=np.int64)[:, ::-1].copy()
        self.shape_std, self.expression_std = _coefficient_spread(model)
        self.augmentation = augmentation or Augmentation()

    def face(self, rng: np.random.Generator, shape_scale: float, expression_scale: float) -> np.ndarray:
        """Vertices (V, 3) in mm of a face with random shape and expression, centred on its landmarks."""
        shape = rng.standard_normal(len(self.shape_std)) * self.shape_std * shape_scale
        expression = rng.standard_normal(len(self.expression_std)) * self.expression_std * expression_scale
        flat = self.mean + self.shape_basis @ shape + self.expression_basis @ expression
        vertices = flat.reshape(-1, 3)
        return vertices - vertices[self.landmark_vertices].mean(axis=0)

    def sample(self, rng: np.random.Generator, posed: bool = True) -> SyntheticScan:
        """One augmented scan; ``posed=False`` leaves it in the canonical frame, unscaled and unshifted."""
        aug = self.augmentation
        vertices = self.face(rng, aug.shape_scale, aug.expression_scale)
        if aug.warp > 0 and rng.random() < aug.warp:
            vertices = smooth_warp(vertices, vertices[self.landmark_vertices], rng, aug.warp_mm)
        landmarks = vertices[self.landmark_vertices].copy()
        faces = self.faces
        if rng.random() < aug.decimate:
            vertices, faces = _decimate(vertices, faces, rng.uniform(0.2, aug.max_reduction))
        if rng.random() < aug.holes:
            faces = _punch_holes(vertices, faces, landmarks, rng)
        if rng.random() < aug.crop:
            faces = _crop(vertices, faces, landmarks, rng)
        if rng.random() < aug.context:
            vertices, faces = _add_context(vertices, faces, landmarks, rng)
        vertices, faces = _drop_unused(vertices, faces)
        low, high = aug.noise
        if high > 0:
            normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
            vertices = vertices + normals * rng.normal(0.0, rng.uniform(low, high), (len(vertices), 1))
        if not posed:
            return SyntheticScan(vertices, faces.astype(np.int64), landmarks)
        rotation, scale, shift = random_rigid(rng, aug)
        return SyntheticScan(
            scale * vertices @ rotation.T + shift,
            faces.astype(np.int64),
            scale * landmarks @ rotation.T + shift,
        )


def random_rigid(rng: np.random.Generator, aug: Augmentation) -> tuple[np.ndarray, float, np.ndarray]:
    """A random rotation (3, 3) about the canonical frame, scale and shift (3,) within the given limits."""
    rotation = pose_to_matrix(
        HeadPose(
            yaw=rng.uniform(-aug.yaw, aug.yaw),
            pitch=rng.uniform(-aug.pitch, aug.pitch),
            roll=rng.uniform(-aug.roll, aug.roll),
        )
    )
    return rotation, float(rng.uniform(*aug.scale)), rng.uniform(-aug.shift, aug.shift, 3)


def smooth_warp(
    vertices: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator, amplitude: tuple[float, float]
) -> np.ndarray:
    """The vertices displaced by 2-8 Gaussian bumps (radius 10-30 mm, each moving its centre by
    ``amplitude`` mm, drawn uniformly, in a random direction) centred near random landmarks.

    A 3DMM's faces vary only within its few shape components, so a network trained on them can learn
    where a landmark sits from the model's correlations rather than from the surface; another model's
    faces (or real people) break those. The landmark vertices move with the surface, and the bumps are too
    gentle to fold it (each one's displacement gradient stays below 0.4).
    """
    n = int(rng.integers(2, 9))
    centres = landmarks[rng.integers(len(landmarks), size=n)] + rng.normal(0.0, 10.0, (n, 3))
    radii = rng.uniform(10.0, 30.0, n)
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    moves = directions * rng.uniform(*amplitude, n)[:, None]
    squared = ((vertices[:, None, :] - centres[None]) ** 2).sum(axis=2)
    return vertices + np.exp(-squared / (2.0 * radii**2)) @ moves


def _coefficient_spread(model: MorphableModel) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations of the shape and expression coefficients: 3DDFA's parameter statistics."""
    std = np.asarray(model.whitening.std, dtype=np.float64)
    n_shape = model.shape_basis.shape[1]
    return std[12 : 12 + n_shape], std[12 + n_shape : 12 + n_shape + model.expression_basis.shape[1]]


def _decimate(vertices: np.ndarray, faces: np.ndarray, reduction: float) -> tuple[np.ndarray, np.ndarray]:
    simplifier = require("fast_simplification", "train", "generating synthetic scans")
    points, triangles = simplifier.simplify(
        vertices.astype(np.float32), faces.astype(np.int32), target_reduction=reduction
    )
    return points.astype(np.float64), triangles.astype(np.int64)


def _face_centres(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return vertices[faces].mean(axis=1)


def _punch_holes(
    vertices: np.ndarray, faces: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Remove 1-4 round patches, centred near random landmarks (where scanners lose eyes, nostrils...)."""
    centres = _face_centres(vertices, faces)
    keep = np.ones(len(faces), dtype=bool)
    for _ in range(rng.integers(1, 5)):
        centre = landmarks[rng.integers(len(landmarks))] + rng.normal(0.0, 10.0, 3)
        keep &= np.linalg.norm(centres - centre, axis=1) > rng.uniform(3.0, 15.0)
    return faces[keep]


def _crop(
    vertices: np.ndarray, faces: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Keep what lies within a sphere about the face, or in front of a plane, as scanners and crops do."""
    centres = _face_centres(vertices, faces)
    if rng.random() < 0.5:
        centre = landmarks.mean(axis=0) + rng.normal(0.0, 5.0, 3)
        return faces[np.linalg.norm(centres - centre, axis=1) < rng.uniform(85.0, 130.0)]
    depth = landmarks[:, 2].min() - rng.uniform(0.0, 30.0)
    return faces[centres[:, 2] > depth]


def _ellipsoid(centre: np.ndarray, axes: np.ndarray, subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    return np.asarray(sphere.vertices) * axes + centre, np.asarray(sphere.faces, dtype=np.int64)


def _add_context(
    vertices: np.ndarray, faces: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Add a rough scalp and back of the head, ears, a neck and sometimes shoulders around the face.

    Real scans (FaceScape TU, Headspace, 3dMD heads) carry these; the shapes need not be accurate, only
    present, so that the network learns to look past them.
    """
    width = np.ptp(landmarks[:, 0])
    chin = landmarks[8]
    brow = landmarks[17:27].mean(axis=0)
    rear = vertices[:, 2].min()
    pieces = [(vertices, faces)]
    head_axes = np.array(
        [width * rng.uniform(0.55, 0.65), rng.uniform(100.0, 125.0), rng.uniform(95.0, 115.0)]
    )
    head_centre = np.array([0.0, brow[1] - rng.uniform(0.0, 25.0), rear - rng.uniform(5.0, 30.0) + 20.0])
    head_v, head_f = _ellipsoid(head_centre, head_axes, subdivisions=4)
    # Keep the back and the top of the head: nothing in front of the face's rim or over the forehead.
    fc = _face_centres(head_v, head_f)
    behind = fc[:, 2] < rear + rng.uniform(0.0, 20.0)
    above = (fc[:, 1] > brow[1] + rng.uniform(25.0, 45.0)) & (fc[:, 2] < brow[2] - 15.0)
    pieces.append((head_v, head_f[behind | above]))
    if rng.random() < 0.8:
        for side in (-1.0, 1.0):
            ear_centre = np.array([side * head_axes[0] * 0.97, landmarks[27:31, 1].mean(), rear + 5.0])
            pieces.append(
                _ellipsoid(ear_centre, np.array([8.0, rng.uniform(25.0, 35.0), 15.0]), subdivisions=2)
            )
    if rng.random() < 0.8:
        radius = rng.uniform(45.0, 65.0)
        length = rng.uniform(80.0, 160.0)
        neck = trimesh.creation.cylinder(radius=radius, height=length, sections=48)
        neck_v = np.asarray(neck.vertices)[:, [0, 2, 1]] + np.array(
            [0.0, chin[1] - length / 2 + 10.0, rear + 25.0]
        )
        neck_f = np.asarray(neck.faces, dtype=np.int64)[:, ::-1]
        caps = np.abs(np.asarray(neck.face_normals)[:, 2]) > 0.9
        pieces.append((neck_v, neck_f[~caps]))
        if rng.random() < 0.5:
            shoulder_centre = np.array([0.0, chin[1] - length - 20.0, rear + rng.uniform(0.0, 40.0)])
            sv, sf = _ellipsoid(shoulder_centre, np.array([rng.uniform(170.0, 230.0), 60.0, 110.0]))
            pieces.append((sv, sf[_face_centres(sv, sf)[:, 1] > shoulder_centre[1] - 20.0]))
    offsets = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
    return (
        np.concatenate([v for v, _ in pieces]),
        np.concatenate([f + offset for (_, f), offset in zip(pieces, offsets, strict=True)]),
    )


def _drop_unused(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[faces]


@dataclass
class PointCache:
    """Generated scans stored as dense surface samples, for training without re-generating meshes.

    points, normals: (M, P, 3) float32; landmarks: (M, 68, 3) float32, all in mm, unposed (the rigid
    pose is drawn afresh each time a sample is used).
    """

    points: np.ndarray
    normals: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


def build_point_cache(
    faces: SyntheticFaces, n_scans: int, n_points: int, seed: int, progress: bool = True
) -> PointCache:
    """Draw n_scans scans (without rigid pose) and keep n_points evenly spread surface points of each."""
    from tqdm import tqdm

    from facegraph.mesh.sampling import sample_surface

    rng = np.random.default_rng(seed)
    points = np.empty((n_scans, n_points, 3), np.float32)
    normals = np.empty((n_scans, n_points, 3), np.float32)
    landmarks = np.empty((n_scans, 68, 3), np.float32)
    for i in tqdm(range(n_scans), desc="synthetic scans", unit="scan", disable=not progress):
        scan = faces.sample(rng, posed=False)
        surface = sample_surface(scan.vertices, scan.faces, n_points, rng)
        points[i], normals[i], landmarks[i] = surface.points, surface.normals, scan.landmarks
    return PointCache(points, normals, landmarks)
