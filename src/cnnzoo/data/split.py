"""Seeded, stratified train / validation split (every class keeps its share in both parts)."""

from __future__ import annotations

import torch


def stratified_split(
    labels: torch.Tensor, val_split: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val), each sorted. Each class sends round(n * val_split) images to val,
    but at least one when it has two or more, and never all of them."""
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        n = idx.numel()
        k = round(n * val_split)
        if val_split > 0 and n >= 2:
            k = min(max(k, 1), n - 1)
        else:
            k = 0
        perm = idx[torch.randperm(n, generator=g)]
        val.append(perm[:k])
        train.append(perm[k:])
    if not train:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def held_out_name(val_split: float) -> str:
    return f"held-out {val_split * 100:.3g}% of train"
