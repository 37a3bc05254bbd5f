"""Landmark conventions: per-landmark offsets that move the model's points to where a dataset puts them.

The shipped network places the 68 points where the Basel Face Model's 3DDFA landmark vertices sit.
Other annotations of "the same" points differ by millimetres, consistently: the Surrey Face Model's iBUG
mapping and menpo3d's annotated scan both put the inner brow ends (21, 22) several millimetres nearer
the midline and the nose bridge (27-29) several millimetres higher (benchmarks/RESULTS.md). Such a
difference is a constant offset per landmark in the face's own frame, so a few scans annotated the
target way are enough to learn it: :func:`fit_offsets` averages, per landmark, the error of the
predictions turned into the canonical frame (+Y up, +Z toward the viewer, mm), and the landmarker adds
the offsets back, turned into each scan's frame, before its refinement step puts the points on the
surface.

A convention may also name rules of the 68-point markup that no constant offset expresses
(:mod:`facegraph.mesh.markup`: inner lips where they meet when the lips meet; nose bridge, nostrils,
eyelids and outer lips evenly spaced); the landmarker applies them after the offsets.

The package ships two conventions, both with those rules: ``300w``, where 300-W's annotators put the
inner 51 points, learnt from its training photos against a 3DMM regressor's fits (``facegraph train
mesh-offsets --photos``), and ``spiga``, where SPIGA's published 3D mean face puts them (``facegraph
fit mesh-offsets --mean-face``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from facegraph.errors import InputError
from facegraph.geometry.rigid import robust_rigid_fit
from facegraph.io.atomic import write_atomic
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.mesh.markup import MARKUP_RULES, validate_rules

N_LANDMARKS = 68
FORMAT = "facegraph-landmark-offsets"
BUNDLED_CONVENTIONS = ("300w", "spiga")


@dataclass(frozen=True)
class ConventionOffsets:
    """Offsets (68, 3) in mm in the canonical frame, how many scans annotated each landmark (68,)
    (a landmark no scan annotated keeps a zero offset), a free-text note on where they came from, and
    the markup rules (``facegraph.mesh.markup.MARKUP_RULES``) applied after them."""

    offsets: np.ndarray
    counts: np.ndarray
    source: str = ""
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.rules, str):
            raise ValueError(f"rules must be a tuple of rule names, got the string {self.rules!r}")
        object.__setattr__(self, "rules", tuple(self.rules))
        validate_rules(self.rules)

    @property
    def n_scans(self) -> int:
        return int(self.counts.max(initial=0))


def face_rotation(canonical: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) turning the canonical frame into the frame of a scan's 68 landmarks."""
    rotation, _ = robust_rigid_fit(canonical, points)
    return rotation


def canonical_residuals(predictions: np.ndarray, truths: np.ndarray, canonical: np.ndarray) -> np.ndarray:
    """Errors truth - prediction (N, 68, 3) of scans, each turned into the canonical frame by the
    rotation of its predictions, as offsets and the shape prior see them."""
    return np.stack([(t - p) @ face_rotation(canonical, p) for p, t in zip(predictions, truths, strict=True)])


def fit_offsets(
    predictions: np.ndarray, truths: np.ndarray, canonical: np.ndarray, source: str = ""
) -> ConventionOffsets:
    """Per-landmark mean of (truth - prediction) in the canonical frame, over scans (N, 68, 3) in mm.

    Unannotated ground-truth points are NaN; each scan's frame comes from its predictions, as it will
    when the offsets are applied.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    truths = np.asarray(truths, dtype=np.float64)
    if predictions.shape != truths.shape or predictions.shape[1:] != (N_LANDMARKS, 3) or not len(truths):
        raise ValueError(f"need (N, 68, 3) predictions and truths, got {predictions.shape}, {truths.shape}")
    residuals = canonical_residuals(predictions, truths, canonical)
    annotated = np.isfinite(residuals).all(axis=2)
    counts = annotated.sum(axis=0)
    sums = np.where(annotated[..., None], residuals, 0.0).sum(axis=0)
    offsets = sums / np.maximum(counts, 1)[:, None]
    return ConventionOffsets(offsets, counts.astype(np.int64), source)


def offsets_in_frame(offsets: ConventionOffsets, canonical: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The offsets (68, 3) turned into the frame of a scan whose landmark estimates are ``points``."""
    return offsets.offsets @ face_rotation(canonical, points).T


def write_offsets(path: str | Path, offsets: ConventionOffsets) -> None:
    """Write offsets as JSON (atomically)."""
    record = {
        GENERATOR_KEY: GENERATOR,
        "format": FORMAT,
        "scheme": "ibug68",
        "frame": "canonical: +Y up, +Z toward the viewer, millimetres",
        "source": offsets.source,
        "offsets_mm": np.round(offsets.offsets, 4).tolist(),
        "counts": offsets.counts.tolist(),
        "rules": list(offsets.rules),
    }
    write_atomic(path, json.dumps(record, indent=1) + "\n")


def read_offsets(path: str | Path) -> ConventionOffsets:
    """Read offsets written by :func:`write_offsets` (``facegraph fit mesh-offsets``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("offsets file not found", path)
    try:
        record = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a JSON file ({exc})", path) from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f'not a landmark offsets file (expected "format": "{FORMAT}")', path)
    try:
        offsets = np.asarray(record["offsets_mm"], dtype=np.float64)
        counts = np.asarray(record["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"offsets_mm and counts must be numbers ({exc})", path) from exc
    if offsets.shape != (N_LANDMARKS, 3) or counts.shape != (N_LANDMARKS,):
        raise InputError(f"expected 68 offsets of 3 numbers and 68 counts, got {offsets.shape}", path)
    if not np.isfinite(offsets).all():
        raise InputError("offsets must be finite", path)
    rules = record.get("rules", [])
    if not isinstance(rules, list) or not all(rule in MARKUP_RULES for rule in rules):
        known = ", ".join(MARKUP_RULES)
        raise InputError(f"rules must be a list of markup rules ({known}), got {rules!r}", path)
    return ConventionOffsets(offsets, counts, str(record.get("source", "")), tuple(rules))


def load_offsets(name_or_path: str | Path) -> ConventionOffsets:
    """A shipped convention by name (``BUNDLED_CONVENTIONS``, before any file of that name) or an
    offsets file."""
    if str(name_or_path) in BUNDLED_CONVENTIONS:
        shipped = resources.files("facegraph") / "data" / "conventions" / f"{name_or_path}.json"
        return read_offsets(Path(str(shipped)))
    if not Path(name_or_path).is_file():
        known = ", ".join(BUNDLED_CONVENTIONS)
        raise InputError(f"offsets file not found (shipped conventions: {known})", name_or_path)
    return read_offsets(name_or_path)


def load_convention(offsets: str | Path | None, markup_rules: bool | None = None) -> ConventionOffsets | None:
    """The convention ``offsets`` names (None: the network's own), its markup rules switched on or off
    by ``markup_rules`` when given."""
    if not offsets:
        if markup_rules is not None:
            raise InputError(
                "--markup-rules and --no-markup-rules need --offsets (rules follow a convention)"
            )
        return None
    convention = load_offsets(offsets)
    if markup_rules is None:
        return convention
    return replace(convention, rules=MARKUP_RULES if markup_rules else ())
