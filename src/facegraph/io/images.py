"""Reading photos into one canonical array, (H, W, 3) uint8 RGB, and writing them back.

Every model and drawing routine assumes that layout, so the conversions happen here once:

* EXIF orientation is applied, so the array is upright as a viewer shows it (landmarks annotated in a
  viewer then match).
* Transparency (RGBA, LA, PA, a transparent palette or key colour) is composited over white, as image
  viewers show it. Dropping alpha instead would expose whatever colour hides under transparent pixels,
  often black or junk.
* 16-bit grayscale (Pillow modes ``I;16*``, and ``I``, read as 16-bit) is rescaled with
  ``round(v * 255 / 65535)`` rather than clipped (clipping turns a
  normal 16-bit photo white). Pillow itself reduces 16-bit RGB(A) PNGs to 8 bits by keeping the high
  byte, which is also a rescale (within one level of the rounded one).
* Grayscale, bilevel, palette, CMYK and the other colour modes are converted to RGB.

A truncated or corrupt file raises ``InputError`` instead of being padded with grey: pixels are decoded
inside the error handling, with Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` left at its default, False.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from facegraph.errors import InputError
from facegraph.io.atomic import atomic_path
from facegraph.io.outputs import GENERATOR, GENERATOR_KEY

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an upright (H, W, 3) uint8 RGB array."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file" if not path.exists() else "not a file", path)
    if path.stat().st_size == 0:
        raise InputError("the file is empty", path)
    try:
        # Pillow warns of a possible decompression bomb above Image.MAX_IMAGE_PIXELS, which some phone
        # cameras' photos exceed: those are read quietly. It refuses twice as many, reported below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:  # leaving it closes the file; the loaded pixels stay
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # in place: a large photo is not copied
    except UnidentifiedImageError as exc:
        raise InputError("not an image, or in a format Pillow cannot read", path) from exc
    except Image.DecompressionBombError as exc:
        raise InputError(_too_large(exc), path) from exc
    except PermissionError as exc:
        raise InputError("cannot read: permission denied", path) from exc
    except Exception as exc:  # Pillow's decoders raise many kinds of error on a corrupt file
        raise InputError(f"cannot decode the image ({_first_line(exc, type(exc).__name__)})", path) from exc
    rgb = _to_rgb(img, path)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"the image is empty ({rgb.shape[1]}x{rgb.shape[0]} pixels)", path)
    return rgb


def _too_large(exc: Image.DecompressionBombError) -> str:
    """Pillow's refusal of an image with too many pixels, in one line with the sizes in megapixels."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(found[1]) / 1e6:,.0f} megapixels" if found else "too many pixels"
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
    return f"the image is too large to read safely ({size}; the limit is {limit:,.0f} megapixels)"


def _first_line(exc: BaseException, fallback: str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else fallback


def _to_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """Convert a decoded Pillow image of any supported mode to (H, W, 3) uint8 RGB."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        gray = np.clip(np.asarray(img).astype(np.float64), 0, 65535)
        gray8 = np.rint(gray * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(gray8[:, :, None], 3, axis=2)
    if mode == "F":
        raise InputError("floating-point images are not supported; save it as 8- or 16-bit", path)
    if mode in _ALPHA_MODES or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def write_image(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    """Write an (H, W, 3) uint8 RGB array atomically; the format comes from the file suffix.

    ``quality`` applies to lossy formats (JPEG, WebP).
    """
    path = Path(path)
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_image expects an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"unknown image format {path.suffix!r}; use e.g. .png or .jpg", path)
    img = Image.fromarray(rgb, "RGB")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG":
        options["pnginfo"] = PngImagePlugin.PngInfo()
        options["pnginfo"].add_text(GENERATOR_KEY, GENERATOR)
    elif fmt == "JPEG":
        options["comment"] = f"{GENERATOR_KEY} {GENERATOR}"
    with atomic_path(path) as temp:
        try:
            img.save(temp, format=fmt, **options)
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"cannot write a {fmt} image ({_first_line(exc, 'unsupported')})", path) from exc
