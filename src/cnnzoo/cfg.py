"""The model config record (`ModelCfg`), the normalisation constants and the precision words: a
leaf module, imported
by models, data and engine alike, that imports nothing of cnnzoo's own (no import cycles)."""

from __future__ import annotations

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
