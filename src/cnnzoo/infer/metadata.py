"""What an exported file says about itself: classes, input size, preprocessing, provenance.

The whole checkpoint sidecar travels as JSON under one key (`cnnzoo`), so `predict`, `eval`
and `serve` read an exported file exactly as they read a checkpoint. Beside it, each fact a
consumer in another language needs is a key of its own, readable without parsing that JSON:
ONNX `metadata_props` (string to string) or TorchScript extra files.
"""

from __future__ import annotations

import json
from typing import Any

from cnnzoo.data.transforms import resize_side
from cnnzoo.errors import CnnzooError

FORMAT = "cnnzoo-export-v1"
DEFAULT_OPSET = 17
META_KEY = "cnnzoo"
TORCHSCRIPT_FILE = "cnnzoo.json"  # the extra file inside a TorchScript archive
REQUIRED = ("model", "num_classes", "classes", "input_size", "mean", "std")


def interpolation(meta: dict[str, Any]) -> str:
    """The resize filter of the eval transform (checkpoints before it was recorded: bilinear)."""
    return str(meta.get("interpolation", "bilinear"))


def export_metadata(
    meta: dict[str, Any],
    *,
    export_format: str,
    precision: str,
    input_shape: tuple[int, ...],
    dynamic_batch: bool,
    opset: int | None = None,
    batchnorm_folded: int = 0,
) -> dict[str, str]:
    """String key/values for an exported file: the sidecar under `cnnzoo`, plus one key per
    preprocessing fact. `input_shape` is the traced input (N, C, H, W)."""
    crop_pct = float(meta.get("crop_pct", 1.0))
    size = int(meta["input_size"])
    full = {
        **meta,
        "export": {
            "format": FORMAT,
            "file_format": export_format,
            "precision": precision,
            "input_shape": ["batch" if dynamic_batch else input_shape[0], *input_shape[1:]],
            "opset": opset,
            "batchnorm_folded": batchnorm_folded,
        },
    }
    props = {
        META_KEY: json.dumps(full),
        "format": FORMAT,
        "model": str(meta["model"]),
        "classes": json.dumps(list(meta["classes"])),
        "input_size": str(size),
        "input_shape": json.dumps(full["export"]["input_shape"]),
        "mean": json.dumps([float(v) for v in meta["mean"]]),
        "std": json.dumps([float(v) for v in meta["std"]]),
        "crop_pct": repr(crop_pct),
        "resize": str(resize_side(size, crop_pct)),
        "crop": str(size),
        "interpolation": f"{interpolation(meta)}, antialiased",
        "preprocessing": (
            "RGB; shorter side resized to `resize` (`interpolation`); centre crop "
            "`crop` x `crop` (top-left offset (extra // 2)); x / 255; (x - mean) / std; NCHW"
        ),
        "output": "logits (float32), one per class in the order of `classes`; softmax for probabilities",
        "precision": precision,
    }
    return props


def parse_metadata(props: dict[str, str], where: str) -> dict[str, Any]:
    """The sidecar dict of an exported file from its key/values; a one-line error when the
    file was not written by `cnnzoo export`."""
    raw = props.get(META_KEY)
    if raw is None:
        raise CnnzooError(
            f"{where} carries no cnnzoo metadata (class names, preprocessing); "
            "export it with `cnnzoo export`"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CnnzooError(f"{where}: its cnnzoo metadata is not valid JSON") from None
    missing = [k for k in REQUIRED if k not in meta] if isinstance(meta, dict) else list(REQUIRED)
    if missing:
        raise CnnzooError(f"{where}: cnnzoo metadata lacks {', '.join(missing)}; export it again")
    return meta
