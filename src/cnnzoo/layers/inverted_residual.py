"""The inverted residual block (MobileNetV2) and its descendants, MobileNetV3's bneck and
EfficientNet's MBConv: one class, configured by expansion, kernel, stride, SE and activation;
and EfficientNetV2's fused MBConv, which merges the expansion and the depthwise conv into one
full kxk conv (`FusedMBConv`, below).

    [1x1 expand + BN + act]  (only when the expanded width differs from the input width)
    kxk depthwise + BN + act
    [squeeze-excite]         (MobileNetV3: ReLU / hard-sigmoid; EfficientNet: SiLU / sigmoid)
    1x1 project + BN         (linear bottleneck: no activation)
    + input                  (when stride 1 and width unchanged; through stochastic depth)

The layers form one Sequential whose name and layout are options, so torchvision's three
layouts load as they are: MobileNetV2 keeps them under `conv` with the projection conv and BN
as separate entries (conv.1, conv.2), MobileNetV3 / EfficientNet under `block` with the
projection as one conv-norm pair (block.3.0, block.3.1), MNASNet every conv, BN and activation
as its own entry under `layers` (`flat=True`: layers.0 ... layers.7).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.conv import ConvNormAct
from cnnzoo.layers.drop import DropPath
from cnnzoo.layers.se import SqueezeExcite


class InvertedResidual(nn.Module):
    """Narrow -> wide -> narrow residual block with a depthwise conv in the wide part.

    `mid_chs` is the expanded width, computed by the caller as its paper does (MobileNetV2:
    round(in * t); MobileNetV3: from its table; EfficientNet: make_divisible(in * t)).
    `se_chs` is the squeezed width of the SE module (0: no SE).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        mid_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: str = "relu6",
        se_chs: int = 0,
        se_act: str = "relu",
        se_gate: str = "sigmoid",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        drop_path: float = 0.0,
        body_name: str = "block",
        flat_project: bool = False,
        flat: bool = False,
    ) -> None:
        super().__init__()
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        layers: list[nn.Module] = []

        def add(unit: nn.Module, unpack: bool = flat) -> None:
            if unpack:
                layers.extend(unit)
            else:
                layers.append(unit)

        if mid_chs != in_chs:
            add(ConvNormAct(in_chs, mid_chs, 1, act=act, **norm))
        add(ConvNormAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, act=act, **norm))
        if se_chs:
            layers.append(SqueezeExcite(mid_chs, se_chs, act=se_act, gate=se_gate))
        # flat_project: conv and BN as two entries of the body (MobileNetV2's key layout)
        add(ConvNormAct(mid_chs, out_chs, 1, act=None, **norm), flat or flat_project)
        self.body_name = body_name
        self.add_module(body_name, nn.Sequential(*layers))
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.use_residual = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path) if self.use_residual and drop_path else nn.Identity()

    @property
    def body(self) -> nn.Sequential:
        return getattr(self, self.body_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.use_residual:
            out = self.drop_path(out) + x
        return out


class FusedMBConv(nn.Module):
    """EfficientNetV2's fused MBConv (Tan & Le 2021): the 1x1 expansion and the kxk depthwise
    conv of an MBConv replaced by one full kxk conv, faster on accelerators in early stages.

        kxk conv (stride) + BN + act     in -> mid (in -> out when there is no expansion)
        1x1 project + BN                 mid -> out (only when mid != in)
        + input                          (stride 1, width unchanged; through stochastic depth)

    Keys are torchvision's: block.0.0/0.1 and block.1.0/1.1.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        mid_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: str = "silu",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        norm = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}
        if mid_chs != in_chs:
            self.block = nn.Sequential(
                ConvNormAct(in_chs, mid_chs, kernel_size, stride, act=act, **norm),
                ConvNormAct(mid_chs, out_chs, 1, act=None, **norm),
            )
        else:
            self.block = nn.Sequential(
                ConvNormAct(in_chs, out_chs, kernel_size, stride, act=act, **norm)
            )
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.use_residual = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_path) if self.use_residual and drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = self.drop_path(out) + x
        return out
