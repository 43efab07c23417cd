"""DenseNet blocks: the dense layer (BN-ReLU-1x1-BN-ReLU-3x3, adding `growth` channels), the dense
block (every layer sees the concatenation of all earlier outputs) and the transition (BN-ReLU-1x1
conv-2x2 average pool, compressing channels between blocks). Module names follow torchvision.

`memory_efficient=True` recomputes the concatenation + BN + ReLU + 1x1 conv during the backward
pass instead of storing it (torch.utils.checkpoint): same weights, same outputs and gradients, and
activation memory that grows linearly instead of quadratically with the layers of a block. Unlike
a plain checkpoint, the recomputation does not update the BN running statistics a second time.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class DenseLayer(nn.Module):
    def __init__(
        self,
        in_chs: int,
        growth: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        mid = bn_size * growth
        self.norm1 = nn.BatchNorm2d(in_chs)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.memory_efficient = memory_efficient

    def bottleneck(self, inputs: list[torch.Tensor], update_stats: bool = True) -> torch.Tensor:
        """concat -> BN -> ReLU -> 1x1 conv: the part whose activations grow with depth."""
        x = torch.cat(inputs, 1)
        bn = self.norm1
        if bn.training and bn.track_running_stats and not update_stats:
            # a recomputation: same batch statistics, running ones updated in throwaway copies
            # (passing none at all would change what autograd saves, which checkpoint forbids)
            mean, var = bn.running_mean.clone(), bn.running_var.clone()
            x = F.batch_norm(x, mean, var, bn.weight, bn.bias, True, 0.0, bn.eps)
        else:
            x = bn(x)
        return self.conv1(self.relu1(x))

    def _checkpointed(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        calls = [0]

        def run(*xs: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            return self.bottleneck(list(xs), update_stats=calls[0] == 1)

        return checkpoint(run, *inputs, use_reentrant=False, preserve_rng_state=False)

    def forward(self, inputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            inputs = [inputs]
        if (
            self.memory_efficient
            and torch.is_grad_enabled()
            and any(t.requires_grad for t in inputs)
        ):
            x = self._checkpointed(inputs)
        else:
            x = self.bottleneck(inputs)
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return x


class DenseBlock(nn.ModuleDict):
    """`num_layers` dense layers (denselayer1, ...); output = input + num_layers * growth channels."""

    def __init__(
        self,
        num_layers: int,
        in_chs: int,
        growth: int,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(in_chs + i * growth, growth, bn_size, drop_rate, memory_efficient)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_chs + num_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN -> ReLU -> 1x1 conv to `out_chs` -> 2x2 average pool (halves the resolution)."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_chs),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_chs, out_chs, 1, bias=False),
                pool=nn.AvgPool2d(2, 2),
            )
        )
        self.out_channels = out_chs
