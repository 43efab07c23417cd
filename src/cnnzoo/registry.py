"""The model registry: names -> builder functions and their configs; `create_model` lives here."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from .errors import CnnzooError, OptionError

if TYPE_CHECKING:  # importing .models here would load the families before this module is ready
    from .models.base import ModelCfg


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    cfg: ModelCfg


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(cfg: ModelCfg) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register `fn(num_classes=..., in_chans=..., **overrides)` under its own name."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise RuntimeError(f"model {fn.__name__} registered twice")
        _REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, cfg)
        return fn

    return wrap


def _ensure_loaded() -> None:
    from . import models  # noqa: F401  (importing registers every family)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, sorted."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnzoo models`"
        raise CnnzooError(f"unknown model {name!r}{hint}")
    return _REGISTRY[name]


def get_model_cfg(name: str) -> ModelCfg:
    return get_entry(name).cfg


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int = 3,
    weights: str | Path | None = None,
    **overrides,
) -> nn.Module:
    """Build a registered model; with `weights`, load a torchvision / timm / cnnzoo checkpoint
    (.pth, .pt or .safetensors). A classifier of another size is re-initialised (and said so)."""
    entry = get_entry(name)
    if num_classes is None:
        num_classes = entry.cfg.num_classes
    if num_classes < 0:
        raise CnnzooError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")
    if in_chans < 1:
        raise CnnzooError(f"in_chans must be at least 1, got {in_chans}")
    try:
        model = entry.builder(num_classes=num_classes, in_chans=in_chans, **overrides)
    except TypeError as e:
        raise CnnzooError(f"bad option for {name}: {e}") from None
    except ValueError as e:  # the builders' own checks: unknown stem, bad table values, ...
        raise OptionError(f"bad option for {name}: {e}") from None
    model.cfg = entry.cfg
    model.model_name = name
    model.model_overrides = dict(overrides)
    model.num_classes = num_classes
    if weights is not None:
        from .weights import load_weights

        load_weights(model, weights)
    return model
