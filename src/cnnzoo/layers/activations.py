"""Activations by name, so that specs can say "relu", "hswish", "silu" as plain strings."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "hswish": lambda: nn.Hardswish(inplace=True),
    "hsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "sigmoid": lambda: nn.Sigmoid(),
    "identity": lambda: nn.Identity(),
}


def make_activation(name: str | Callable[[], nn.Module] | None) -> nn.Module:
    """An activation module from a name ("relu", "hswish", ...), a factory, or None (identity)."""
    if name is None:
        return nn.Identity()
    if callable(name):
        return name()
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(_ACTIVATIONS)}") from None
