"""Inference: a checkpoint back to a model (`load_checkpoint`), `Predictor` for images and
folders, `evaluate_checkpoint` for scores, the fast path (`prepare_inference`, `fast_form`:
folded, fused, channels-last, bf16 where the CPU does it), the ONNX runtime, exported files'
metadata and the machine probe. Knows nothing of training.

The names load on first use (PEP 562), so that `cnnzoo --help` imports no torch.
"""

from __future__ import annotations

from cnnzoo.lazy import lazy_names

# public name -> module that defines it
_LAZY = {
    "load_checkpoint": ".load",
    "Predictor": ".predict",
    "Prediction": ".predict",
    "evaluate_checkpoint": ".evaluate",
    "fast_form": ".fast",
    "prepare_inference": ".fast",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
