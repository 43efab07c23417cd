"""Training, evaluation and prediction: `train(TrainConfig(...))`, `load_checkpoint(path)`,
`Predictor`, `evaluate_checkpoint`; `prepare_inference` / `fast_form`: the fast inference path.

The names load on first use (PEP 562): the command line imports `engine.config` to build its
options, and that must not import torch for commands that need none (`cnnzoo models`).
"""

from __future__ import annotations

from ..lazy import lazy_names

# public name -> module that defines it
_LAZY = {
    "RECIPES": ".config",
    "TrainConfig": ".config",
    "resolve_config": ".config",
    "load_checkpoint": ".checkpoint",
    "read_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
    "fast_form": ".fast",
    "prepare_inference": ".fast",
    "DivergedError": ".trainer",
    "RunResult": ".trainer",
    "Trainer": ".trainer",
    "train": ".trainer",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
