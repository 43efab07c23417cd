"""Squeeze-and-excitation: global average pool -> reduce -> act -> expand -> gate -> rescale."""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.layers.activations import make_activation


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `v` to a multiple of `divisor`, never going more than 10% below it
    (the rounding MobileNet / EfficientNet use for channel counts)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class SqueezeExcite(nn.Module):
    """Channel attention with 1x1 convs named fc1 / fc2 (the names torchvision and timm use).

    `rd_channels` is the squeezed width; the callers compute it as their paper does
    (SENet: channels / 16; MobileNetV3: make_divisible(channels / 4); EfficientNet: block in / 4).
    """

    def __init__(
        self, channels: int, rd_channels: int, act: str = "relu", gate: str = "sigmoid"
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = make_activation(act)
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = make_activation(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))
