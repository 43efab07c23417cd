"""RegNet's X / Y block (Radosavovic et al. 2020): a ResNeXt bottleneck with a fixed group width.

    1x1 conv + BN + ReLU            (f.a: in -> w_b)
    3x3 grouped conv + BN + ReLU    (f.b: w_b / group_width groups, stride here)
    [squeeze-excite]                (f.se, Y only: squeezed to se_ratio * the block's input width)
    1x1 conv + BN                   (f.c: w_b -> out)
    + shortcut (identity, or 1x1 conv + BN "proj" when the shape changes), then ReLU

Keys follow torchvision's RegNet (proj.0/1, f.a.0/1, f.b.0/1, f.se.fc1/fc2, f.c.0/1).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct
from cnnzoo.layers.drop import DropPath
from cnnzoo.layers.se import SqueezeExcite


class ResBottleneck(nn.Module):
    """`bottleneck` is the ratio w_b / out (1 in every published RegNet), `group_width` the
    channels per group of the 3x3 conv, `se_ratio` 0 for an X block."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int = 1,
        group_width: int = 1,
        bottleneck: float = 1.0,
        se_ratio: float = 0.0,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        w_b = int(round(out_chs * bottleneck))
        self.proj = None
        if in_chs != out_chs or stride != 1:
            self.proj = ConvNormAct(in_chs, out_chs, 1, stride, act=None, **norm)
        f = nn.Sequential()
        f.add_module("a", ConvNormAct(in_chs, w_b, 1, **norm))
        f.add_module("b", ConvNormAct(w_b, w_b, 3, stride, groups=w_b // group_width, **norm))
        if se_ratio:
            f.add_module("se", SqueezeExcite(w_b, int(round(se_ratio * in_chs))))
        f.add_module("c", ConvNormAct(w_b, out_chs, 1, act=None, **norm))
        self.f = f
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(self.drop_path(self.f(x)) + shortcut)
