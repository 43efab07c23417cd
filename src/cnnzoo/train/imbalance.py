"""Training on imbalanced classes: inverse-frequency loss weights, a class-balanced epoch
order, and the check that says when either is worth it."""

from __future__ import annotations

import torch

IMBALANCE_RATIO = 5.0  # largest class / smallest class above which `cnnzoo data` warns


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels.cpu().long(), minlength=num_classes)


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """w_c = N / (C * n_c) over the C classes that have images: 1 for every class when
    balanced, each class's total weight in the loss equal, the total N as without weights; a
    class with no image gets 0."""
    counts = class_counts(labels, num_classes).double()
    present = int((counts > 0).sum())
    w = torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), 0.0)
    return w.float()


def balanced_order(labels: torch.Tensor, num_classes: int, generator: torch.Generator):
    """One epoch of len(labels) indices drawn with replacement, each class equally likely."""
    counts = class_counts(labels, num_classes).double()
    per_image = (1.0 / counts.clamp(min=1))[labels.cpu().long()]
    return torch.multinomial(per_image, len(labels), replacement=True, generator=generator)


def imbalance_warning(labels: torch.Tensor, classes: list[str]) -> str | None:
    """A warning when the largest class holds more than IMBALANCE_RATIO times the images of the
    smallest (classes with no training image count as 1)."""
    counts = class_counts(labels, len(classes))
    if len(classes) < 2 or counts.sum() == 0:
        return None
    big, small = int(counts.argmax()), int(counts.argmin())
    ratio = int(counts[big]) / max(1, int(counts[small]))
    if ratio <= IMBALANCE_RATIO:
        return None
    return (
        f"warning: imbalanced classes: {classes[big]} has {int(counts[big]):,} training images, "
        f"{classes[small]} {int(counts[small]):,} ({ratio:.1f}x); consider "
        "cnnzoo train --class-weights auto or --sampler balanced"
    )


def weighted_soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """sum_i sum_c -w_c t_ic log p_ic / sum_i sum_c w_c t_ic: for one-hot targets, the same as
    F.cross_entropy(logits, labels, weight=weights)."""
    wt = targets * weights[None]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(wt * logp).sum() / wt.sum().clamp(min=1e-12)
