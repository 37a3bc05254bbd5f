"""Placing the 68 landmarks on a face mesh or point cloud: sample, predict heatmaps, decode, refine.

The answer is in the input's own frame and units. The input is expected roughly in the canonical frame
(+Y up, +Z toward the viewer; the synthetic training data covers yaw within ±35°, pitch ±25°, roll ±15°)
and in millimetres; other units are detected from the size of the scan and refused unless ``units``
says how to convert them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from facegraph.devices import pick_device
from facegraph.errors import InputError
from facegraph.geometry.rigid import robust_rigid_fit
from facegraph.io.meshes import read_mesh
from facegraph.mesh.checks import MM_PER_UNIT, check_scan
from facegraph.mesh.conventions import ConventionOffsets, offsets_in_frame
from facegraph.mesh.markup import apply_markup_rules
from facegraph.mesh.preprocess import MeshConfig, crop_to_ball, network_input, to_batch
from facegraph.mesh.refine import refine_landmarks
from facegraph.mesh.sampling import (
    SurfaceSample,
    orient_each_outwards,
    orient_outwards,
    sample_cloud,
    sample_surface,
)
from facegraph.mesh.shape_prior import ShapePrior
from facegraph.mesh.weights import CANONICAL_KEY, MEAN_KEY, load_weights
from facegraph.nn.sgcn import StratifiedGcn, decode_heatmaps
from facegraph.schemes import get_scheme
from facegraph.types import DEFAULT_REFINE, Landmarks, Mesh

DEFAULT_WEIGHTS = "facegraph-mesh.safetensors"
DENSE_FACTOR = 4  # the scan is sampled once at this many times the network's points; each pass thins that
REFINE_TOP = 7
# The answer is the mean of the second passes' estimates; each re-aligns and thins the scan anew, so
# their errors partly cancel. The count was chosen on held-out synthetic scans, with and without head
# context: averaging passes beat keeping the last one, and beyond four more passes gained little.
SECOND_PASSES = 4
# These second passes see the face mirrored (x -> -x in the mean face's frame) and mirror their answer
# back, so that the network's left-right biases cancel in the mean. On the same held-out scans,
# mirroring half of the passes did better than mirroring none or all of them, at no extra cost.
MIRRORED_PASSES = (2, 3)
MIRROR_X = np.array([-1.0, 1.0, 1.0])
FLIP_ORDER = np.array(get_scheme("ibug68").flip_order)


def mirror_landmarks(points: np.ndarray) -> np.ndarray:
    """Landmarks (68, ...) of a face mirrored in the x = 0 plane: x negated, left and right swapped."""
    return points[FLIP_ORDER] * MIRROR_X


@dataclass
class MeshLandmarks:
    """The landmarks of one scan, in its frame and units, with what was done to get them."""

    points: np.ndarray
    vertex_indices: np.ndarray
    refine: str
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_landmarks(self) -> Landmarks:
        return Landmarks(self.points, "ibug68")


def bundled_weights() -> Path:
    """The weights shipped inside the package."""
    return Path(str(resources.files("facegraph") / "data" / "weights" / DEFAULT_WEIGHTS))


class MeshLandmarker:
    """A trained mesh landmarker: ``MeshLandmarker()(mesh)`` gives the 68 landmarks of a scan.

    ``weights`` default to the shipped ones; the network runs on ``facegraph.devices.pick_device(device)``
    (CUDA when there is a GPU, else the CPU).
    """

    def __init__(self, weights: str | Path | None = None, device: str | torch.device | None = None) -> None:
        self.device = pick_device(device)
        path = weights or bundled_weights()
        model, config, arrays, figures = load_weights(path)
        self.model: StratifiedGcn = model.to(self.device)
        self.config: MeshConfig = config
        self.mean_landmarks = arrays.get(MEAN_KEY)
        self.canonical_landmarks = arrays.get(CANONICAL_KEY)
        try:
            self.shape_prior = ShapePrior.from_arrays(arrays)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise InputError(f"unusable shape prior ({exc})", path) from None
        self.figures = figures

    def _pass(
        self,
        sample: SurfaceSample,
        rng: np.random.Generator,
        centre: np.ndarray | None = None,
        coarse: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """One network pass: landmarks (68, 3), each one's top points (68, t, 3) and their heat (68, t),
        all in the sample's frame, and the normalisation scale (mm per unit). ``coarse`` decodes the wide
        heatmaps when the network has them."""
        net_input = network_input(sample.points, sample.normals, self.config, rng, centre)
        batch = {
            key: value.to(self.device) for key, value in to_batch([net_input], self.mean_landmarks).items()
        }
        with torch.inference_mode():
            heat = self.model(**batch)[0].float().cpu()
        n = self.config.network.n_landmarks
        heat = heat[n:] if coarse and self.config.network.coarse else heat[:n]
        points = torch.from_numpy(net_input.features[:, :3])
        estimate, _ = decode_heatmaps(heat[None], points[None], self.config.network.decode_top)
        values, indices = heat.topk(REFINE_TOP, dim=-1)

        def to_frame(x: torch.Tensor) -> np.ndarray:
            return x.numpy().astype(np.float64) * net_input.scale + net_input.centre

        return to_frame(estimate[0]), to_frame(points[indices]), values.numpy(), net_input.scale

    def __call__(
        self,
        mesh: Mesh,
        refine: str = DEFAULT_REFINE,
        units: str | None = None,
        seed: int = 0,
        offsets: ConventionOffsets | None = None,
        shape_prior: bool = True,
    ) -> MeshLandmarks:
        """The 68 landmarks of a scan; ``units`` (mm, cm, m, um, inch) overrides the size check;
        ``offsets`` move the points to another landmark convention (``facegraph.mesh.conventions``);
        ``shape_prior`` fuses the network's estimate with the weights' shape prior when they have one
        (``facegraph.mesh.shape_prior``)."""
        if offsets is not None and self.canonical_landmarks is None:
            raise InputError("convention offsets need weights with a canonical frame (facegraph-mesh)")
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        scan, notes = check_scan(mesh, units)
        to_mm = MM_PER_UNIT[scan.units]
        # Outlying vertices are left out of everything below; ``index`` maps the vertices searched back.
        searched, faces, index = scan.searched()
        vertices = searched * to_mm
        estimate, top_points, top_heat, scale = self.network_estimate(vertices, faces, seed, timings)
        if shape_prior and self.shape_prior is not None:
            start = time.perf_counter()
            fused = self.shape_prior.fuse(estimate)
            estimate, top_points = fused, top_points + (fused - estimate)[:, None, :]
            timings["shape prior"] = time.perf_counter() - start
        if offsets is not None:
            # Each landmark's whole heat profile moves with it, so profile matching agrees with the move.
            shift = offsets_in_frame(offsets, self.canonical_landmarks, estimate)
            estimate, top_points = estimate + shift, top_points + shift[:, None, :]
            origin = offsets.source or f"{offsets.n_scans} annotated scans"
            notes.append(f"moved by convention offsets from {origin}")
            if offsets.rules:
                moved, applied = apply_markup_rules(estimate, offsets.rules, vertices, faces)
                top_points = top_points + (moved - estimate)[:, None, :]
                estimate = moved
                notes.extend(applied)
        start = time.perf_counter()
        method = refine if faces is not None or refine == "none" else "euclidean"
        if method != refine:
            notes.append(f"a point cloud has no surface: refinement {refine!r} fell back to {method!r}")
        result = refine_landmarks(
            vertices, faces, estimate, top_points, top_heat, self.config.sigma * scale, method
        )
        timings["refine"] = time.perf_counter() - start
        timings["total"] = time.perf_counter() - clock
        found = index[result.vertex_indices]
        return MeshLandmarks(result.points / to_mm, found, result.method, notes, timings)

    def network_estimate(
        self, vertices: np.ndarray, faces: np.ndarray | None, seed: int = 0, timings: dict | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The network's landmarks (68, 3) of a scan in mm, before any prior, offsets or refinement, with
        the last pass's top points (68, t, 3), their heat (68, t) and its scale (mm per unit)."""
        timings = {} if timings is None else timings
        clock = time.perf_counter()
        rng = np.random.default_rng(seed)
        whole = self._sample(vertices, faces, self.config.n_points * DENSE_FACTOR, rng)
        timings["sample"] = time.perf_counter() - clock
        estimate, top_points, top_heat, scale = self._pass(whole, rng, coarse=self.config.two_pass)
        timings["first pass"] = time.perf_counter() - clock - timings["sample"]
        if not self.config.two_pass:
            return estimate, top_points, top_heat, scale
        start = time.perf_counter()
        estimates = []
        for i in range(SECOND_PASSES):
            rotation, shift = robust_rigid_fit(self.canonical_landmarks, estimate)
            # The dense sample turned onto the mean face and cut to the ball about it, as in training.
            points, normals = crop_to_ball(
                (whole.points - shift) @ rotation, whole.normals @ rotation, np.zeros(3), self.config
            )
            mirror = i in MIRRORED_PASSES
            if mirror:
                points, normals = points * MIRROR_X, normals * MIRROR_X
            sample = SurfaceSample(points, normals, None)
            estimate, top_points, top_heat, scale = self._pass(sample, rng, centre=np.zeros(3))
            if mirror:
                estimate, top_points = mirror_landmarks(estimate), mirror_landmarks(top_points)
                top_heat = top_heat[FLIP_ORDER]
            estimate, top_points = estimate @ rotation.T + shift, top_points @ rotation.T + shift
            estimates.append(estimate)
        timings["second pass"] = time.perf_counter() - start
        return np.mean(estimates, axis=0), top_points, top_heat, scale

    @staticmethod
    def _sample(
        vertices: np.ndarray, faces: np.ndarray | None, n: int, rng: np.random.Generator
    ) -> SurfaceSample:
        if faces is None:
            sample = sample_cloud(vertices, n, rng)
            return SurfaceSample(sample.points, orient_each_outwards(sample.points, sample.normals), None)
        sample = sample_surface(vertices, faces, n, rng)
        return SurfaceSample(sample.points, orient_outwards(sample.points, sample.normals), sample.face_ids)


_DEFAULT: MeshLandmarker | None = None


def landmark(
    mesh: Mesh | str | Path,
    refine: str = DEFAULT_REFINE,
    units: str | None = None,
    offsets: ConventionOffsets | None = None,
) -> Landmarks:
    """The 68 iBUG landmarks of a face mesh or point cloud (shipped weights), in its frame and units.

    ``mesh`` is a :class:`~facegraph.io.Mesh` or a mesh file's path; ``offsets`` (from
    :func:`facegraph.mesh.conventions.load_offsets`: ``"300w"`` or a file) move the points to another
    landmark convention.
    """
    global _DEFAULT
    if not isinstance(mesh, Mesh):
        mesh = read_mesh(mesh, normals=False)
    if _DEFAULT is None:
        _DEFAULT = MeshLandmarker()
    return _DEFAULT(mesh, refine=refine, units=units, offsets=offsets).to_landmarks()
