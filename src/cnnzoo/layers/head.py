"""The classifier head most of the zoo shares: global average pool -> dropout -> linear."""

from __future__ import annotations

import torch
from torch import nn


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, C]: the mean over the spatial positions."""
    return x.mean((2, 3))


class ClassifierHead(nn.Sequential):
    """pool -> dropout -> linear, as a Sequential (dropout, linear) so its keys are `.1.weight`
    and `.1.bias`: torchvision's layout for MobileNetV2's and EfficientNet's `classifier`.
    `num_classes=0` keeps the pooled features (a headless model)."""

    def __init__(
        self, in_features: int, num_classes: int, drop_rate: float = 0.0, inplace: bool = False
    ) -> None:
        fc = nn.Linear(in_features, num_classes) if num_classes else nn.Identity()
        super().__init__(nn.Dropout(drop_rate, inplace=inplace), fc)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self[0](global_pool(x))
        return x if pre_logits else self[1](x)
