"""LayerNorm over the channel dimension of NCHW tensors (ConvNeXt's downsampling layers)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """nn.LayerNorm applied to channels of an NCHW tensor; same parameters as nn.LayerNorm(C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
