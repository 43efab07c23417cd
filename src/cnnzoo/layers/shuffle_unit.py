"""The ShuffleNetV2 unit (Ma et al. 2018, figure 3c/3d), with torchvision's module names.

Stride 1: split the channels in two halves, keep one, run the other through 1x1 -> depthwise 3x3
-> 1x1, concatenate, shuffle. Stride 2: both branches see the whole input (the left one a
depthwise 3x3/2 -> 1x1), so the width doubles while the resolution halves. Only the 1x1 convs
have a ReLU; the depthwise conv is linear, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.shuffle import channel_shuffle


def _pw(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _dw(c: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False), nn.BatchNorm2d(c)]


class ShuffleV2Unit(nn.Module):
    """`out_chs` must be even: each branch gives half of it. With stride 1, in_chs == out_chs."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        if out_chs % 2:
            raise ValueError(f"out_chs must be even, got {out_chs}")
        half = out_chs // 2
        if stride == 1 and in_chs != out_chs:
            raise ValueError("a stride-1 unit keeps its width: in_chs must equal out_chs")
        self.stride = stride
        # keys branch1.{0,1,2,3} and branch2.{0,1,3,4,5,6}, as in torchvision
        self.branch1 = (
            nn.Sequential(*_dw(in_chs, stride), *_pw(in_chs, half)) if stride > 1 else None
        )
        self.branch2 = nn.Sequential(
            *_pw(in_chs if stride > 1 else half, half), *_dw(half, stride), *_pw(half, half)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch1 is None:
            keep, x = x.chunk(2, dim=1)
            out = torch.cat((keep, self.branch2(x)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return channel_shuffle(out, 2)
