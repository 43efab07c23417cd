"""The model registry: each family registers its builders here, by name, with their config.

A leaf: it imports no family (`cnnzoo.models` imports the families, which register
themselves); building a model by name is `cnnzoo.models.factory`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnzoo.cfg import ModelCfg


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    cfg: ModelCfg


REGISTRY: dict[str, ModelEntry] = {}


def register_model(cfg: ModelCfg) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `fn(num_classes=..., in_chans=..., **overrides)` under its own name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in REGISTRY:
            raise RuntimeError(f"model {fn.__name__} registered twice")
        REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, cfg)
        return fn

    return wrap
