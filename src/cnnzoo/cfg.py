"""The model config record (`ModelCfg`), the normalisation constants and the precision words: a
leaf module, imported
by models, data and engine alike, that imports nothing of cnnzoo's own (no import cycles)."""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("bilinear", "bicubic")

# Precision, one vocabulary for every command: the number formats, and the subsets each job
# takes. For inference the word also names the path: "fp32" is the exact model as built,
# "fast-fp32" its folded / fused form (within 1e-4 of it), "bf16" the fast form in bf16, "auto"
# whichever of these is fastest on the first batch.
PRECISIONS = ("fp32", "bf16", "fp16")
TRAIN_PRECISIONS = PRECISIONS
EXPORT_PRECISIONS = ("fp32", "fp16")
INFERENCE_PRECISIONS = ("auto", "fp32", "fast-fp32", "bf16")
# Engines that run a model for predict / eval / serve / bench (infer/engines.py); "auto" times
# the installed ones on the first batch and keeps the fastest.
BACKENDS = ("auto", "pytorch", "onnxruntime", "openvino")


@dataclass(frozen=True)
class ModelCfg:
    """How a model expects its input, and where its design and weights come from.

    `crop_pct` and `interpolation` are the reference weights' published eval transform: resize
    the short side to input_size / crop_pct with that interpolation, centre-crop input_size
    (an int, or (H, W) for a rectangle: see `resized_shape`)."""

    family: str
    input_size: int | tuple[int, int] = 224
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    source: str = ""  # reference implementation whose state-dict layout the model matches
    paper: str = ""


# An input size: an int is a square side; a pair (H, W) a rectangle (height first, as in
# [N, C, H, W]). Files and configs store a square as an int (as before rectangles existed) and
# a rectangle as the list [H, W].
Size = int | tuple[int, int] | list[int]


def size_hw(size: Size) -> tuple[int, int]:
    """(height, width) of an input size: an int is a square, a pair is (H, W)."""
    if isinstance(size, (list, tuple)):
        if len(size) == 1:
            return int(size[0]), int(size[0])
        h, w = size
        return int(h), int(w)
    return int(size), int(size)


def size_value(size: Size) -> int | list[int]:
    """The stored form of a size: an int for a square, [H, W] for a rectangle."""
    h, w = size_hw(size)
    return h if h == w else [h, w]


def as_size(size: Size) -> int | tuple[int, int]:
    """A size as code holds it (hashable, comparable): an int for a square, (H, W) else."""
    h, w = size_hw(size)
    return h if h == w else (h, w)


def size_text(size: Size) -> str:
    """'32' for a square, '24x40' (H x W) for a rectangle."""
    h, w = size_hw(size)
    return str(h) if h == w else f"{h}x{w}"


def scaled_size(size: Size, side: int) -> int | list[int]:
    """`size` scaled, aspect kept, until its shorter side is `side` (each side rounded)."""
    h, w = size_hw(size)
    m = min(h, w)
    return size_value((max(1, round(h * side / m)), max(1, round(w * side / m))))


def is_size(v: object, low: int = 1, high: int = 4096) -> bool:
    """An int or an [H, W] pair of ints (never bools), each in [low, high]: a size read from
    a file or an option, checked before it sizes anything."""

    def ok(x: object) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and low <= x <= high

    if isinstance(v, (list, tuple)):
        return len(v) == 2 and all(ok(x) for x in v)
    return ok(v)


def resize_box(input_size: Size, crop_pct: float) -> tuple[int, int]:
    """(H', W') = floor(H / crop_pct), floor(W / crop_pct): the box an image is resized to
    cover before the centre crop of `input_size` (see `resized_shape`)."""
    h, w = size_hw(input_size)
    return math.floor(h / crop_pct + 1e-6), math.floor(w / crop_pct + 1e-6)


def resize_side(input_size: Size, crop_pct: float) -> int:
    """The shorter side an image is resized to before the centre crop of a square
    `input_size`: the one place this rule lives (evaluation, exported files' metadata, the
    server's card and the table of published weights use it). For a rectangle it is the
    box's shorter side; `resize_box` and `resized_shape` give the whole rule."""
    return min(resize_box(input_size, crop_pct))


def resized_shape(h: int, w: int, box: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) an h x w image is resized to so that it covers `box` (bh, bw) with
    its aspect kept: the side that is shorter relative to the box's becomes the box's side,
    the other follows (rounded half to even). If bh * w >= bw * h the height becomes bh and the
    width round(w * bh / h), else the width bw and the height round(h * bw / w). For a square
    box this is the usual rule: the shorter side becomes the box's side."""
    bh, bw = box
    if bh * w >= bw * h:
        return bh, max(bw, round(w * bh / h))
    return max(bh, round(h * bw / w)), bw
