"""Landmark files: iBUG ``.pts``, menpo ``.ljson``, MeshLab ``.pp``, the project's JSON, and CSV.

Every reader returns a :class:`~facegraph.types.Landmarks` in the project's frame (photo pixels with
(0, 0) the centre of the top-left pixel, x right and y down; or mesh units), every writer takes one.
The scheme comes from the file where the format records it, else from the argument, else from the point
count (68 ibug68, 98 wflw98, 21 aflw21, 51 ibug51, 5 five).

Format notes (the facts each reader and writer relies on):

* ``.pts`` stores 1-based pixel coordinates: 1 is subtracted on reading and added on writing. It is 2D
  and has no notion of visibility; non-finite coordinates are written as ``nan`` and read as invisible.
* ``.ljson`` (menpo / landmarker.io) stores 2D points as (y, x), row then column, and 3D points as
  (x, y, z); missing points are ``null`` and read as invisible NaN. Versions 1 (a list of groups, one
  dict per point), 2 (``landmarks`` + ``labels``) and 3 (a dict of named groups) are read; version 2 is
  written. When a group's labels name the iBUG regions, the points are assembled in iBUG order from the
  labels' masks, whatever the file order. Menpo names the regions by image side: its ``left_eye`` /
  ``leye`` is the eye on the image's left, the subject's right eye, iBUG 36-41 (in menpo3d's james.ljson
  the ``leye`` group has x about -46 and ``reye`` about +20, with the jaw running from -x to +x like
  iBUG 0-16). The same holds for the eyebrows (``left_eyebrow`` / ``leyebrow`` is iBUG 17-21).
* ``.pp`` (MeshLab PickedPoints) is 3D; points are kept in file order (names are not used for ordering
  and are written as "0", "1", ...); ``active="0"`` marks an invisible point. Non-finite coordinates are
  written as 0 with ``active="0"``, since MeshLab cannot read NaN.
* Project JSON is ``{"scheme", "points", "visible"?, "confidence"?}``; CSV has the header
  ``x,y[,z][,visible][,confidence]``. In both, a point without coordinates (``null``, empty cell) must be
  marked invisible.
* SPIGA's 3D mean face (``models3D/mean_face_3D_68.txt``, read by :func:`read_spiga_mean_face`, not by
  suffix) has one ``id|x|y|z`` line per point, x toward the subject's left, y up, z toward the viewer,
  nose tip at the origin, in units of about 10 cm. Its ids are SPIGA's own; its lines run jaw (iBUG
  0-16), right eye (36-41), left eye (42-47), right brow (17-21), nose (27-35), left brow (22-26), mouth
  (48-67), each region in iBUG order.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facegraph.errors import InputError
from facegraph.io.atomic import write_atomic
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY
from facegraph.schemes import get_scheme, list_schemes
from facegraph.types import Landmarks

SCHEME_SIZES: dict[str, int] = {name: get_scheme(name).n_points for name in list_schemes()}
"""Point count of each registered scheme: the readers recognise these on their own."""

_SCHEME_BY_COUNT = {n: name for name, n in SCHEME_SIZES.items()}

# Region layouts that .ljson label groups are assembled from, in scheme order. Region names follow
# menpo's image-side convention (see the module docstring).
_IBUG68_REGIONS = (
    ("jaw", 17),
    ("left_eyebrow", 5),
    ("right_eyebrow", 5),
    ("nose", 9),
    ("left_eye", 6),
    ("right_eye", 6),
    ("mouth", 20),
)
_REGION_LAYOUTS: dict[str, tuple[tuple[str, int], ...]] = {
    "ibug68": _IBUG68_REGIONS,
    "ibug51": _IBUG68_REGIONS[1:],
    "five": (("left_eye", 1), ("right_eye", 1), ("nose", 1), ("mouth", 2)),
}
_REGION_ALIASES = {
    "jaw": "jaw",
    "chin": "jaw",
    "jawline": "jaw",
    "leyebrow": "left_eyebrow",
    "lefteyebrow": "left_eyebrow",
    "reyebrow": "right_eyebrow",
    "righteyebrow": "right_eyebrow",
    "nose": "nose",
    "leye": "left_eye",
    "lefteye": "left_eye",
    "reye": "right_eye",
    "righteye": "right_eye",
    "mouth": "mouth",
}


def _scheme_for(n: int, scheme: str | None, path: Path) -> str:
    """The scheme for ``n`` points: the given one (checked), else the one with that many points.

    A given name outside :data:`SCHEME_SIZES` is accepted with any count: the caller vouches for it (a
    scheme registered elsewhere in facegraph).
    """
    if scheme is not None:
        expected = SCHEME_SIZES.get(scheme)
        if expected is not None and n != expected:
            raise InputError(f"{n} points, but scheme {scheme!r} has {expected}", path)
        return scheme
    if n not in _SCHEME_BY_COUNT:
        known = ", ".join(f"{k} ({v})" for k, v in SCHEME_SIZES.items())
        raise InputError(f"{n} points match no known scheme ({known}); pass the scheme explicitly", path)
    return _SCHEME_BY_COUNT[n]


def _fmt(value: float) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(value))


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a file", path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("not a text file (it is not UTF-8)", path) from exc
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path) from exc
    if not text.strip():
        raise InputError("the file is empty", path)
    return text


def _read_json(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", path) from exc
    except RecursionError as exc:
        raise InputError("malformed JSON: nested too deeply", path) from exc


def _number(value: Any) -> float | None:
    """A JSON coordinate as a float (None for null); raises TypeError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError
    return float(value)


