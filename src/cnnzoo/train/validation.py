"""Scoring the validation split during training: loss, top-1 and top-5; under DDP each rank
scores a contiguous share and the sums are added, so every rank gets the whole split's numbers."""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.data.types import ImageTensors
from cnnzoo.infer.evaluate import Preprocess, compute_logits, score
from cnnzoo.train.distributed import Dist


def validate(
    model: nn.Module,
    val: ImageTensors,
    preprocess: Preprocess,
    dist: Dist,
    batch_size: int,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
) -> dict[str, float]:
    """{"loss", "acc", "top5"} on `val` ({} when the split is empty)."""
    if len(val) == 0:
        return {}
    images, labels = val.images, val.labels
    world, rank = dist.world, dist.rank
    if world > 1:
        lo, hi = rank * len(val) // world, (rank + 1) * len(val) // world
        images, labels = images[lo:hi], labels[lo:hi]
    logits = compute_logits(model, images, preprocess, batch_size, amp_dtype, channels_last)
    if world == 1:
        s = score(logits, labels)
        return {"loss": s.loss, "acc": s.top1, "top5": s.top5}
    m = int(labels.shape[0])
    s = score(logits, labels) if m else None
    part = [0.0, 0.0, 0.0, 0.0]
    if s is not None:
        part = [s.loss * m, round(s.top1 * m / 100), round(s.top5 * m / 100), float(m)]
    sums = dist.sum_(torch.tensor(part, dtype=torch.float64)).tolist()
    n = sums[3]
    return {"loss": sums[0] / n, "acc": 100.0 * sums[1] / n, "top5": 100.0 * sums[2] / n}
