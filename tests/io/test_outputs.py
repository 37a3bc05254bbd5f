"""The output policy: what a run may write, decided before any work."""

from __future__ import annotations

import os

import numpy as np
import pytest

from facegraph.errors import InputError
from facegraph.io import write_image, write_landmarks, write_mesh, write_points_ply
from facegraph.io.outputs import OutputPlan, written_by_facegraph
from facegraph.io.reports import write_report
from facegraph.types import Landmarks, Mesh


def refused(plan: OutputPlan, path, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        plan.file(path)


def test_every_writer_leaves_the_mark_the_policy_recognises(tmp_path):
    points = Landmarks(np.arange(68 * 3, dtype=float).reshape(68, 3), "ibug68")
    cube = Mesh(np.eye(3), np.array([[0, 1, 2]]))
    writers = {
        "r.json": lambda p: write_report(p, {"n": 1}),
        "l.json": lambda p: write_landmarks(p, points),
        "l.ljson": lambda p: write_landmarks(p, points),
        "l.pp": lambda p: write_landmarks(p, points),
        "m.obj": lambda p: write_mesh(p, cube),
        "m.ply": lambda p: write_mesh(p, cube),
        "p.ply": lambda p: write_points_ply(p, points.points),
        "a.png": lambda p: write_image(p, np.zeros((4, 4, 3), np.uint8)),
        "a.jpg": lambda p: write_image(p, np.zeros((4, 4, 3), np.uint8)),
    }
    for name, write in writers.items():
        write(tmp_path / name)
        assert written_by_facegraph(tmp_path / name), name
    (tmp_path / "user.json").write_text('{"generator": "someone else"}')
    assert not written_by_facegraph(tmp_path / "user.json")


def test_an_existing_file_is_replaced_only_when_facegraph_wrote_it_or_overwrite_is_given(tmp_path):
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    write_report(ours, {"n": 1})
    theirs.write_text("{}")
    plan = OutputPlan()
    plan.file(ours)
    refused(plan, theirs, "facegraph did not write it: pass --overwrite")
    OutputPlan(overwrite=True).file(theirs)
    (tmp_path / "t.csv").write_text("x,y\n")
    refused(OutputPlan(), tmp_path / "t.csv", "carry no mark")


def test_inputs_are_never_outputs_whatever_the_name_or_link(tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not really")
    (tmp_path / "link.jpg").symlink_to(photo)
    os.link(photo, tmp_path / "hard.jpg")
    for name in ("photo.jpg", "link.jpg", "hard.jpg"):
        refused(OutputPlan([photo], overwrite=True), tmp_path / name, "is an input of this run")
    data = tmp_path / "data"
    data.mkdir()
    (data / "report.json").write_text("{}")
    refused(OutputPlan(input_folders=[data], overwrite=True), data / "report.json", "is an input")


def test_an_annotation_beside_a_scan_or_photo_is_never_replaced(tmp_path):
    (tmp_path / "s.obj").write_text("v 0 0 0\n")
    write_report(tmp_path / "s.json", {"n": 1})  # even one facegraph wrote: eval mesh reads it
    (tmp_path / "p.jpg").write_bytes(b"jpg")
    (tmp_path / "p.pts").write_text("pts")
    for name, partner in (("s.json", "s.obj"), ("p.pts", "p.jpg")):
        refused(OutputPlan(overwrite=True), tmp_path / name, f"annotation beside {partner}")
    write_report(tmp_path / "p.json", {"n": 1})  # a photo's .json is no annotation
    OutputPlan().file(tmp_path / "p.json")


def test_paths_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    refused(OutputPlan(), afile / "out.json", "is a file, not a folder")
    refused(OutputPlan(), tmp_path / "missing" / "out.json", "the folder does not exist")
    refused(OutputPlan(), tmp_path, "is a folder")
    with pytest.raises(InputError, match="is a file, not a folder"):
        OutputPlan().folder(afile)
    plan = OutputPlan()
    plan.file(plan.folder(tmp_path / "new" / "deeper") / "out.json")  # created by the run
    assert not (tmp_path / "new").exists()


def test_two_outputs_of_one_run_may_not_share_a_path(tmp_path):
    plan = OutputPlan()
    plan.file(tmp_path / "a.json", "first.jpg")
    with pytest.raises(InputError, match=r"written twice \(for first.jpg and second.jpg\)"):
        plan.file(tmp_path / "a.json", "second.jpg")
