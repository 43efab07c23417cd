"""The model registry: names -> builder functions and their configs; `create_model` lives here."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .errors import CnnzooError, OptionError
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
    in_chans: int | None = None,
    weights: str | Path | None = None,
    pretrained: bool | str = False,
    **overrides,
) -> nn.Module:
    """Build a registered model.

    `pretrained=True` loads the reference's published ImageNet weights (downloaded once and
    cached, see `cnnzoo.hub`; a string names another published set, e.g. "IMAGENET1K_V2").
    `weights` loads a torchvision / timm / cnnzoo checkpoint (.pth, .pt, .safetensors or a
    cnnzoo run folder); a cnnzoo checkpoint's sidecar gives the class count, input channels and
    model options the caller leaves out. A classifier of another size is re-initialised, a
    first convolution for other input channels adapted (and said so)."""
    entry = get_entry(name)
    if pretrained and weights is not None:
        raise CnnzooError("give either pretrained or weights, not both")
    if pretrained:
        from .hub import fetch_weights

        weights = fetch_weights(name, None if pretrained is True else str(pretrained))
    elif weights is not None:
        from .weights import checkpoint_defaults

        weights, facts = checkpoint_defaults(weights, name)
        if num_classes is None:
            num_classes = facts.get("num_classes")
        if in_chans is None:
            in_chans = facts.get("in_chans")
        overrides = {**facts.get("model_overrides", {}), **overrides}
    if num_classes is None:
        num_classes = entry.cfg.num_classes
    if in_chans is None:
        in_chans = 3
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
