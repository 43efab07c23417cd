"""The ShuffleNet units: V1 (Zhang et al. 2017, figure 2b/2c) and V2 (Ma et al. 2018, figure
3c/3d, with torchvision's module names), built from the same pointwise and depthwise pieces.

V1: a bottleneck of 1x1 group conv -> channel shuffle -> depthwise 3x3 -> 1x1 group conv, added
to the input (stride 1) or, at stride 2, concatenated with a 3x3/2 average pool of the input;
ReLU after the sum. The depthwise conv and the second group conv have no ReLU.

V2, stride 1: split the channels in two halves, keep one, run the other through 1x1 ->
depthwise 3x3 -> 1x1, concatenate, shuffle. Stride 2: both branches see the whole input (the left
one a depthwise 3x3/2 -> 1x1), so the width doubles while the resolution halves. Only the 1x1
convs have a ReLU; the depthwise conv is linear, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.shuffle import ChannelShuffle, channel_shuffle


def _pw(cin: int, cout: int, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers = [nn.Conv2d(cin, cout, 1, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return [*layers, nn.ReLU(inplace=True)] if act else layers


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


class ShuffleV1Unit(nn.Module):
    """`mid_chs`: bottleneck width (a quarter of the unit's output in the paper); `groups`: g of
    the 1x1 group convs; `group_first=False` for the first unit of stage 2, whose narrow input
    (24 channels) the paper does not split into groups. At stride 2 the conv branch gives
    `out_chs - in_chs` channels and the pooled input the rest."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        mid_chs: int,
        groups: int,
        stride: int = 1,
        group_first: bool = True,
    ) -> None:
        super().__init__()
        branch_chs = out_chs - in_chs if stride > 1 else out_chs
        if stride == 1 and in_chs != out_chs:
            raise ValueError("a stride-1 unit keeps its width: in_chs must equal out_chs")
        first_groups = groups if group_first else 1
        if mid_chs % groups or branch_chs % groups or in_chs % first_groups:
            raise ValueError(f"widths {in_chs}/{mid_chs}/{branch_chs} do not split in {groups}")
        self.stride = stride
        # with an ungrouped first conv there are no groups to mix: no shuffle
        shuffle = [ChannelShuffle(groups)] if first_groups > 1 else []
        self.branch = nn.Sequential(
            *_pw(in_chs, mid_chs, first_groups),
            *shuffle,
            *_dw(mid_chs, stride),
            *_pw(mid_chs, branch_chs, groups, act=False),
        )
        self.shortcut = nn.AvgPool2d(3, 2, 1) if stride > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return self.relu(x + self.branch(x))
        return self.relu(torch.cat((self.shortcut(x), self.branch(x)), 1))
