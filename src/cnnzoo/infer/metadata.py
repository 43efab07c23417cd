"""What an exported file says about itself: classes, input size, preprocessing, provenance.

The whole checkpoint sidecar travels as JSON under one key (`cnnzoo`), so `predict`, `eval`
and `serve` read an exported file exactly as they read a checkpoint. Beside it, each fact a
consumer in another language needs is a key of its own, readable without the sidecar:

- ONNX `metadata_props` are strings by ONNX's design: **every value is one JSON value**
  (`"input_size": "224"`, `"interpolation": "\"bicubic\""`, `"mean": "[0.485, ...]"`), so
  `json.loads(value)` gives it typed;
- TorchScript's extra file `preprocessing.json` is one JSON object of the same keys, typed.

`preprocessing` holds every rule that turns an image file into the model's input, typed
(`preprocessing_rules`), in the order they apply: decoding (EXIF orientation, palette, alpha
composited on white, grey, 16-bit and float images, CMYK and other modes, all as
`cnnzoo.data.images.to_rgb` does it), long-strip cut, resize (aspect kept, to cover a box:
for a square input the shorter side to its length; filter, antialiasing, rounding of the
other side), centre crop, scaling and normalisation, layout. A rectangular input (H x W)
has `input_size`, `resize` and `crop` as [H, W] lists; a square one as ints.
tests/onnx_client.py follows it with nothing but onnxruntime, Pillow and numpy and gets
`cnnzoo predict`'s probabilities.
"""

from __future__ import annotations

import json
from typing import Any

from cnnzoo.cfg import resize_box, size_hw, size_value
from cnnzoo.data.images import strip_aspect
from cnnzoo.errors import CnnzooError

FORMAT = "cnnzoo-export-v1"
DEFAULT_OPSET = 17
META_KEY = "cnnzoo"
TORCHSCRIPT_FILE = "cnnzoo.json"  # the extra file inside a TorchScript archive
REQUIRED = ("model", "num_classes", "classes", "input_size", "mean", "std")
RULES_VERSION = 2  # 2: rectangular inputs (resize box and rule, crop height and width)


def interpolation(meta: dict[str, Any]) -> str:
    """The resize filter of the eval transform (checkpoints before it was recorded: bilinear)."""
    return str(meta.get("interpolation", "bilinear"))


def preprocessing_rules(meta: dict[str, Any]) -> dict[str, Any]:
    """Every rule from image file to model input, as typed values (see the module docstring)."""
    (h, w), crop_pct = size_hw(meta["input_size"]), float(meta.get("crop_pct", 1.0))
    box = resize_box((h, w), crop_pct)
    filt = interpolation(meta)
    return {
        "version": RULES_VERSION,
        "decode": {
            "orientation": "exif",  # the EXIF Orientation tag (0x0112) applied first
            "palette": "rgba_if_transparency_else_rgb",
            "alpha": {"composite_on": [255, 255, 255], "modes": ["RGBA", "RGBa", "LA", "La", "PA"]},
            "grey": "replicate_to_rgb",
            # 16-bit integers (or "I" holding values above 255): v / 257; float images in 0..1:
            # v * 255, others stretched min..max to 0..255; then rounded half to even
            "wide": {"integer_divisor": 257, "float_scale": 255, "rounding": "half_even"},
            "other_modes": "pillow_convert_rgb",  # CMYK, YCbCr, 1: Pillow's convert("RGB")
            "result": {"mode": "RGB", "dtype": "uint8"},
        },
        # the longer side cut around the centre (evenly) to at most this x the shorter one
        # before resizing: the centre crop never reaches further
        "max_aspect": strip_aspect((h, w)),
        "max_aspect_cut": "keep = floor(shorter * max_aspect) + (longer - that) % 2; "
        "offset = (longer - keep) // 2",
        "resize": {
            # the image is resized, aspect kept, to cover box [height, width]: for a square
            # box its shorter side becomes `shorter_side` (null for a rectangular box)
            "box": list(box),
            "rule": "if box_h * w >= box_w * h: height = box_h, width = round_half_even(w * "
            "box_h / h); else: width = box_w, height = round_half_even(h * box_w / w)",
            "shorter_side": box[0] if box[0] == box[1] else None,
            "longer_side": "round_half_even(longer * shorter_side / shorter)",
            "interpolation": filt,
            "antialias": True,  # Pillow's resampling on float pixels, torch antialias=True
            "on": "float32 0..255",
            "clamp": [0, 255] if filt == "bicubic" else None,
            "skip_if_shorter_side_equal": True,  # for a square box; any box: the same size
            "skip_if_same_size": True,
        },
        "crop": {"height": h, "width": w, "offset": "floor((resized - crop) / 2)"},
        "scale": 255.0,  # x / scale
        "mean": [float(v) for v in meta["mean"]],
        "std": [float(v) for v in meta["std"]],
        "normalise": "(x / scale - mean) / std",
        "layout": "NCHW",
        "channel_order": "RGB",
        "dtype": "float32",
        "input": "input",
        "output": "logits",
    }


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
    """Key/values for an exported file, each value one JSON value: the sidecar under
    `cnnzoo`, plus one key per preprocessing fact. `input_shape` is the traced input (N, C,
    H, W)."""
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
    rules = preprocessing_rules(meta)
    facts = {
        "format": FORMAT,
        "model": str(meta["model"]),
        "classes": list(meta["classes"]),
        "input_size": size_value(meta["input_size"]),
        "input_shape": full["export"]["input_shape"],
        "mean": rules["mean"],
        "std": rules["std"],
        "crop_pct": float(meta.get("crop_pct", 1.0)),
        "resize": size_value(rules["resize"]["box"]),  # a square: the shorter side
        "crop": size_value((rules["crop"]["height"], rules["crop"]["width"])),
        "interpolation": rules["resize"]["interpolation"],
        "preprocessing": rules,
        "output": "logits (float32), one per class in the order of `classes`; softmax for "
        "probabilities",
        "precision": precision,
    }
    return {META_KEY: json.dumps(full), **{k: json.dumps(v) for k, v in facts.items()}}


def read_facts(props: dict[str, str]) -> dict[str, Any]:
    """The typed facts of an exported file's key/values (every value but `cnnzoo` decoded)."""
    out = {}
    for key, value in props.items():
        if key == META_KEY:
            continue
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:  # written by an older cnnzoo: plain strings
            out[key] = value
    return out


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
