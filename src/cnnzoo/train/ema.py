"""Exponential moving average of a model's weights, evaluated next to the model itself."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """Keeps `module`, a copy of the model whose floating-point weights and buffers follow
    ema = decay * ema + (1 - decay) * model after every optimiser step. The decay is ramped up
    over the first steps, (1 + t) / (10 + t), so a short run is not dominated by the random
    initial weights. Integer buffers (BN's step counter) are copied as they are."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        ema_sd, sd = self.module.state_dict(), model.state_dict()
        floats_ema, floats = [], []
        for k, v in ema_sd.items():
            if v.is_floating_point():
                floats_ema.append(v)
                floats.append(sd[k].detach())
            else:
                v.copy_(sd[k])
        torch._foreach_lerp_(floats_ema, floats, 1.0 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(sd)
