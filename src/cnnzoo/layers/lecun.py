"""LeNet-5's own layers (LeCun et al. 1998, section II-B): the trainable subsampling layer and
the convolution whose output maps each read a chosen subset of the input maps (the paper's
Table I connection table for C3). Its squashing function is `activations.ScaledTanh`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.layers.activations import make_activation

# which S2 maps each of C3's 16 maps reads (Table I): six read 3 neighbouring maps, six read 4
# neighbouring maps, three read 4 maps that are not all neighbours, the last reads all six
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    *(tuple((i + k) % 6 for k in range(3)) for i in range(6)),
    *(tuple((i + k) % 6 for k in range(4)) for i in range(6)),
    (0, 1, 3, 4),
    (1, 2, 4, 5),
    (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class Subsampling(nn.Module):
    """S2 / S4: each unit adds a 2x2 block of its map (stride 2), multiplies the sum by one
    trainable coefficient per map, adds one trainable bias per map and squashes: 2C parameters."""

    def __init__(self, channels: int, act: str | None = "lecun_tanh") -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2) * 4  # the sum of each 2x2 block
        return self.act(x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1))


class ConnectionTableConv(nn.Module):
    """A kxk convolution (no padding) whose output map j reads only the input maps `table[j]`.

    Maps that read the same number of inputs share one grouped conv over their gathered input
    channels, so the parameters are exactly the table's connections (C3: 60 x 25 weights + 16
    biases = 1,516) and the multiply-adds a convolution counter sees are the real ones."""

    def __init__(self, table: Sequence[Sequence[int]], kernel_size: int = 5) -> None:
        super().__init__()
        sizes = sorted({len(t) for t in table})
        self.convs = nn.ModuleList()
        gather, order = [], []
        for n in sizes:
            maps = [j for j, t in enumerate(table) if len(t) == n]
            order += maps
            gather.append(torch.tensor([i for j in maps for i in table[j]]))
            self.convs.append(nn.Conv2d(n * len(maps), len(maps), kernel_size, groups=len(maps)))
        # index buffers (not state: not in the state dict) follow the model across devices
        for i, idx in enumerate(gather):
            self.register_buffer(f"gather{i}", idx, persistent=False)
        # conv outputs come grouped by input count: put them back in table order
        self.reorder = order != sorted(order)
        self.register_buffer("order", torch.tensor(order).argsort(), persistent=False)
        self.out_channels = len(table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [
            conv(x.index_select(1, getattr(self, f"gather{i}")))
            for i, conv in enumerate(self.convs)
        ]
        y = torch.cat(outs, 1)
        return y.index_select(1, self.order) if self.reorder else y
