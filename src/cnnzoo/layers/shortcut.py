"""The residual family's small parts: 3x3 / 1x1 convs, the shortcut projections (torchvision's
1x1 conv, the CIFAR paper's parameter-free padding, ResNet-D's average-pool projection) and
ResNet-D's deep stem."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class PadShortcut(nn.Module):
    """The ResNet paper's CIFAR shortcut (option A): subsample, then zero-pad the new channels.
    It has no parameters, which is why resnet20 has 0.27M of them."""

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra - half))


SHORTCUTS = ("conv", "pad", "avg")


def shortcut(kind: str, cin: int, cout: int, stride: int) -> nn.Module:
    """The projection of a block whose shape changes: `kind` is a ResNetSpec.shortcut."""
    if kind == "pad":
        return PadShortcut(stride, cout - cin)
    if kind == "avg":  # ResNet-D: average, then project at stride 1 (timm: downsample.0/1/2)
        pool = nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
        return nn.Sequential(
            pool if stride > 1 else nn.Identity(), conv1x1(cin, cout), nn.BatchNorm2d(cout)
        )
    return nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))


def deep_stem(cin: int, mid: int, cout: int, stride: int) -> nn.Sequential:
    """ResNet-D's stem: 3x3 convs cin -> mid (strided) -> mid -> cout, BN + ReLU between;
    the last conv's BN + ReLU are the network's bn1 / relu."""
    return nn.Sequential(
        conv3x3(cin, mid, stride),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        conv3x3(mid, mid),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        conv3x3(mid, cout),
    )