def _points_array(rows: Any, path: Path, where: str) -> np.ndarray:
    """(N, 2|3) float array from a JSON list of coordinate lists; null becomes NaN."""
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{where} must be a non-empty list of points", path)
    dims = {len(r) if isinstance(r, list) else -1 for r in rows}
    if len(dims) != 1 or dims.pop() not in (2, 3):
        raise InputError(f"{where}: every point must be a list of 2 or 3 numbers, all the same length", path)
    try:
        values = [[_number(v) for v in row] for row in rows]
    except TypeError:
        raise InputError(f"{where}: coordinates must be numbers (or null)", path) from None
    return np.array([[math.nan if v is None else v for v in row] for row in values], dtype=np.float64)


def _require_finite_if_visible(points: np.ndarray, visible: np.ndarray, path: Path) -> None:
    bad = np.flatnonzero(visible & ~np.isfinite(points).all(axis=1))
    if bad.size:
        raise InputError(
            f"point {int(bad[0])} has no valid coordinates but is marked visible "
            "(mark missing points invisible)",
            path,
        )


# --- iBUG .pts ---------------------------------------------------------------------------------------


def read_pts(path: str | Path, scheme: str | None = None) -> Landmarks:
    """Read an iBUG ``.pts`` file (1-based pixels) into 0-based 2D landmarks."""
    path = Path(path)
    lines = _read_text(path).splitlines()
    header: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].strip() != "{":
        line = lines[i].strip()
        if line:
            key, sep, value = line.partition(":")
            if not sep:
                raise InputError(f"line {i + 1}: expected 'key: value' or '{{' in the header", path)
            header[key.strip().lower()] = value.strip()
        i += 1
    if i == len(lines):
        raise InputError("no '{' line opening the points", path)
    try:
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "}")
    except StopIteration:
        raise InputError("no '}' line closing the points", path) from None
    rows = []
    for j in range(i + 1, end):
        fields = lines[j].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise InputError(f"line {j + 1}: expected two numbers 'x y', got {lines[j].strip()!r}", path)
        try:
            rows.append([float(fields[0]), float(fields[1])])
        except ValueError:
            raise InputError(f"line {j + 1}: not a number in {lines[j].strip()!r}", path) from None
    if not rows:
        raise InputError("no points between '{' and '}'", path)
    if "n_points" in header:
        try:
            declared = int(header["n_points"])
        except ValueError:
            raise InputError(f"n_points is not a whole number: {header['n_points']!r}", path) from None
        if declared != len(rows):
            raise InputError(f"n_points says {declared} but the file has {len(rows)} points", path)
    points = np.array(rows, dtype=np.float64) - 1.0
    visible = np.isfinite(points).all(axis=1)
    return Landmarks(points, scheme=_scheme_for(len(points), scheme, path), visible=visible)


def write_pts(path: str | Path, landmarks: Landmarks) -> None:
    """Write 2D landmarks as an iBUG ``.pts`` file (1-based pixels)."""
    path = Path(path)
    if landmarks.dim != 2:
        raise InputError(".pts holds 2D points only; use .pp, .ljson, .json or .csv for 3D", path)
    lines = ["version: 1", f"n_points: {landmarks.n_points}", "{"]
    lines += [f"{_fmt(x + 1.0)} {_fmt(y + 1.0)}" for x, y in landmarks.points]
    lines.append("}")
    write_atomic(path, "\n".join(lines) + "\n")


