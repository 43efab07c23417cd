"""Channel shuffle (ShuffleNet): interleave channels across groups so groups exchange information."""

from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    """`channel_shuffle` as a layer (no parameters), for use inside a Sequential."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups) if self.groups > 1 else x

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
