"""Convolution + normalisation + activation, and the depthwise-separable convolution."""

from __future__ import annotations

from collections.abc import Callable

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
    """Depthwise kxk convolution (one filter per channel) followed by a pointwise 1x1 one.

    With `norm=False`, `dw_bias=False`, `pw_bias=True` this is seed 004's example:
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
    ) -> None:
        super().__init__()
        pad = same_padding(kernel_size)
        self.dw = nn.Conv2d(in_chs, in_chs, kernel_size, stride, pad, groups=in_chs, bias=dw_bias)
        self.dw_norm = nn.BatchNorm2d(in_chs) if norm else nn.Identity()
        self.dw_act = make_activation(act) if norm else nn.Identity()
        self.pw = nn.Conv2d(in_chs, out_chs, 1, bias=(not norm) if pw_bias is None else pw_bias)
        self.pw_norm = nn.BatchNorm2d(out_chs) if norm else nn.Identity()
        self.pw_act = make_activation(act) if norm else nn.Identity()

    def forward(self, x):
        x = self.dw_act(self.dw_norm(self.dw(x)))
        return self.pw_act(self.pw_norm(self.pw(x)))
