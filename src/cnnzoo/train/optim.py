"""Optimiser with parameter groups (no decay on norms and biases, scaled backbone lr) and the
learning-rate schedules, which are pure functions of the step so resuming needs only the step."""

from __future__ import annotations

import math

import torch
from torch import nn


def head_prefix(model: nn.Module) -> str:
    return getattr(model, "classifier_name", "fc") + "."


def freeze_backbone(model: nn.Module) -> None:
    """Only the classifier keeps requires_grad."""
    prefix = head_prefix(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefix))


def param_groups(
    model: nn.Module, weight_decay: float, backbone_lr_scale: float = 1.0
) -> list[dict]:
    """Trainable parameters split by (backbone or head) x (decay or not). Each group carries
    `lr_scale`, which the schedule multiplies into the peak lr."""
    no_decay = (
        set(model.no_weight_decay_keys()) if hasattr(model, "no_weight_decay_keys") else set()
    )
    prefix = head_prefix(model)
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim > 1 and name not in no_decay
        groups.setdefault((name.startswith(prefix), decay), []).append(p)
    out = []
    for (is_head, decay), params in sorted(groups.items()):  # fixed order: resume maps by index
        scale = 1.0 if is_head else backbone_lr_scale
        if scale == 0:
            for p in params:
                p.requires_grad_(False)
            continue
        out.append(
            {"params": params, "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale}
        )
    return out


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    backbone_lr_scale: float = 1.0,
) -> torch.optim.Optimizer:
    groups = param_groups(model, weight_decay, backbone_lr_scale)
    if not groups:
        raise ValueError("no trainable parameters")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def lr_factor(
    step: int, total: int, warmup: int, kind: str = "cosine", min_ratio: float = 0.0
) -> float:
    """Multiplier of the peak lr at `step` (0-based) of `total` optimiser steps."""
    if kind == "onecycle":
        # rise from peak/25 to the peak over 30% of the run, then anneal to ~0, both cosine
        rise = max(1, int(0.3 * total))
        if step < rise:
            t = step / rise
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * t)) / 2
        t = (step - rise) / max(1, total - rise)
        return min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * min(t, 1.0))) / 2
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    if kind == "flatcos":  # hold the peak, then anneal over the last quarter of the run
        flat_end = max(warmup, int(0.75 * total))
        if step < flat_end:
            return 1.0
        warmup = flat_end
    t = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * min(t, 1.0))) / 2


def set_lr(optimizer: torch.optim.Optimizer, peak_lr: float, factor: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = peak_lr * g.get("lr_scale", 1.0) * factor
    return peak_lr * factor
