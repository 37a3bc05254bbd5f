"""AFLW2000-3D reader: the 3DDFA protocol layout and the original release, synthetic and real."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from facegraph.datasets import load_aflw2000
from facegraph.datasets.aflw2000_3d import CONFIG_FILES
from facegraph.errors import InputError
from facegraph.geometry.crops import box_from_landmarks, crop
from facegraph.io import read_image
from facegraph.metrics.pose import within_range
from tests.conftest import shared

# Deliberately not sorted: the protocol layout keeps the list's order.
NAMES = ["image00006.jpg", "image00002.jpg", "image00004.jpg"]
CONFIGS = {
    "gt": "AFLW2000-3D.pts68.npy",
    "reannotated": "AFLW2000-3D-Reannotated.pts68.npy",
    "yaw": "AFLW2000-3D.pose.npy",
    "boxes": "AFLW2000-3D_crop.roi_box.npy",
}


def synthetic_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3, 68) landmarks as AFLW2000-3D stores them and (n, 1, 7) Pose_Para in radians."""
    rng = np.random.default_rng(seed)
    landmarks = np.concatenate(
        [rng.uniform(120, 330, (n, 2, 68)), rng.uniform(-40, 40, (n, 1, 68))], axis=1
    ).astype(np.float32)
    pose_para = np.concatenate([rng.uniform(-1.2, 1.2, (n, 1, 3)), rng.uniform(0, 1, (n, 1, 4))], axis=2)
    return landmarks, pose_para.astype(np.float32)


def write_mat(path: Path, landmarks: np.ndarray, pose_para: np.ndarray) -> None:
    scipy.io.savemat(path, {"pt3d_68": landmarks, "Pose_Para": pose_para})


def write_protocol_layout(root: Path, with_images: bool = True) -> dict[str, np.ndarray]:
    """3DDFA's layout for NAMES: uniform crops of grey 40, 80, 120 in list order, configs, .mat files."""
    landmarks, pose_para = synthetic_faces(len(NAMES))
    rng = np.random.default_rng(1)
    arrays = {
        "gt": landmarks,
        "reannotated": rng.uniform(120, 330, (len(NAMES), 2, 68)).astype(np.float32),
        "yaw": np.array([10.0, -45.0, 80.0], dtype=np.float32),
        "boxes": np.array([[50, 60, 350, 360], [40, 40, 400, 400], [0, 10, 200, 210]], dtype=np.float32),
    }
    (root / "crops-120").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "crops-120.list").write_text("\n".join(NAMES) + "\n")
    for i, name in enumerate(NAMES):
        Image.fromarray(np.full((120, 120, 3), 40 * (i + 1), np.uint8)).save(root / "crops-120" / name)
    for key, file in CONFIGS.items():
        np.save(root / "configs" / file, arrays[key])
    if with_images:
        (root / "images").mkdir()
        for i, name in enumerate(NAMES):
            write_mat((root / "images" / name).with_suffix(".mat"), landmarks[i], pose_para[i])
    return {**arrays, "pose_para": pose_para}


def write_original_layout(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """450x450 photos with .mat files for NAMES; returns the stored landmarks and Pose_Para."""
    landmarks, pose_para = synthetic_faces(len(NAMES), seed=2)
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(NAMES):
        Image.fromarray(rng.integers(0, 256, (450, 450, 3), dtype=np.uint8)).save(folder / name)
        write_mat((folder / name).with_suffix(".mat"), landmarks[i], pose_para[i])
    return landmarks, pose_para


def expected_pose(pose_para: np.ndarray) -> np.ndarray:
    """[yaw, pitch, roll] degrees from Pose_Para's [pitch, yaw, roll, ...] radians."""
    return np.degrees(pose_para.reshape(-1, 7)[:, [1, 0, 2]])


def test_protocol_layout_keeps_list_order_and_transposes_ground_truth(tmp_path: Path) -> None:
    arrays = write_protocol_layout(tmp_path)

    data = load_aflw2000(tmp_path)

    assert data.names == NAMES
    assert len(data) == 3
    assert data.landmarks.shape == (3, 68, 3)
    np.testing.assert_array_equal(data.landmarks, arrays["gt"].transpose(0, 2, 1))
    assert data.landmarks_reannotated.shape == (3, 68, 2)
    np.testing.assert_array_equal(data.landmarks_reannotated, arrays["reannotated"].transpose(0, 2, 1))
    np.testing.assert_array_equal(data.yaw, arrays["yaw"])
    np.testing.assert_array_equal(data.boxes, arrays["boxes"])
    assert data.crops_folder == tmp_path / "crops-120"


def test_protocol_layout_reads_pose_in_degrees_as_yaw_pitch_roll(tmp_path: Path) -> None:
    arrays = write_protocol_layout(tmp_path)
    data = load_aflw2000(tmp_path)
    np.testing.assert_allclose(data.pose, expected_pose(arrays["pose_para"]), rtol=1e-6)


def test_protocol_layout_without_originals_has_no_pose(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path, with_images=False)
    data = load_aflw2000(tmp_path)
    assert data.pose is None
    assert data.images_folder is None


def test_protocol_crops_are_read_by_name(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path)
    data = load_aflw2000(tmp_path)
    for i in range(len(data)):
        face = data.crop(i)
        assert face.shape == (120, 120, 3)
        assert face.dtype == np.uint8
        assert abs(face.mean() - 40 * (i + 1)) < 2


def test_crop_of_the_wrong_size_is_an_input_error(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path)
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "crops-120" / NAMES[1])
    data = load_aflw2000(tmp_path)
    with pytest.raises(InputError, match="expected a 120x120 crop, got 100x100") as error:
        data.crop(1)
    assert error.value.path == tmp_path / "crops-120" / NAMES[1]


