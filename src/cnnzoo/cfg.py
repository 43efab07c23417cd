"""The model config record (`ModelCfg`) and the normalisation constants: a leaf module, imported
by models, data and engine alike, that imports nothing of cnnzoo's own (no import cycles)."""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
INTERPOLATIONS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class ModelCfg:
    """How a model expects its input, and where its design and weights come from.

    `crop_pct` and `interpolation` are the reference weights' published eval transform: resize
    the short side to input_size / crop_pct with that interpolation, centre-crop input_size."""

    family: str
    input_size: int = 224
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    source: str = ""  # reference implementation whose state-dict layout the model matches
    paper: str = ""