# --- menpo .ljson ------------------------------------------------------------------------------------


def _region_key(label: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def _ljson_groups(data: Any, path: Path) -> list[tuple[str, np.ndarray, list[tuple[str, list[int]]]]]:
    """The (name, raw points, [(label, mask)]) groups of any supported .ljson version."""
    if not isinstance(data, dict):
        raise InputError("not a menpo .ljson file (the top level is not an object)", path)
    version = data.get("version")
    groups = data.get("groups")
    if version not in (None, 1, 2, 3):
        raise InputError(f"unsupported .ljson version {version!r} (supported: 1, 2, 3)", path)
    if version == 1 or (version is None and isinstance(groups, list)):
        return [_ljson_v1(groups, path)]
    if version == 3 or (version is None and isinstance(groups, dict)):
        if not isinstance(groups, dict) or not groups:
            raise InputError("version 3 .ljson needs a non-empty 'groups' object", path)
        return [_ljson_v2_group(str(name), g, path) for name, g in groups.items()]
    if "landmarks" not in data:
        raise InputError("not a menpo .ljson file (no 'landmarks' or 'groups')", path)
    return [_ljson_v2_group("landmarks", data, path)]


def _ljson_v1(groups: Any, path: Path) -> tuple[str, np.ndarray, list[tuple[str, list[int]]]]:
    """Version 1: a list of labelled groups, each a list of ``{"point": [...]}``; concatenated."""
    if not isinstance(groups, list) or not groups:
        raise InputError("version 1 .ljson needs a non-empty 'groups' list", path)
    rows: list[Any] = []
    labels = []
    for group in groups:
        points = group.get("landmarks") if isinstance(group, dict) else None
        if not isinstance(points, list) or not all(isinstance(p, dict) and "point" in p for p in points):
            raise InputError("version 1 .ljson groups need 'landmarks': [{'point': [...]}, ...]", path)
        labels.append((str(group.get("label", "")), list(range(len(rows), len(rows) + len(points)))))
        rows += [p["point"] for p in points]
    return "groups", _points_array(rows, path, "groups"), labels


def _ljson_v2_group(name: str, group: Any, path: Path) -> tuple[str, np.ndarray, list[tuple[str, list[int]]]]:
    """One ``{"landmarks": {"points": ...}, "labels": [...]}`` block (all of v2, one group of v3)."""
    lms = group.get("landmarks") if isinstance(group, dict) else None
    if not isinstance(lms, dict) or "points" not in lms:
        raise InputError(f"group {name!r} has no 'landmarks': {{'points': [...]}}", path)
    points = _points_array(lms["points"], path, f"group {name!r} points")
    labels = []
    raw_labels = group.get("labels") or []
    if not isinstance(raw_labels, list):
        raise InputError(f"group {name!r}: 'labels' must be a list", path)
    for entry in raw_labels:
        mask = entry.get("mask") if isinstance(entry, dict) else None
        ok = isinstance(mask, list) and all(
            isinstance(k, int) and not isinstance(k, bool) and 0 <= k < len(points) for k in mask
        )
        if not ok:
            raise InputError(f"group {name!r}: each label needs a 'mask' of point indices in range", path)
        labels.append((str(entry.get("label", "")), mask))
    return name, points, labels


def _assemble(labels: list[tuple[str, list[int]]], scheme: str) -> list[int] | None:
    """Point indices in ``scheme`` order from labelled regions, or None when the labels do not fit.

    Every label must be one of the scheme's regions, so a region we do not recognise is never dropped.
    """
    layout = _REGION_LAYOUTS.get(scheme, ((scheme, SCHEME_SIZES.get(scheme)),))
    wanted = {region for region, _ in layout}
    by_region: dict[str, list[int]] = {}
    for label, mask in labels:
        key = _region_key(label)
        region = _REGION_ALIASES.get(key) or (scheme if key == _region_key(scheme) else None)
        if region not in wanted or region in by_region:
            return None
        by_region[region] = mask
    order: list[int] = []
    for region, count in layout:
        mask = by_region.get(region)
        if mask is None or (count is not None and len(mask) != count):
            return None
        order += mask
    return order if len(set(order)) == len(order) else None


def read_ljson(path: str | Path, scheme: str | None = None) -> Landmarks:
    """Read a menpo ``.ljson``, reordering labelled regions into the scheme's order."""
    path = Path(path)
    groups = _ljson_groups(_read_json(path), path)
    candidates = [scheme] if scheme is not None else list(SCHEME_SIZES)
    chosen: tuple[np.ndarray, str] | None = None
    for _, raw, labels in groups:
        for name in candidates:
            order = _assemble(labels, name)
            if order is not None:
                chosen = (raw[order], name)
                break
        if chosen is not None:
            break
    if chosen is None:
        for _, raw, _labels in groups:
            n = len(raw)
            fits = SCHEME_SIZES.get(scheme, n) == n if scheme is not None else n in _SCHEME_BY_COUNT
            if fits:
                chosen = (raw, _scheme_for(n, scheme, path))
                break
    if chosen is None:
        summary = "; ".join(
            f"{name!r}: {len(raw)} points, labels {[lab for lab, _ in labels]}"
            for name, raw, labels in groups
        )
        target = f"scheme {scheme!r}" if scheme is not None else "a known scheme"
        raise InputError(f"cannot map the landmark groups to {target} ({summary})", path)
    raw, name = chosen
    points = raw[:, ::-1].copy() if raw.shape[1] == 2 else raw.copy()
    return Landmarks(points, scheme=name, visible=np.isfinite(points).all(axis=1))


def _ljson_labels(scheme: str, n: int) -> list[dict[str, Any]]:
    layout = _REGION_LAYOUTS.get(scheme)
    if layout is None or sum(count for _, count in layout) != n:
        return [{"label": scheme, "mask": list(range(n))}]
    labels, start = [], 0
    for region, count in layout:
        labels.append({"label": region, "mask": list(range(start, start + count))})
        start += count
    return labels


def write_ljson(path: str | Path, landmarks: Landmarks) -> None:
    """Write a version 2 menpo ``.ljson`` with the scheme's regions as labels, in scheme order.

    Invisible points are written as nulls, menpo's marker for a missing point.
    """
    pts = landmarks.points if landmarks.dim == 3 else landmarks.points[:, ::-1]
    ok = landmarks.visible & np.isfinite(pts).all(axis=1)
    rows = [
        [float(v) for v in p] if keep else [None] * landmarks.dim for p, keep in zip(pts, ok, strict=True)
    ]
    doc = {
        GENERATOR_KEY: GENERATOR,
        "version": 2,
        "landmarks": {"points": rows, "connectivity": []},
        "labels": _ljson_labels(landmarks.scheme, landmarks.n_points),
    }
    write_atomic(path, json.dumps(doc, indent=1) + "\n")


# --- MeshLab .pp -------------------------------------------------------------------------------------


def read_pp(path: str | Path, scheme: str | None = None) -> Landmarks:
    """Read MeshLab PickedPoints (3D) in file order; ``active="0"`` points are invisible."""
    path = Path(path)
    text = _read_text(path)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"malformed XML: {exc}", path) from exc
    if root.tag != "PickedPoints":
        raise InputError(f"not a MeshLab PickedPoints file (root element <{root.tag}>)", path)
    rows, visible = [], []
    for k, node in enumerate(root.iter("point")):
        try:
            rows.append([float(node.attrib[axis]) for axis in ("x", "y", "z")])
        except KeyError as exc:
            raise InputError(f"point {k} has no {exc.args[0]!r} attribute", path) from None
        except ValueError:
            raise InputError(f"point {k} has a coordinate that is not a number", path) from None
        visible.append(node.attrib.get("active", "1").strip() != "0")
    if not rows:
        raise InputError("no <point> elements", path)
    points = np.array(rows, dtype=np.float64)
    vis = np.array(visible) & np.isfinite(points).all(axis=1)
    return Landmarks(points, scheme=_scheme_for(len(points), scheme, path), visible=vis)


