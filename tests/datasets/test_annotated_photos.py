"""A user's folder of annotated photos for fine-tuning: .pts, facegraph JSON and SPIGA lists, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegraph.datasets.annotated_photos import load_annotated_photos
from facegraph.datasets.face_crops import face_crop
from facegraph.errors import InputError
from facegraph.io.images import read_image
from facegraph.io.landmarks import write_json
from facegraph.types import Landmarks
from tests.datasets.test_faces68 import write_face


def face_points(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(10, 90, (68, 2))


def write_photo(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def mixed_folder(root: Path) -> dict[str, np.ndarray]:
    """A .pts photo, a facegraph-JSON photo and a SPIGA list of two faces on one photo in a subfolder."""
    faces = {"a.png": write_face(root / "a", seed=1)}
    write_photo(root / "b.png", seed=2)
    faces["b.png"] = face_points(2)
    write_json(root / "b.json", Landmarks(faces["b.png"], scheme="ibug68"))
    write_photo(root / "group" / "photos" / "c.png", seed=3)
    records = [
        {"imgpath": "photos/c.png", "landmarks": face_points(k).tolist(), "bbox": [0, 0, 1, 1]}
        for k in (4, 5)
    ]
    (root / "group" / "annotations.json").write_text(json.dumps(records))
    faces["group/photos/c.png#0"], faces["group/photos/c.png#1"] = face_points(4), face_points(5)
    return faces


def test_three_annotation_layouts_are_read_and_cut_like_the_training_crops(tmp_path: Path) -> None:
    faces = mixed_folder(tmp_path)

    data, skipped = load_annotated_photos(tmp_path, progress=False)

    assert skipped == [] and len(data) == 4
    assert sorted(data.groups.tolist()) == ["a.png", "b.png", "group/photos/c.png", "group/photos/c.png"]
    assert set(data.source) == {"user"}
    for name, points in faces.items():
        photo = name.split("#")[0]
        k = [i for i, g in enumerate(data.groups) if g == photo][
            int(name.split("#")[1]) if "#" in name else 0
        ]
        crop, crop_points = face_crop(read_image(tmp_path / photo), points)
        np.testing.assert_array_equal(data.crops[k], crop)
        np.testing.assert_allclose(data.points[k], crop_points)


def test_a_photo_without_an_annotation_stops_the_load_naming_it_unless_skipped(tmp_path: Path) -> None:
    mixed_folder(tmp_path)
    write_photo(tmp_path / "lonely.jpg")

    with pytest.raises(InputError, match="no annotation beside it") as error:
        load_annotated_photos(tmp_path, progress=False)
    assert error.value.path == tmp_path / "lonely.jpg"

    data, skipped = load_annotated_photos(tmp_path, skip_bad=True, progress=False)
    assert len(data) == 4
    assert [s.path for s in skipped] == [tmp_path / "lonely.jpg"]


def test_malformed_annotations_and_photos_are_named_and_skipped_on_request(tmp_path: Path) -> None:
    mixed_folder(tmp_path)
    write_face(tmp_path / "five", seed=7, n_points=5)
    write_face(tmp_path / "broken", seed=8)
    (tmp_path / "broken.png").write_bytes(b"not a photo")
    records = json.loads((tmp_path / "group" / "annotations.json").read_text())
    records.append({"imgpath": "photos/c.png", "landmarks": [[1, 2]] * 60})
    (tmp_path / "group" / "annotations.json").write_text(json.dumps(records))

    with pytest.raises(InputError):
        load_annotated_photos(tmp_path, progress=False)
    data, skipped = load_annotated_photos(tmp_path, skip_bad=True, progress=False)

    assert len(data) == 4
    problems = {s.path.name: s.problem for s in skipped}
    assert set(problems) == {"five.pts", "broken.png", "annotations.json"}
    assert "68" in problems["five.pts"]
    assert problems["annotations.json"].startswith("record 2 ")


def test_a_folder_with_no_usable_face_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no usable annotated faces"):
        load_annotated_photos(tmp_path, progress=False)
    with pytest.raises(InputError, match="folder not found"):
        load_annotated_photos(tmp_path / "absent", progress=False)
