"""Optimiser with parameter groups (no decay on norms and biases, scaled backbone lr) and the
learning-rate schedules, which are pure functions of the step so resuming needs only the step
(and, for a finished run trained longer, the schedule segment it started: `restart_schedule`)."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn

log = logging.getLogger("cnnzoo")


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


def run_lr_factor(step: int, steps_per_epoch: int, cfg, segment: dict[str, Any] | None) -> float:
    """Multiplier of the peak lr at `step` of a run: its schedule over `cfg.epochs`, or, after
    `restart_schedule`, the schedule of the segment from its start to `cfg.epochs`."""
    start_epoch, start_step, warmup_epochs = 0, 0, cfg.warmup_epochs
    if segment is not None:
        start_epoch, start_step = segment["start_epoch"], segment["start_step"]
        warmup_epochs = segment["warmup_epochs"]
    total = steps_per_epoch * (cfg.epochs - start_epoch)
    warmup = int(round(warmup_epochs * steps_per_epoch))
    return lr_factor(step - start_step, total, warmup, cfg.sched, cfg.min_lr_ratio)


def restart_schedule(loop, cfg, saved_epochs: int) -> None:
    """A run that finished its schedule (lr annealed to ~0) and is resumed with more --epochs
    trains the added epochs on a schedule of their own: a warm restart, the same kind of
    schedule from the peak lr (cfg.lr: the run's, or --lr given with --resume) down again over
    the added epochs, with a warm-up of the same share of them as the run had. Recorded in
    `loop.segment`, saved with the state, so a resume inside it stays bit-exact. A run stopped
    before its end keeps its one schedule, stretched to the new length (its lr is not spent)."""
    if cfg.epochs <= saved_epochs or loop.epoch < saved_epochs or loop.batch:
        return
    seg = loop.segment or {"start_epoch": 0, "warmup_epochs": cfg.warmup_epochs}
    share = seg["warmup_epochs"] / max(1, saved_epochs - seg["start_epoch"])
    added = cfg.epochs - loop.epoch
    loop.segment = {
        "start_epoch": loop.epoch,
        "start_step": loop.step,
        "warmup_epochs": round(share * added, 4),
    }
    log.info(
        "the run had finished its %d-epoch schedule; epochs %d-%d follow a new %s schedule "
        "from lr %g (a warm restart; a lower --lr makes it gentler)",
        saved_epochs, loop.epoch + 1, cfg.epochs, cfg.sched, cfg.lr,
    )  # fmt: skip


def set_lr(optimizer: torch.optim.Optimizer, peak_lr: float, factor: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = peak_lr * g.get("lr_scale", 1.0) * factor
    return peak_lr * factor


def backbone_frozen(cfg, epoch: int) -> bool:
    """Whether the backbone is held still in `epoch` (0-based): `--freeze backbone`, a zero
    backbone lr scale, or the head-only epochs of `--freeze-epochs`."""
    return cfg.freeze == "backbone" or cfg.backbone_lr_scale == 0 or epoch < cfg.freeze_epochs


def set_train_mode(
    model: nn.Module, cfg, epoch: int, batch: int, backbone_params: list[nn.Parameter]
) -> None:
    """Train mode for `epoch`: with --freeze-epochs the head alone first, then everything;
    a frozen backbone keeps its BatchNorm statistics too (only its norm layers go to eval
    mode, so the head's dropout still works)."""
    model.train()
    if cfg.freeze_epochs:
        for p in backbone_params:
            p.requires_grad_(epoch >= cfg.freeze_epochs)
        if epoch == cfg.freeze_epochs and batch == 0:
            log.info("epoch %d: the backbone joins the training", epoch + 1)
    if backbone_frozen(cfg, epoch):
        head = head_prefix(model)
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and not (name + ".").startswith(head):
                m.eval()
