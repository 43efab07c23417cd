"""Uploaded bytes to images, within limits: every refusal is an HTTP status and one line.

Decoding goes through the data layer's `open_rgb`, so an upload is read as `cnnzoo predict`
reads the same file (modes, transparency, EXIF rotation, 16-bit), except that a picture much
larger than the model needs is made smaller while it is decoded (`reduce_to`): JPEGs in draft
mode, never held at full size, other formats by a whole factor right after decoding. What a
decode will cost in memory is known from the header before a pixel is decoded (`probe`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cnnzoo.data.images import MAX_ASPECT, ImageReadError, open_rgb, to_rgb

# Bytes per pixel a decode may hold at once, at the size it decodes to: Pillow keeps RGB(A)
# in 4 bytes a pixel, plus up to two full-size copies while it is turned upright, cut to
# its centre band or converted before it is reduced.
DECODE_BYTES_PER_PIXEL = 12


class UploadError(Exception):
    """A request the server refuses: `status` (4xx) and a one-line `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000  # per image, width x height
    max_images: int = 32  # per request

    def to_dict(self) -> dict:
        return {
            "max_body_bytes": self.max_body_bytes,
            "max_pixels": self.max_pixels,
            "max_images": self.max_images,
        }


@dataclass(frozen=True)
class Probe:
    """What the header says: the picture's size and the bytes its decode may hold."""

    width: int
    height: int
    decode_bytes: int


@dataclass(frozen=True)
class Reduction:
    """Pictures made smaller while they are decoded, to `margin` x the size the model's
    preprocessing resizes them to (shorter side `side`), with that resize's rounding of the
    longer side: the preprocessing then scales by exactly 1 / margin and sees the geometry
    of the full-size picture, only filtered twice."""

    side: int
    interpolation: str = "bilinear"
    margin: int = 4  # 4: within ~1/255 of the full-size picture's input (2: ~5/255)
    keep_pixels: int = 1_000_000  # pictures up to this size are decoded as predict does

    def applies(self, w: float, h: float) -> bool:
        return w * h > self.keep_pixels and min(w, h) > self.margin * self.side

    @property
    def draft_side(self) -> int:
        """A JPEG is decoded at 1/2, 1/4 or 1/8 scale while its shorter side stays at least
        this: twice the target, as the scaled decode filters more coarsely."""
        return 2 * self.margin * self.side

    def target(self, w: float, h: float) -> tuple[int, int] | None:
        """(width, height) to decode a w x h picture to, or None to keep it as it is."""
        if not self.applies(w, h):
            return None
        if h <= w:  # the rule of data.transforms.resize_shorter, on the full-size picture
            return self.margin * max(1, round(w * self.side / h)), self.margin * self.side
        return self.margin * self.side, self.margin * max(1, round(h * self.side / w))

    def __call__(self, im: Image.Image, w: float, h: float) -> Image.Image:
        size = self.target(w, h)
        if size is None or size == im.size:
            return im
        if im.mode in ("1", "P", "PA"):  # palette indices cannot be averaged
            im = to_rgb(im)
        bicubic = self.interpolation == "bicubic"
        filt = Image.Resampling.BICUBIC if bicubic else Image.Resampling.BILINEAR
        return im.resize(size, filt)


def probe(data: bytes, name: str, limits: Limits, reduction: Reduction | None = None) -> Probe:
    """Size and decode cost from the header alone, before any pixel is decoded; UploadError
    for an empty, unreadable or too large upload."""
    if not data:
        raise UploadError(400, f"{name}: empty upload")
    try:
        with warnings.catch_warnings():
            # the pixel limit below is ours: Pillow's bomb warning would only add noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                draft = reduction.draft_side if reduction and reduction.applies(w, h) else 0
                if draft and im.format == "JPEG" and min(w, h) >= 2 * draft:
                    im.draft(None, (draft, draft))  # as open_rgb will decode it
                dw, dh = im.size
    except Image.DecompressionBombError:
        raise UploadError(413, f"{name}: too many pixels to decode safely") from None
    except Exception:
        raise UploadError(
            400, f"{name}: not a readable image (unknown format or corrupt header)"
        ) from None
    if w * h > limits.max_pixels:
        raise UploadError(
            413,
            f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {limits.max_pixels:,}; "
            "send a smaller image",
        )
    return Probe(w, h, dw * dh * DECODE_BYTES_PER_PIXEL)


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the header alone, before any pixel is decoded."""
    found = probe(data, name, Limits(max_pixels=2**62))
    return found.width, found.height


def decode_upload(
    data: bytes,
    name: str,
    limits: Limits,
    reduction: Reduction | None = None,
    max_aspect: float = MAX_ASPECT,
) -> torch.Tensor:
    """uint8 [3, H, W] RGB of one uploaded file, or UploadError (400 unreadable, 413 too
    many pixels). With `reduction`, a large picture is made smaller while it is decoded;
    `max_aspect` is the long-strip cut (`Predictor.max_aspect`, as predict's)."""
    found = probe(data, name, limits, reduction)
    draft = None
    if reduction is not None and reduction.applies(found.width, found.height):
        draft = reduction.draft_side
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # as predict reads a file: the same limits, the same cut of extreme panoramas
            im, _ = open_rgb(
                io.BytesIO(data),  # type: ignore[arg-type]
                min_side=draft,
                max_aspect=max_aspect,
                shrink=reduction,
            )
    except ImageReadError as e:
        raise UploadError(400, f"{name}: {e.reason}") from None
    return torch.from_numpy(np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1)))
