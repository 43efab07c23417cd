"""Deprecated: `cnnzoo.engine.predict` moved to `cnnzoo.infer.predict` (kept one release)."""

from __future__ import annotations

import warnings

from cnnzoo.infer.predict import Prediction, Predictor, collect_images

warnings.warn(
    "cnnzoo.engine.predict moved to cnnzoo.infer.predict (Predictor is also cnnzoo.infer."
    "Predictor); cnnzoo.engine goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["Prediction", "Predictor", "collect_images"]
