"""68-point photo benchmarks: iBUG-style folders and SPIGA annotation files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegraph.datasets import load_faces68
from facegraph.datasets.faces68 import DEFAULT_NORMS
from facegraph.errors import InputError
from facegraph.metrics.pose import pose_mae
from tests.conftest import shared


def write_pts(path: Path, points_1based: np.ndarray) -> None:
    rows = "\n".join(f"{x} {y}" for x, y in points_1based)
    path.write_text(f"version: 1\nn_points: {len(points_1based)}\n{{\n{rows}\n}}\n")


def write_face(path: Path, seed: int, n_points: int = 68, photo: bool = True) -> np.ndarray:
    """A .pts (and a small photo) at ``path`` (no suffix); returns the points as 0-based pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    points = np.random.default_rng(seed).integers(10, 90, (n_points, 2)).astype(np.float64)
    write_pts(path.with_suffix(".pts"), points)
    if photo:
        Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(path.with_suffix(".png"))
    return points - 1


def test_ibug_folder_reads_points_zero_based_with_subsets_named_after_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "300w"
    expected = [
        write_face(root / "afw" / "1", seed=0),
        write_face(root / "helen" / "a", seed=1),
        write_face(root / "helen" / "b", seed=2),
        write_face(root / "loose", seed=3),
    ]

    data = load_faces68(root)

    assert data.name == "300w"
    assert len(data) == 4
    assert data.photos == [root / "afw/1.png", root / "helen/a.png", root / "helen/b.png", root / "loose.png"]
    np.testing.assert_array_equal(data.landmarks, np.stack(expected))
    assert data.visible.shape == (4, 68) and data.visible.all()
    assert data.boxes is None
    assert {name: idx.tolist() for name, idx in data.subsets.items()} == {"afw": [0], "helen": [1, 2]}
    assert data.norms == DEFAULT_NORMS


def test_pts_without_a_photo_is_named(tmp_path: Path) -> None:
    write_face(tmp_path / "afw" / "1", seed=0)
    write_face(tmp_path / "afw" / "2", seed=1, photo=False)
    with pytest.raises(InputError, match="no photo beside it") as error:
        load_faces68(tmp_path)
    assert error.value.path == tmp_path / "afw" / "2.pts"


def test_pts_with_five_points_is_rejected(tmp_path: Path) -> None:
    write_face(tmp_path / "five", seed=0, n_points=5)
    with pytest.raises(InputError, match="expected 68 points, found 5") as error:
        load_faces68(tmp_path)
    assert error.value.path == tmp_path / "five.pts"


