"""Reading one image file into RGB: modes, transparency, EXIF rotation, 16-bit, broken files.

`load_image` gives the full-size picture (for predict); `decode_square` gives the fixed-size
square that datasets store. Both go through `open_rgb`, so training and inference see the
same colours and orientation.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnzoo.cfg import Size, size_hw
from cnnzoo.errors import CnnzooError

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

# Larger pictures are refused before a pixel is decoded (Pillow's own bomb threshold; it only
# warns below twice this): an image of this many pixels already takes ~270 MB in RGB.
MAX_PIXELS = 89_478_485
# Longest side accepted: Pillow also keeps a pointer per row, so a 1 x 50,000,000 strip costs
# 400 MB before its 50 MB of pixels (and seconds of decoding) for a picture of nothing.
MAX_SIDE = 1 << 20
# Longest side / shorter side kept for prediction: what lies beyond the centre square is cut
# away by the centre crop anyway, and a 1 x 50,000,000 strip must not be resized whole.
MAX_ASPECT = 2
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_EXIF_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """One file that cannot be decoded; `reason` is a short phrase for listings."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def is_image_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]} | {9: "\\t", 10: "\\n", 13: "\\r"}


def shown(path: str) -> str:
    """`path` (or any name from disk) printable on any terminal and in a one-line-per-row
    file: bytes that are not UTF-8 (names from another system) as \\xNN escapes instead of a
    UnicodeEncodeError, and control characters (tab, newline, escape sequences) escaped, so
    a name can neither break a TSV row nor drive the terminal."""
    return os.fsencode(path).decode("utf-8", "backslashreplace").translate(_CONTROL)


def regular_file_problem(path: str) -> str | None:
    """Why `path` cannot be opened as an image without risk (a FIFO would block forever,
    a device could stream without end), or None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "file not found (or a broken link)"
    except OSError as e:  # a symlink loop (ELOOP), no permission on a folder...
        return (e.strerror or type(e).__name__).lower()
    if stat.S_ISDIR(mode):
        return "a folder, not an image file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def _reason(e: Exception) -> str:
    if isinstance(e, Image.DecompressionBombError):  # Pillow's own refusal, at twice the limit
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        return f"{pixels}, above the {MAX_PIXELS:,} limit"
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
    # a file object (an upload held in memory) is no pipe or device: only paths are checked
    problem = regular_file_problem(path) if isinstance(path, (str, bytes, os.PathLike)) else None
    if problem:
        raise ImageReadError(path, problem)
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageReadError(
                    path, f"{im.width}x{im.height} pixels, above the {MAX_PIXELS:,} limit"
                )
            if max(im.width, im.height) > MAX_SIDE:
                raise ImageReadError(
                    path, f"{im.width}x{im.height} pixels, a side above the {MAX_SIDE:,} limit"
                )
            if im.width < 1 or im.height < 1:
                raise ImageReadError(path, f"empty image ({im.width}x{im.height})")
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


# a hook that may make a decoded picture smaller: (upright image, its width and height in
# pixels of the full-size picture) -> the image to convert to RGB
Shrink = Callable[[Image.Image, float, float], Image.Image]


def open_rgb(
    path: str,
    min_side: int | None = None,
    max_aspect: float | None = None,
    shrink: Shrink | None = None,
) -> tuple[Image.Image, tuple[int, int, str]]:
    """Decode `path` upright in RGB, plus the source's (width, height, mode).

    With `min_side`, JPEGs are decoded at a reduced scale (1/2, 1/4, 1/8) as long as the
    shorter side stays >= min_side: most of the time of loading large photos saved.
    With `max_aspect`, the longer side is cut down (around the centre) to at most
    max_aspect x the shorter one, before any conversion copies the pixels.
    With `shrink`, the decoded picture (upright, cut) is handed to it before conversion,
    with its size in full-size pixels (a JPEG decoded at a reduced scale is smaller).
    Raises ImageReadError.
    """
    with _opened(path) as im:
        info = (im.width, im.height, im.mode)
        if min_side and im.format == "JPEG" and min(im.size) >= 2 * min_side:
            im.draft(None, (min_side, min_side))
        try:
            im.load()
            sx, sy = info[0] / im.width, info[1] / im.height  # > 1 after a draft
            upright = _upright(im)
            if upright.size != im.size:  # turned a quarter: the scales swap
                sx, sy = sy, sx
            im = upright
            if max_aspect:
                im = _centre_band(im, max_aspect)
            if shrink is not None:
                im = shrink(im, im.width * sx, im.height * sy)
            return to_rgb(im), info
        except Exception as e:
            raise ImageReadError(path, _reason(e)) from None


def strip_aspect(size: Size) -> float:
    """The long-strip cut for an input `size`: MAX_ASPECT, or the size's own aspect (longer
    over shorter side) when that is larger, so the centre crop never reaches past the cut."""
    h, w = size_hw(size)
    return max(float(MAX_ASPECT), max(h, w) / min(h, w))


def _centre_band(im: Image.Image, max_aspect: float) -> Image.Image:
    w, h = im.size
    m = min(w, h)
    keep = max(1, int(m * max_aspect))
    if max(w, h) <= keep:
        return im
    keep += (max(w, h) - keep) % 2  # an even cut on both sides keeps the centre where it was
    if w > h:
        left = (w - keep) // 2
        return im.crop((left, 0, left + keep, h))
    top = (h - keep) // 2
    return im.crop((0, top, w, top + keep))


def decode_square(path: str, size: Size) -> tuple[np.ndarray, tuple[int, int, str]]:
    """uint8 [3, H, W] for `size` (an int: a square): the centred box of the image with the
    aspect W / H, as large as fits (for a square, the centre square), resized to H x W
    (bilinear, antialiased): resize to cover H x W, then centre crop, without rounding the
    intermediate size. Plus the source's (width, height, mode)."""
    oh, ow = size_hw(size)
    im, info = open_rgb(path, min_side=max(oh, ow), max_aspect=strip_aspect(size))
    w, h = im.size
    if (w, h) != (ow, oh):
        if w * oh >= ow * h:  # wider than the box's aspect: full height, centre of the width
            bw, bh = h * ow / oh, float(h)
        else:
            bw, bh = float(w), w * oh / ow
        box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)
        im = im.resize((ow, oh), Image.Resampling.BILINEAR, box=box)
    return np.asarray(im).transpose(2, 0, 1), info


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """uint8 [3, H, W] RGB of an opened Pillow image, converted as `load_image` converts files
    (EXIF rotation applied, any mode to RGB)."""
    rgb = to_rgb(_upright(im))
    return torch.from_numpy(np.ascontiguousarray(np.asarray(rgb).transpose(2, 0, 1)))


def load_image(path: str | os.PathLike, max_aspect: float | None = None) -> torch.Tensor:
    """uint8 [3, H, W] RGB at full size. Grey, palette, CMYK, 16-bit and transparent images
    (composited onto white) are converted; EXIF rotation is applied. `max_aspect` keeps
    only the centre of very long strips (what a centre crop uses), so memory stays bounded.

    Raises CnnzooError with a one-line message when the file cannot be read.
    """
    path = os.fspath(path)
    try:
        im, _ = open_rgb(path, max_aspect=max_aspect)
    except ImageReadError as e:
        if e.reason.startswith("file not found"):
            raise CnnzooError(f"image file not found: {shown(path)}") from None
        raise CnnzooError(f"cannot read image {shown(path)}: {e.reason}") from None
    return torch.from_numpy(np.asarray(im).transpose(2, 0, 1).copy())  # writable, contiguous
