"""Reading one image file into RGB: modes, transparency, EXIF rotation, 16-bit, broken files.

`load_image` gives the full-size picture (for predict); `decode_square` gives the fixed-size
square that datasets store. Both go through `open_rgb`, so training and inference see the
same colours and orientation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import CnnzooError

IMAGE_EXTENSIONS: set[str] = {
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".gif",
    ".tif",
    ".tiff",
}

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_EXIF_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """One file that cannot be decoded; `reason` is a short phrase for listings."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def is_image_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _reason(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not a readable image (unknown format or corrupt header)"
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "truncated" in text.lower():
        return "truncated image data"
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if not isinstance(e, (OSError, ValueError, SyntaxError, EOFError)):
        text = f"{type(e).__name__}: {text}"
    return text[:160]


@contextmanager
def _opened(path: str) -> Iterator[Image.Image]:
    try:
        with Image.open(path) as im:
            yield im
    except ImageReadError:
        raise
    except Exception as e:  # broken or hostile files trip all kinds of errors in Pillow
        raise ImageReadError(path, _reason(e)) from None


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation that cameras write instead of rotating the pixels."""
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a broken EXIF block is no reason to drop the picture
        return im
    if orientation in (2, 3, 4, 5, 6, 7, 8):
        from PIL import ImageOps

        return ImageOps.exif_transpose(im)
    return im


def _wide_to_8bit(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey ("I;16*", "I", "F") to 8-bit "L"."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        if a.size and (a.min() < 0 or a.max() > 1):  # not a 0..1 float image: stretch
            a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
        a = a * 255.0
    elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
        # 16-bit range (also "I" that holds 16-bit data, as older Pillow opens 16-bit PNGs)
        a = np.clip(a.astype(np.float64), 0, 65535) / 257.0
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to "RGB"; transparent parts become white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        mode = "RGBA" if "transparency" in im.info else "RGB"
        im = im.convert(mode)
        if mode == "RGB":
            return im
    if mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if mode.startswith("I") or mode == "F":
        return _wide_to_8bit(im).convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, ...


def open_rgb(path: str, min_side: int | None = None) -> tuple[Image.Image, tuple[int, int, str]]:
    """Decode `path` upright in RGB, plus the source's (width, height, mode).

    With `min_side`, JPEGs are decoded at a reduced scale (1/2, 1/4, 1/8) as long as the
    shorter side stays >= min_side: most of the time of loading large photos saved.
    Raises ImageReadError.
    """
    with _opened(path) as im:
        info = (im.width, im.height, im.mode)
        if min_side and im.format == "JPEG" and min(im.size) >= 2 * min_side:
            im.draft(None, (min_side, min_side))
        try:
            im.load()
            return to_rgb(_upright(im)), info
        except Exception as e:
            raise ImageReadError(path, _reason(e)) from None


def decode_square(path: str, size: int) -> tuple[np.ndarray, tuple[int, int, str]]:
    """uint8 [3, size, size]: shorter side resized to `size` (bilinear, antialiased), centre
    square kept; plus the source's (width, height, mode)."""
    im, info = open_rgb(path, min_side=size)
    w, h = im.size
    if (w, h) != (size, size):
        m = min(w, h)
        box = ((w - m) / 2, (h - m) / 2, (w + m) / 2, (h + m) / 2)
        im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
    return np.asarray(im).transpose(2, 0, 1), info


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """uint8 [3, H, W] RGB of an opened Pillow image, converted as `load_image` converts files
    (EXIF rotation applied, any mode to RGB)."""
    rgb = to_rgb(_upright(im))
    return torch.from_numpy(np.ascontiguousarray(np.asarray(rgb).transpose(2, 0, 1)))


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """uint8 [3, H, W] RGB at full size. Grey, palette, CMYK, 16-bit and transparent images
    (composited onto white) are converted; EXIF rotation is applied.

    Raises CnnzooError with a one-line message when the file cannot be read.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CnnzooError(f"image file not found: {path}")
    try:
        im, _ = open_rgb(path)
    except ImageReadError as e:
        raise CnnzooError(f"cannot read image {path}: {e.reason}") from None
    return pil_to_tensor(im)