def write_pp(path: str | Path, landmarks: Landmarks) -> None:
    """Write 3D landmarks as MeshLab PickedPoints, named "0", "1", ... in order."""
    path = Path(path)
    if landmarks.dim != 3:
        raise InputError(".pp holds 3D points only; use .pts, .ljson, .json or .csv for 2D", path)
    lines = ["<!DOCTYPE PickedPoints>", f"<!-- {GENERATOR_KEY} {GENERATOR} -->", "<PickedPoints>"]
    for k, (p, vis) in enumerate(zip(landmarks.points, landmarks.visible, strict=True)):
        finite = bool(np.isfinite(p).all())
        x, y, z = (_fmt(v) for v in p) if finite else ("0", "0", "0")
        active = "1" if vis and finite else "0"
        lines.append(f' <point x="{x}" y="{y}" z="{z}" active="{active}" name="{k}"/>')
    lines.append("</PickedPoints>")
    write_atomic(path, "\n".join(lines) + "\n")


# --- project JSON ------------------------------------------------------------------------------------


def _flags(values: Any, n: int, path: Path, where: str) -> np.ndarray:
    if not isinstance(values, list) or len(values) != n or not all(isinstance(v, bool) for v in values):
        raise InputError(f"{where} must be a list of {n} true/false values", path)
    return np.array(values, dtype=bool)