def test_folder_without_pts_or_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no .pts files"):
        load_faces68(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_faces68(tmp_path / "absent")


def write_spiga(folder: Path, with_info: bool = True, headpose: bool = False) -> list[dict]:
    """A two-face SPIGA test.json (photos under images/test/ relative to --images) and db_info.json;
    with ``headpose``, SPIGA's pose field (yaw, pitch, roll in its signs, then a translation)."""
    rng = np.random.default_rng(0)
    records = [
        {
            "imgpath": f"images/test/{i}.jpg",
            "bbox": [10.0 + i, 20.0, 50.0, 60.0],
            "landmarks": rng.uniform(0, 100, (68, 2)).tolist(),
            "visible": [1] * 60 + [0] * 8,
            **({"headpose": [10.0 * (i + 1), -5.0, 3.0 * i, 0.1, 0.0, 3.0]} if headpose else {}),
        }
        for i in range(2)
    ]
    folder.mkdir(parents=True)
    (folder / "test.json").write_text(json.dumps(records))
    if with_info:
        info = {"norm": {"corners": 8, "pupils": 6, "height": 4}, "test_subsets": {"a": [1], "b": [0, 1]}}
        (folder / "db_info.json").write_text(json.dumps(info))
    return records


def write_photos(root: Path, records: list[dict]) -> None:
    for record in records:
        (root / record["imgpath"]).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(root / record["imgpath"])


@pytest.mark.parametrize("target", ["folder", "test.json"])
def test_spiga_annotations_read_boxes_subsets_and_norms(tmp_path: Path, target: str) -> None:
    records = write_spiga(tmp_path / "300wpublic")
    write_photos(tmp_path / "photos", records)
    data_path = tmp_path / "300wpublic" if target == "folder" else tmp_path / "300wpublic" / "test.json"

    data = load_faces68(data_path, images=tmp_path / "photos")

    assert data.name == "300wpublic"
    assert data.photos == [tmp_path / "photos" / r["imgpath"] for r in records]
    np.testing.assert_array_equal(data.landmarks, np.array([r["landmarks"] for r in records]))
    assert data.visible[0].tolist() == [True] * 60 + [False] * 8
    np.testing.assert_array_equal(data.boxes, [[10, 20, 60, 80], [11, 20, 61, 80]])
    assert {name: idx.tolist() for name, idx in data.subsets.items()} == {"a": [1], "b": [0, 1]}
    assert data.norms == {"corners": 8.0, "pupils": 6.0, "height": 4.0}


def test_spiga_head_poses_are_read_in_facegraphs_signs(tmp_path: Path) -> None:
    """SPIGA's yaw grows as the nose moves toward the image's right, facegraph's toward the left."""
    write_photos(tmp_path / "ann", write_spiga(tmp_path / "ann", headpose=True))
    data = load_faces68(tmp_path / "ann")
    np.testing.assert_array_equal(data.headpose, [[-10.0, -5.0, 0.0], [-20.0, -5.0, 3.0]])

    write_photos(tmp_path / "plain", write_spiga(tmp_path / "plain"))
    assert load_faces68(tmp_path / "plain").headpose is None


def test_spiga_head_pose_that_is_not_three_angles_is_named(tmp_path: Path) -> None:
    records = write_spiga(tmp_path / "ann", headpose=True)
    records[1]["headpose"] = [1.0, "up"]
    (tmp_path / "ann" / "test.json").write_text(json.dumps(records))
    write_photos(tmp_path / "ann", records)
    with pytest.raises(InputError, match="headpose") as error:
        load_faces68(tmp_path / "ann")
    assert error.value.path == tmp_path / "ann" / "test.json"


def test_real_spiga_head_poses_match_the_mean_face_fitted_to_their_landmarks(tmp_path: Path) -> None:
    """The sign change is measured, not assumed: on 300-W's public test faces, the package's pose fit of
    SPIGA's mean face to the annotated points lands within a few degrees of the annotated angles once
    they are read, and the yaw would be far off without the change."""
    from facegraph.geometry.pose_fit import fit_pose
    from facegraph.io.landmarks import read_spiga_mean_face

    source = shared("spiga-annotations")
    records = json.loads((source / "annotations/300wpublic/test.json").read_text())[::4]
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "test.json").write_text(json.dumps(records))
    write_photos(tmp_path / "photos", records)
    data = load_faces68(tmp_path / "ann", images=tmp_path / "photos")

    low, high = data.landmarks.min(1), data.landmarks.max(1)
    side = 1.6 * (high - low).max(1)
    corner = (low + high) / 2 - side[:, None] / 2
    unit = (data.landmarks - corner[:, None]) / side[:, None, None]
    mean_face = torch.as_tensor(read_spiga_mean_face(source / "models3D/mean_face_3D_68.txt"))
    fitted = fit_pose(torch.as_tensor(unit, dtype=torch.float32), mean_face.float(), 1.5)[0][:, :3].numpy()

    errors = pose_mae(fitted, data.headpose)
    assert max(errors["yaw"], errors["pitch"], errors["roll"]) < 3.0
    assert pose_mae(fitted * [-1, 1, 1], data.headpose)["yaw"] > 8.0


def test_spiga_annotations_without_db_info_use_default_norms(tmp_path: Path) -> None:
    records = write_spiga(tmp_path / "ann", with_info=False)
    write_photos(tmp_path / "ann", records)
    data = load_faces68(tmp_path / "ann")
    assert data.subsets == {}
    assert data.norms == DEFAULT_NORMS


def test_spiga_annotations_without_photos_point_to_the_images_flag(tmp_path: Path) -> None:
    records = write_spiga(tmp_path / "ann")
    with pytest.raises(InputError, match="--images") as error:
        load_faces68(tmp_path / "ann")
    assert error.value.path == tmp_path / "ann" / records[0]["imgpath"]


def test_spiga_photo_missing_under_the_given_images_folder_is_named(tmp_path: Path) -> None:
    records = write_spiga(tmp_path / "ann")
    write_photos(tmp_path / "photos", records[:1])
    with pytest.raises(InputError, match="photo not found") as error:
        load_faces68(tmp_path / "ann", images=tmp_path / "photos")
    assert error.value.path == tmp_path / "photos" / records[1]["imgpath"]


def test_spiga_records_without_68_points_are_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "ann"
    folder.mkdir()
    record = {"imgpath": "x.jpg", "bbox": [0, 0, 1, 1], "landmarks": [[0.0, 0.0]] * 5}
    (folder / "test.json").write_text(json.dumps([record]))
    with pytest.raises(InputError, match="expected 68 landmarks"):
        load_faces68(folder)


def test_real_spiga_annotations_carry_no_photos() -> None:
    with pytest.raises(InputError, match="--images"):
        load_faces68(shared("spiga-annotations/annotations/300wpublic"))


def test_real_spiga_annotations_read_the_300w_public_subsets(tmp_path: Path) -> None:
    """With stand-in photo files, the 689 faces and db_info's subsets and norms come through."""
    folder = shared("spiga-annotations/annotations/300wpublic")
    for record in json.loads((folder / "test.json").read_text()):
        (tmp_path / record["imgpath"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / record["imgpath"]).touch()

    data = load_faces68(folder, images=tmp_path)

    assert len(data) == 689
    assert data.landmarks.shape == (689, 68, 2)
    assert {name: len(idx) for name, idx in data.subsets.items()} == {
        "helen": 330,
        "lfpw": 224,
        "common": 554,
        "ibug": 135,
    }
    assert data.norms == {"corners": 8.0, "pupils": 8.0, "height": 4.0}
