"""The model card GET /model returns: what the model is, what it expects, how it was made."""

from __future__ import annotations

from pathlib import Path
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
        "recipe": meta.get("recipe"),
        "data": meta.get("data"),
        "export": meta.get("export"),
    }