def _confidences(values: Any, n: int, path: Path) -> np.ndarray:
    try:
        ok = isinstance(values, list) and len(values) == n and all(0 <= _number(v) <= 1 for v in values)
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"'confidence' must be a list of {n} numbers in [0, 1]", path)
    return np.array(values, dtype=np.float64)


def read_json(path: str | Path, scheme: str | None = None) -> Landmarks:
    """Read the project's landmark JSON, validating scheme, count, visibility and confidence."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or "points" not in data:
        raise InputError("expected an object with 'scheme' and 'points'", path)
    points = _points_array(data["points"], path, "'points'")
    n = len(points)
    file_scheme = data.get("scheme")
    if file_scheme is not None:
        if not isinstance(file_scheme, str) or file_scheme not in SCHEME_SIZES:
            raise InputError(f"unknown scheme {file_scheme!r} (known: {', '.join(SCHEME_SIZES)})", path)
        if scheme is not None and scheme != file_scheme:
            raise InputError(f"the file's scheme is {file_scheme!r}, not {scheme!r} as asked", path)
    name = _scheme_for(n, file_scheme or scheme, path)
    visible = np.ones(n, dtype=bool)
    if data.get("visible") is not None:
        visible = _flags(data["visible"], n, path, "'visible'")
    _require_finite_if_visible(points, visible, path)
    confidence = None
    if data.get("confidence") is not None:
        confidence = _confidences(data["confidence"], n, path)
    return Landmarks(points, scheme=name, visible=visible, confidence=confidence)


def write_json(path: str | Path, landmarks: Landmarks) -> None:
    """Write the project's landmark JSON (non-finite coordinates become null)."""
    rows = [json.dumps([float(v) if math.isfinite(v) else None for v in p]) for p in landmarks.points]
    parts = [
        f'  "{GENERATOR_KEY}": {json.dumps(GENERATOR)}',
        f'  "scheme": {json.dumps(landmarks.scheme)}',
        '  "points": [\n    ' + ",\n    ".join(rows) + "\n  ]",
        f'  "visible": {json.dumps([bool(v) for v in landmarks.visible])}',
    ]
    if landmarks.confidence is not None:
        parts.append(f'  "confidence": {json.dumps([float(c) for c in landmarks.confidence])}')
    write_atomic(path, "{\n" + ",\n".join(parts) + "\n}\n")


# --- CSV ---------------------------------------------------------------------------------------------

_CSV_COLUMNS = ("x", "y", "z", "visible", "confidence")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def read_csv(path: str | Path, scheme: str | None = None) -> Landmarks:
    """Read landmarks from CSV with a header ``x,y[,z][,visible][,confidence]``, one row per point."""
    path = Path(path)
    try:
        table = list(csv.reader(io.StringIO(_read_text(path))))
    except csv.Error as exc:
        raise InputError(f"malformed CSV: {exc}", path) from exc
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise InputError("no header row", path)
    header = [cell.strip().lower() for cell in table[0]]
    unknown = [c for c in header if c not in _CSV_COLUMNS]
    if unknown or "x" not in header or "y" not in header or len(set(header)) != len(header):
        raise InputError(f"the header must name columns x,y[,z][,visible][,confidence], got {table[0]}", path)
    body = table[1:]
    if not body:
        raise InputError("no point rows after the header", path)
    coords = [c for c in ("x", "y", "z") if c in header]
    col = {name: header.index(name) for name in header}
    points = np.full((len(body), len(coords)), math.nan)
    visible = np.ones(len(body), dtype=bool)
    confidence = np.ones(len(body)) if "confidence" in col else None
    for r, row in enumerate(body):
        line = r + 2
        if len(row) != len(header):
            raise InputError(f"row {line} has {len(row)} cells, the header has {len(header)}", path)
        try:
            for c, name in enumerate(coords):
                cell = row[col[name]].strip()
                points[r, c] = float(cell) if cell else math.nan
            if confidence is not None:
                confidence[r] = float(row[col["confidence"]])
        except ValueError:
            raise InputError(f"row {line}: a value is not a number", path) from None
        if "visible" in col:
            flag = row[col["visible"]].strip().lower()
            if flag not in _TRUE | _FALSE:
                raise InputError(f"row {line}: visible must be 1/0 or true/false, got {flag!r}", path)
            visible[r] = flag in _TRUE
    _require_finite_if_visible(points, visible, path)
    if confidence is not None and not (np.isfinite(confidence) & (confidence >= 0) & (confidence <= 1)).all():
        raise InputError("confidence values must be numbers in [0, 1]", path)
    return Landmarks(
        points, scheme=_scheme_for(len(points), scheme, path), visible=visible, confidence=confidence
    )


