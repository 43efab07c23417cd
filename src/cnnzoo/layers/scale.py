"""Layer scale: a learnable per-channel multiplier on a residual branch (ConvNeXt, init 1e-6)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiply by a per-channel `gamma`; `channels_last` picks the channel axis (last or 1)."""

    def __init__(self, dim: int, init: float = 1e-6, channels_last: bool = False) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gamma if self.channels_last else self.gamma.view(1, -1, 1, 1)
        return x * g
