"""Training: a run's config (`TrainConfig`, the recipes), its set-up, the `Trainer` loop and
everything it owns (optimisers and schedules, EMA, mixing, imbalance, early stop, signals,
records, checks, precision, threads), lr-find and the distributed launcher.

`train(TrainConfig(...))` runs one. The names load on first use (PEP 562): the command line
imports `train.config` to build its options, and that must not import torch for commands that
need none (`cnnzoo models`).
"""

from __future__ import annotations

from cnnzoo.lazy import lazy_names

# public name -> module that defines it
_LAZY = {
    "RECIPES": ".config",
    "TrainConfig": ".config",
    "resolve_config": ".config",
    "DivergedError": ".trainer",
    "RunResult": ".trainer",
    "Trainer": ".trainer",
    "train": ".trainer",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
