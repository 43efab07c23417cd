"""Channel shuffle (ShuffleNet): interleave channels across groups so groups exchange information."""

from __future__ import annotations

import torch


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