def write_csv(path: str | Path, landmarks: Landmarks) -> None:
    """Write landmarks as CSV with a header ``x,y[,z],visible[,confidence]``; NaN becomes an empty cell."""
    header = ["x", "y", "z"][: landmarks.dim] + ["visible"]
    if landmarks.confidence is not None:
        header.append("confidence")
    lines = [",".join(header)]
    for k, p in enumerate(landmarks.points):
        cells = [_fmt(v) if math.isfinite(v) else "" for v in p]
        cells.append("1" if landmarks.visible[k] else "0")
        if landmarks.confidence is not None:
            cells.append(_fmt(landmarks.confidence[k]))
        lines.append(",".join(cells))
    write_atomic(path, "\n".join(lines) + "\n")


# --- dispatch ----------------------------------------------------------------------------------------

_READERS: dict[str, Callable[[Path, str | None], Landmarks]] = {
    ".pts": read_pts,
    ".ljson": read_ljson,
    ".pp": read_pp,
    ".json": read_json,
    ".csv": read_csv,
}
_WRITERS: dict[str, Callable[[Path, Landmarks], None]] = {
    ".pts": write_pts,
    ".ljson": write_ljson,
    ".pp": write_pp,
    ".json": write_json,
    ".csv": write_csv,
}


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise InputError(f"unknown landmark format {path.suffix!r} (supported: {', '.join(_READERS)})", path)
    return suffix


def read_landmarks(path: str | Path, scheme: str | None = None) -> Landmarks:
    """Read a landmark file, choosing the reader by suffix (.pts, .ljson, .pp, .json, .csv)."""
    path = Path(path)
    return _READERS[_suffix(path)](path, scheme)


def write_landmarks(path: str | Path, landmarks: Landmarks) -> None:
    """Write a landmark file atomically, choosing the writer by suffix (.pts, .ljson, .pp, .json, .csv)."""
    path = Path(path)
    _WRITERS[_suffix(path)](path, landmarks)


# --- SPIGA's 3D mean face ----------------------------------------------------------------------------
# The iBUG index of each line of SPIGA's mean_face_3D_68.txt, in file order.
SPIGA_MEAN_FACE_ORDER = (
    *range(17),
    *range(36, 48),
    *range(17, 22),
    *range(27, 36),
    *range(22, 27),
    *range(48, 68),
)


def read_spiga_mean_face(path: str | Path) -> np.ndarray:
    """SPIGA's 3D mean face (``id|x|y|z`` lines) as (68, 3) points in iBUG order, in the file's units."""
    path = Path(path)
    lines = [line for line in _read_text(path).splitlines() if line.strip()]
    if len(lines) != len(SPIGA_MEAN_FACE_ORDER):
        raise InputError(f"not SPIGA's 68-point mean face (need 68 'id|x|y|z' lines, got {len(lines)})", path)
    points = np.empty((len(lines), 3))
    for number, line in enumerate(lines, start=1):
        fields = line.split("|")
        try:
            values = [float(v) for v in fields[1:]] if len(fields) == 4 else None
        except ValueError:
            values = None
        if values is None:
            raise InputError(f"not SPIGA's 68-point mean face (line {number} is not 'id|x|y|z')", path)
        points[number - 1] = values
    if not np.isfinite(points).all():
        raise InputError("SPIGA's mean face must have finite coordinates", path)
    ordered = np.empty_like(points)
    ordered[list(SPIGA_MEAN_FACE_ORDER)] = points
    return ordered
