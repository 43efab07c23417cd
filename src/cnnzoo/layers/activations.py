"""Activations by name, so that specs can say "relu", "hswish", "silu" as plain strings."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class ScaledTanh(nn.Module):
    """LeNet-5's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (LeCun et al. 1998,
    Appendix A): f(1) = 1 and f(-1) = -1."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2 / 3) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)


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
    "lecun_tanh": ScaledTanh,
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