@pytest.mark.parametrize("missing", list(CONFIGS.values()))
def test_missing_config_file_is_named(tmp_path: Path, missing: str) -> None:
    write_protocol_layout(tmp_path)
    (tmp_path / "configs" / missing).unlink()
    with pytest.raises(InputError, match="missing file") as error:
        load_aflw2000(tmp_path)
    assert error.value.path == tmp_path / "configs" / missing


def test_config_of_the_wrong_shape_is_an_input_error(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path)
    np.save(tmp_path / "configs" / CONFIGS["gt"], np.zeros((3, 2, 68), np.float32))
    with pytest.raises(InputError, match=r"expected shape \(3, 3, 68\), got \(3, 2, 68\)"):
        load_aflw2000(tmp_path)


def test_config_with_a_different_face_count_than_the_list_is_an_input_error(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path)
    np.save(tmp_path / "configs" / CONFIGS["yaw"], np.zeros(4, np.float32))
    with pytest.raises(InputError, match=r"expected shape \(3\), got \(4,\)"):
        load_aflw2000(tmp_path)


@pytest.mark.parametrize("subfolder", ["", "images"])
def test_original_layout_reads_mat_files_in_sorted_order(tmp_path: Path, subfolder: str) -> None:
    landmarks, pose_para = write_original_layout(tmp_path / subfolder)

    data = load_aflw2000(tmp_path)

    order = np.argsort(NAMES)
    assert data.names == sorted(NAMES)
    assert data.images_folder == tmp_path / subfolder
    assert data.crops_folder is None
    assert data.landmarks_reannotated is None
    np.testing.assert_array_equal(data.landmarks, landmarks[order].transpose(0, 2, 1))
    np.testing.assert_allclose(data.pose, expected_pose(pose_para[order]), rtol=1e-6)
    np.testing.assert_array_equal(data.yaw, data.pose[:, 0])


def test_original_layout_crops_with_boxes_derived_from_landmarks(tmp_path: Path) -> None:
    write_original_layout(tmp_path)
    data = load_aflw2000(tmp_path)
    for i, name in enumerate(data.names):
        box = box_from_landmarks(data.landmarks[i])
        np.testing.assert_array_equal(data.boxes[i], box)
        face = data.crop(i)
        assert face.shape == (120, 120, 3)
        assert face.dtype == np.uint8
        np.testing.assert_array_equal(face, crop(read_image(tmp_path / name), box, 120))


def test_original_layout_photo_missing_beside_its_mat_is_named(tmp_path: Path) -> None:
    write_original_layout(tmp_path)
    (tmp_path / NAMES[0]).unlink()
    with pytest.raises(InputError, match="missing photo") as error:
        load_aflw2000(tmp_path)
    assert error.value.path == tmp_path / NAMES[0]


def _valid_mat_bytes() -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"pt3d_68": np.zeros((3, 68)), "Pose_Para": np.zeros((1, 7))})
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(np.random.default_rng(0).bytes(600), id="random-bytes"),
        pytest.param(_valid_mat_bytes()[:128], id="header-only"),
        pytest.param(_valid_mat_bytes()[:400], id="cut-in-the-data"),
        pytest.param(b"", id="empty"),
        pytest.param(_valid_mat_bytes()[:100], id="cut-in-the-header"),
    ],
)
def test_corrupt_mat_is_an_input_error_naming_it(tmp_path: Path, content: bytes) -> None:
    write_original_layout(tmp_path)
    bad = (tmp_path / NAMES[1]).with_suffix(".mat")
    bad.write_bytes(content)
    with pytest.raises(InputError, match="not an AFLW2000-3D .mat") as error:
        load_aflw2000(tmp_path)
    assert error.value.path == bad


def test_mat_without_landmarks_names_the_missing_field(tmp_path: Path) -> None:
    write_original_layout(tmp_path)
    scipy.io.savemat((tmp_path / NAMES[0]).with_suffix(".mat"), {"Pose_Para": np.zeros((1, 7))})
    with pytest.raises(InputError, match="no 'pt3d_68' field"):
        load_aflw2000(tmp_path)


def test_folder_of_neither_layout_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="not an AFLW2000-3D folder"):
        load_aflw2000(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_aflw2000(tmp_path / "absent")


def test_real_protocol_layout_has_pose_for_every_face() -> None:
    """1,969 of the 2,000 faces have all three angles within +-99 degrees (the pose protocol's set)."""
    data = load_aflw2000(shared("aflw2000-3d"))
    assert len(data) == 2000
    assert data.pose.shape == (2000, 3)
    assert int(within_range(data.pose, 99.0).sum()) == 1969


def test_real_originals_match_the_published_configs() -> None:
    """Landmark-derived boxes reproduce 3DDFA's published crop boxes; pt3d_68 is the configs' ground truth."""
    root = shared("aflw2000-3d")
    data = load_aflw2000(root / "images")
    published_boxes = np.load(root / "configs" / CONFIGS["boxes"])
    published_gt = np.load(root / "configs" / CONFIGS["gt"]).transpose(0, 2, 1)
    names = (root / "crops-120.list").read_text().split()
    assert len(data) == 2000
    assert data.names[:50] == names[:50]
    np.testing.assert_allclose(data.boxes[:50], published_boxes[:50], atol=1.0)
    np.testing.assert_array_equal(data.landmarks[:50], published_gt[:50])


def test_a_scalar_config_array_is_an_input_error(tmp_path: Path) -> None:
    write_protocol_layout(tmp_path)
    np.save(tmp_path / "configs" / CONFIG_FILES["yaw"], np.float32(3))
    with pytest.raises(InputError, match="expected shape"):
        load_aflw2000(tmp_path)
