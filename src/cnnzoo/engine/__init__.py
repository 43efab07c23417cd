"""Deprecated: `cnnzoo.engine` was split into `cnnzoo.train`, `cnnzoo.infer`, `cnnzoo.insight`
and `cnnzoo.artifacts`. The old names still resolve, for one release, with a
DeprecationWarning naming the new place."""

from __future__ import annotations

import importlib
import warnings

# old public name -> the module that now defines it
_MOVED = {
    "RECIPES": "cnnzoo.train.config",
    "TrainConfig": "cnnzoo.train.config",
    "resolve_config": "cnnzoo.train.config",
    "DivergedError": "cnnzoo.train.trainer",
    "RunResult": "cnnzoo.train.trainer",
    "Trainer": "cnnzoo.train.trainer",
    "train": "cnnzoo.train.trainer",
    "load_checkpoint": "cnnzoo.infer.load",
    "read_checkpoint": "cnnzoo.artifacts.sidecar",
    "save_checkpoint": "cnnzoo.artifacts.sidecar",
    "fast_form": "cnnzoo.infer.fast",
    "prepare_inference": "cnnzoo.infer.fast",
}

__all__ = sorted(_MOVED)


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = _MOVED[name]
    public = new.rsplit(".", 1)[0] if new.startswith(("cnnzoo.train.", "cnnzoo.infer.")) else new
    warnings.warn(
        f"cnnzoo.engine.{name} moved to {public}.{name}; cnnzoo.engine goes in the next release",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(new), name)
