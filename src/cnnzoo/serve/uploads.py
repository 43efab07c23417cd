"""Uploaded bytes to images, within limits: every refusal is an HTTP status and one line.

Decoding goes through the data layer's `open_rgb`, so an upload is read exactly as
`cnnzoo predict` reads the same file (modes, transparency, EXIF rotation, 16-bit).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from cnnzoo.data.images import MAX_ASPECT, ImageReadError, open_rgb


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


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the header alone, before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # the pixel limit below is ours: Pillow's bomb warning would only add noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:
        raise UploadError(413, f"{name}: too many pixels to decode safely") from None
    except Exception:
        raise UploadError(
            400, f"{name}: not a readable image (unknown format or corrupt header)"
        ) from None


def decode_upload(
    data: bytes, name: str, limits: Limits, max_aspect: float = MAX_ASPECT
) -> torch.Tensor:
    """uint8 [3, H, W] RGB of one uploaded file, or UploadError (400 unreadable, 413 too
    many pixels). `max_aspect`: the long-strip cut (`Predictor.max_aspect`)."""

    if not data:
        raise UploadError(400, f"{name}: empty upload")
    w, h = image_size(data, name)
    if w * h > limits.max_pixels:
        raise UploadError(
            413,
            f"{name}: {w}x{h} is {w * h:,} pixels, over the limit of {limits.max_pixels:,}; "
            "send a smaller image",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # as predict reads a file: the same limits, the same cut of extreme panoramas
            im, _ = open_rgb(io.BytesIO(data), max_aspect=max_aspect)  # type: ignore[arg-type]
    except ImageReadError as e:
        raise UploadError(400, f"{name}: {e.reason}") from None
    return torch.from_numpy(np.ascontiguousarray(np.asarray(im).transpose(2, 0, 1)))
