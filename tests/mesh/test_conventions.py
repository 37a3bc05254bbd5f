"""Convention offsets: fitted in the face's frame, stored as JSON, applied by the landmarker."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from facegraph.errors import InputError
from facegraph.geometry import pose_to_matrix
from facegraph.mesh import (
    ConventionOffsets,
    MeshLandmarker,
    fit_offsets,
    load_offsets,
    read_offsets,
    write_offsets,
)
from facegraph.mesh.conventions import face_rotation, offsets_in_frame
from facegraph.mesh.markup import MARKUP_RULES
from facegraph.mesh.preprocess import get_config
from facegraph.types import HeadPose
from tests.mesh.test_landmarker import TINY_NETWORK, head, tiny_weights

RNG = np.random.default_rng(5)
CANONICAL = RNG.normal(0.0, 30.0, (68, 3))
TRUE_OFFSETS = RNG.normal(0.0, 4.0, (68, 3))


def posed(points: np.ndarray, yaw: float, pitch: float, shift: float) -> np.ndarray:
    return points @ pose_to_matrix(HeadPose(yaw=yaw, pitch=pitch, roll=0.0)).T + shift


def test_fit_offsets_recovers_a_convention_seen_in_posed_scans():
    poses = [(-30.0, 5.0, 10.0), (0.0, -10.0, -40.0), (25.0, 15.0, 3.0)]
    predictions = np.stack([posed(CANONICAL, *p) for p in poses])
    truths = np.stack([posed(CANONICAL + TRUE_OFFSETS, *p) for p in poses])
    truths[0, :17] = np.nan  # one scan leaves the jaw unannotated
    truths[:, 60] = np.nan  # no scan annotates point 60
    fitted = fit_offsets(predictions, truths, CANONICAL, "three scans")
    expected = TRUE_OFFSETS.copy()
    expected[60] = 0.0
    np.testing.assert_allclose(fitted.offsets, expected, atol=1e-9)
    assert fitted.counts[0] == 2 and fitted.counts[30] == 3 and fitted.counts[60] == 0
    assert fitted.n_scans == 3 and fitted.source == "three scans"


def test_offsets_turn_with_the_face():
    points = posed(CANONICAL, 40.0, -20.0, 7.0)
    rotation = pose_to_matrix(HeadPose(yaw=40.0, pitch=-20.0, roll=0.0))
    np.testing.assert_allclose(face_rotation(CANONICAL, points), rotation, atol=1e-9)
    offsets = ConventionOffsets(TRUE_OFFSETS, np.ones(68, dtype=np.int64))
    np.testing.assert_allclose(offsets_in_frame(offsets, CANONICAL, points), TRUE_OFFSETS @ rotation.T)


def test_fit_offsets_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match=r"\(N, 68, 3\)"):
        fit_offsets(np.zeros((2, 68, 3)), np.zeros((2, 51, 3)), CANONICAL)


def test_offsets_round_trip_through_json(tmp_path):
    offsets = ConventionOffsets(np.round(TRUE_OFFSETS, 4), np.arange(68), "somewhere")
    path = tmp_path / "offsets.json"
    write_offsets(path, offsets)
    back = read_offsets(path)
    np.testing.assert_array_equal(back.offsets, offsets.offsets)
    np.testing.assert_array_equal(back.counts, offsets.counts)
    assert back.source == "somewhere"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not a JSON file"),
        (json.dumps({"scheme": "ibug68"}), "not a landmark offsets file"),
        (
            json.dumps({"format": "facegraph-landmark-offsets", "offsets_mm": [[0, 0, 0]], "counts": [1]}),
            "expected 68 offsets",
        ),
    ],
)
def test_read_offsets_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError, match=problem) as caught:
        read_offsets(path)
    assert caught.value.path == path


def test_the_landmarker_adds_the_offsets_in_the_scans_frame(tmp_path):
    landmarker = MeshLandmarker(tiny_weights(tmp_path / "tiny.safetensors"))
    mesh = head()
    plain = landmarker(mesh, refine="none")
    offsets = ConventionOffsets(TRUE_OFFSETS, np.full(68, 4))
    moved = landmarker(mesh, refine="none", offsets=offsets)
    rotation = face_rotation(landmarker.canonical_landmarks, plain.points)
    np.testing.assert_allclose(moved.points - plain.points, TRUE_OFFSETS @ rotation.T, atol=1e-6)
    assert "moved by convention offsets from 4 annotated scans" in moved.notes
    snapped = landmarker(mesh, offsets=offsets)
    np.testing.assert_allclose(np.linalg.norm(snapped.points, axis=1), 80.0, rtol=0.02)  # on the sphere


def test_offsets_need_weights_with_a_canonical_frame(tmp_path):
    config = replace(
        get_config("2s-sgcn-paper"), n_points=256, network=replace(TINY_NETWORK, global_branch="super")
    )
    mean = np.random.default_rng(0).uniform(-0.5, 0.5, (68, 3)).astype(np.float32)
    landmarker = MeshLandmarker(tiny_weights(tmp_path / "paper.safetensors", config, mean))
    with pytest.raises(InputError, match="canonical frame"):
        landmarker(head(), offsets=ConventionOffsets(TRUE_OFFSETS, np.ones(68, dtype=np.int64)))


def test_markup_rules_round_trip_and_older_files_have_none(tmp_path):
    path = tmp_path / "offsets.json"
    write_offsets(path, ConventionOffsets(TRUE_OFFSETS, np.ones(68, dtype=np.int64), "x", MARKUP_RULES))
    assert read_offsets(path).rules == MARKUP_RULES
    record = json.loads(path.read_text())
    del record["rules"]
    path.write_text(json.dumps(record))
    assert read_offsets(path).rules == ()


def test_an_unknown_markup_rule_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "offsets.json"
    write_offsets(path, ConventionOffsets(TRUE_OFFSETS, np.ones(68, dtype=np.int64)))
    record = json.loads(path.read_text())
    for rules in (["closed-mouth", "straight-brows"], "closed-mouth"):
        record["rules"] = rules
        path.write_text(json.dumps(record))
        with pytest.raises(InputError, match="rules must be a list of markup rules") as caught:
            read_offsets(path)
        assert caught.value.path == path


def test_both_shipped_conventions_apply_the_markup_rules():
    assert load_offsets("300w").rules == MARKUP_RULES and load_offsets("spiga").rules == MARKUP_RULES


def test_the_landmarker_gives_the_rules_the_scan_in_mm_and_answers_in_its_units(tmp_path, monkeypatch):
    import facegraph.mesh.landmarker as landmarker_module

    seen = {}

    def shift_up(points, rules, vertices, faces):
        seen.update(rules=rules, radius=np.linalg.norm(vertices, axis=1).max(), faces=faces)
        return points + [0.0, 5.0, 0.0], ["moved up"]

    monkeypatch.setattr(landmarker_module, "apply_markup_rules", shift_up)
    landmarker = MeshLandmarker(tiny_weights(tmp_path / "tiny.safetensors"))
    mm, cm = head(), head()
    cm = replace(cm, vertices=cm.vertices / 10.0)
    offsets = ConventionOffsets(TRUE_OFFSETS, np.full(68, 4), rules=("even-spacing",))
    plain = landmarker(cm, refine="none", units="cm", offsets=replace(offsets, rules=()))
    ruled = landmarker(cm, refine="none", units="cm", offsets=offsets)
    assert seen["rules"] == ("even-spacing",) and seen["radius"] == pytest.approx(80.0)
    np.testing.assert_allclose(ruled.points - plain.points, np.tile([0.0, 0.5, 0.0], (68, 1)), atol=1e-9)
    assert "moved up" in ruled.notes
    landmarker(mm, offsets=offsets)
    assert seen["faces"] is not None


def test_convention_offsets_refuse_an_unknown_rule_or_a_bare_name():
    with pytest.raises(ValueError, match="unknown markup rules"):
        ConventionOffsets(TRUE_OFFSETS, np.ones(68, dtype=np.int64), rules=("closed-mouths",))
    with pytest.raises(ValueError, match="a tuple of rule names, got the string"):
        ConventionOffsets(TRUE_OFFSETS, np.ones(68, dtype=np.int64), rules="closed-mouth")
