"""Convolution + normalisation + activation, and the depthwise-separable convolution."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnzoo.layers.activations import make_activation


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Symmetric padding that keeps the size at stride 1 (odd kernels)."""
    return (kernel_size - 1) // 2 * dilation


class ConvNormAct(nn.Sequential):
    """conv -> BatchNorm -> activation, as a Sequential so that its keys are 0.*, 1.*
    (the layout torchvision's Conv2dNormActivation uses, so reference weights load as they are).

    `norm=False` drops the norm (and gives the conv a bias); `act=None` drops the activation.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        act: str | Callable[[], nn.Module] | None = "relu",
        norm: bool = True,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        bias: bool | None = None,
    ) -> None:
        if padding is None:
            padding = same_padding(kernel_size, dilation)
        if bias is None:
            bias = not norm
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=bias)
        ]
        if norm:
            layers.append(nn.BatchNorm2d(out_chs, eps=bn_eps, momentum=bn_momentum))
        if act is not None:
            layers.append(make_activation(act))
        super().__init__(*layers)
        self.out_channels = out_chs


class DepthwiseSeparableConv(nn.Module):
    """Depthwise kxk convolution (one filter per channel) followed by a pointwise 1x1 one, each
    with its norm and activation: MobileNetV1's layer pair (its Table 1 lists them as
    "Conv dw" and "Conv 1x1"). Module names are timm's (conv_dw, bn1, conv_pw, bn2), so
    timm's MobileNetV1 weights load as they are.

    With `norm=False`, `act=None`, `pw_bias=True` this is seed 004's example:
    3 -> 64 channels at 3x3 costs 3*9 + 3*64 + 64 = 283 parameters instead of 1,792.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: str | None = "relu",
        norm: bool = True,
        dw_bias: bool = False,
        pw_bias: bool | None = None,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        pad = same_padding(kernel_size)
        self.conv_dw = nn.Conv2d(
            in_chs, in_chs, kernel_size, stride, pad, groups=in_chs, bias=dw_bias
        )
        self.bn1 = nn.BatchNorm2d(in_chs, eps=bn_eps) if norm else nn.Identity()
        self.act1 = make_activation(act)
        self.conv_pw = nn.Conv2d(
            in_chs, out_chs, 1, bias=(not norm) if pw_bias is None else pw_bias
        )
        self.bn2 = nn.BatchNorm2d(out_chs, eps=bn_eps) if norm else nn.Identity()
        self.act2 = make_activation(act)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_dw(x)))
        return self.act2(self.bn2(self.conv_pw(x)))
