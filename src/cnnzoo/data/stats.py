"""Per-channel mean and standard deviation of a uint8 image set, for normalisation."""

from __future__ import annotations

import torch


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of uint8 [N, C, H, W] images, on the 0..1 scale.

    Counts the 256 values per channel instead of converting the set to float: exact, and no
    float copy of a whole dataset in memory."""
    values = torch.arange(256, dtype=torch.float64)
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        n = hist.sum().clamp(min=1)
        mean = (hist * values).sum() / n
        var = (hist * (values - mean) ** 2).sum() / n
        means.append(round(float(mean) / 255, 4))
        stds.append(round(max(float(var.sqrt()) / 255, 1e-3), 4))
    return tuple(means), tuple(stds)
