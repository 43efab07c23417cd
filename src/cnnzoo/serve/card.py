"""The model card GET /model returns: what the model is, what it expects, how it was made."""

from __future__ import annotations

import re
from pathlib import Path, PureWindowsPath
from typing import Any

from cnnzoo.cfg import resize_box, size_value
from cnnzoo.infer.metadata import interpolation


def model_card(meta: dict[str, Any], source: str | Path, backend: str) -> dict[str, Any]:
    """Name, classes, preprocessing, metrics and recipe from a checkpoint's (or exported
    file's) sidecar."""
    size, crop_pct = size_value(meta["input_size"]), float(meta.get("crop_pct", 1.0))
    return {
        "model": meta["model"],
        "file": Path(source).name,
        "backend": backend,
        "num_classes": len(meta["classes"]),
        "classes": list(meta["classes"]),
        "preprocessing": {
            "in_chans": int(meta.get("in_chans", 3)),
            # a square: the shorter side's length; a rectangle: the [H, W] box the image is
            # resized to cover (aspect kept) before the centre crop of [H, W]
            "resize": size_value(resize_box(size, crop_pct)),
            "crop": size,
            "crop_pct": crop_pct,
            "interpolation": f"{interpolation(meta)}, antialiased",
            "mean": list(meta["mean"]),
            "std": list(meta["std"]),
        },
        "epoch": meta.get("epoch"),
        "metrics": meta.get("metrics"),
        "recipe": without_paths(meta.get("recipe")),
        "data": without_paths(meta.get("data")),
        "export": without_paths(meta.get("export")),
    }


_ABSOLUTE = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")


def without_paths(value: Any) -> Any:
    """`value` with every absolute path (POSIX, Windows, ~) cut to its last part: the card
    tells clients what the data was called, not where it lies on the server's disk."""
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_paths(v) for v in value]
    if isinstance(value, str) and _ABSOLUTE.match(value):
        return PureWindowsPath(value).name if "\\" in value else Path(value).name
    return value
