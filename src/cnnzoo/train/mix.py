"""Mixup and CutMix on a whole batch, with soft targets, driven by the trainer's generator."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    t = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return t.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def _numpy_rng(generator: torch.Generator) -> np.random.Generator:
    # Beta samples come from numpy, seeded from the torch generator, so that generator's state
    # alone decides them (torch's Beta sampler takes no generator).
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return np.random.default_rng(seed)


def mix_batch(
    x: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    mixup: float,
    cutmix: float,
    smoothing: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blend each image with its partner in the reversed batch. Returns (images, soft targets,
    the label that dominates each mixed image). With both mixup and cutmix, each batch gets one
    of the two at random."""
    rng = _numpy_rng(generator)
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(rng.beta(alpha, alpha))
    partner = x.flip(0)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = np.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    else:
        x = x * lam + partner * (1.0 - lam)
    t = smooth_one_hot(labels, num_classes, smoothing)
    targets = t * lam + t.flip(0) * (1.0 - lam)
    dominant = labels if lam >= 0.5 else labels.flip(0)
    return x, targets, dominant


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
