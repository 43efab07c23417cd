"""The learning-rate range test (Smith, 2015): train for a few hundred steps while the lr grows
exponentially from tiny to huge, watch the smoothed loss, stop once it blows up, and suggest
the lr a tenth of the way (one decade) below the one where the loss was lowest: still on the
steep, stable part of the curve.

The test trains a copy of nothing: it changes the model and the optimiser in place and puts
both back as they were (weights, BN statistics, momentum, lr, the global RNG), so it can run
right before training without changing it.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from cnnzoo.artifacts.files import write_json
from cnnzoo.data.transforms import train_transform
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.evaluate import autocast
from cnnzoo.insight.plots import pyplot, save_figure
from cnnzoo.train.optim import set_lr

log = logging.getLogger("cnnzoo")


@dataclass
class LrFindResult:
    lrs: list[float]
    losses: list[float]  # smoothed, bias-corrected
    raw_losses: list[float]
    suggestion: float
    min_loss_lr: float
    stopped: str  # "diverged" or "end of range"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "suggestion": self.suggestion,
            "min_loss_lr": self.min_loss_lr,
            "stopped": self.stopped,
            "lrs": self.lrs,
            "losses": self.losses,
            "raw_losses": self.raw_losses,
            **self.extra,
        }


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
    beta: float = 0.9,
    diverge: float = 4.0,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> LrFindResult:
    """Step `optimizer` on `steps` batches with lr = start_lr * (end_lr / start_lr) ** (i / (steps
    - 1)) and record the exponentially smoothed loss (factor `beta`). Stops when the smoothed
    loss exceeds `diverge` times its minimum or is not finite. `forward` (default: `model`)
    computes the logits; the caller sets train / eval modes. The model and optimiser are
    restored afterwards."""
    if not 0 < start_lr < end_lr:
        raise CnnzooError(f"the lr range must rise: {start_lr:g} .. {end_lr:g}")
    if steps < 10:
        raise CnnzooError(f"--steps must be at least 10 (got {steps})")
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_rng = torch.get_rng_state()
    modes = [m.training for m in model.modules()]
    forward = forward or model
    lrs: list[float] = []
    smooth: list[float] = []
    raw: list[float] = []
    stopped = "end of range"
    bar = None
    if progress:
        bar = tqdm(total=steps, desc="lr-find", unit="step", leave=False)
    try:
        avg, best = 0.0, math.inf
        ratio = end_lr / start_lr
        for i in range(steps):
            lr = start_lr * ratio ** (i / (steps - 1))
            set_lr(optimizer, lr, 1.0)
            x, y = next(batches)
            loss = loss_fn(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if bar is not None:
                bar.update(1)
            if not math.isfinite(value):
                stopped = "diverged"
                break
            avg = beta * avg + (1 - beta) * value
            smoothed = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(value)
            smooth.append(smoothed)
            best = min(best, smoothed)
            if i > 10 and smoothed > diverge * best:
                stopped = "diverged"
                break
    finally:
        if bar is not None:
            bar.close()
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        torch.set_rng_state(saved_rng)
        for m, mode in zip(model.modules(), modes, strict=True):
            m.training = mode
    if len(smooth) < 5:
        raise CnnzooError(
            f"the loss diverged after {len(smooth)} steps of the lr range test; "
            "lower --start-lr or check the data"
        )
    i_min = min(range(len(smooth)), key=smooth.__getitem__)
    min_lr = lrs[i_min]
    return LrFindResult(lrs, smooth, raw, max(min_lr / 10, lrs[0]), min_lr, stopped)


def lr_find_title(trainer) -> str:
    c, name = trainer.cfg, trainer.setup.bundle.name
    data = Path(name).name or name
    return f"lr range test: {c.model} on {data}, {c.opt}, batch {c.batch_size}"


def plot_lr_find(result: LrFindResult, path: str | Path, title: str = "") -> None:
    """Smoothed (and raw) loss against lr on a log axis, the suggestion marked."""

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(result.lrs, result.raw_losses, color="0.8", lw=0.8, label="loss per step")
    ax.plot(result.lrs, result.losses, color="C0", lw=2, label="smoothed loss")
    ax.axvline(
        result.min_loss_lr, color="0.5", ls=":", label=f"lowest loss at lr {result.min_loss_lr:.2g}"
    )
    i = min(range(len(result.lrs)), key=lambda k: abs(math.log(result.lrs[k] / result.suggestion)))
    ax.plot([result.suggestion], [result.losses[i]], "o", color="C3", ms=9,
            label=f"suggested lr {result.suggestion:.2g}")  # fmt: skip
    ax.set_xscale("log")
    top = min(max(result.losses), 2.5 * result.losses[0]) if result.losses else 1
    ax.set_ylim(min(result.losses) * 0.9, top * 1.05)
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title=title or "learning-rate range test")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)  # through the one file writer; closes the figure


def trainer_batches(trainer, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Augmented training batches as `trainer` makes them, from generators of their own (the
    trainer's data order and augmentation are left as they are)."""

    cfg, setup, dev = trainer.cfg, trainer.setup, trainer.setup.device
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(dev).manual_seed(seed + 1)
    n = len(setup.train_labels)
    bs = min(cfg.batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for b in range(max(1, n // bs)):
            idx = perm[b * bs : (b + 1) * bs].to(dev)
            x = train_transform(setup.train_images[idx], setup.aug, aug_gen)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, setup.train_labels[idx]


def find_lr(
    trainer, *, steps: int = 200, start_lr: float = 1e-7, end_lr: float = 10.0,
    progress: bool = False,
) -> LrFindResult:  # fmt: skip
    """The range test on a Trainer's model, optimiser, data, augmentation, modes and loss."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        with autocast(trainer.setup.device, trainer.amp_dtype):
            return trainer.train_model(x)

    trainer.set_train_mode()
    batches = trainer_batches(trainer, trainer.cfg.seed + 17)
    previous = torch.get_num_threads()
    trainer.threads.apply()  # the threads the run will train with
    try:
        return lr_range_test(
            trainer.setup.model, trainer.optimizer, batches, trainer.loss, start_lr=start_lr,
            end_lr=end_lr, steps=steps, forward=forward, progress=progress,
        )  # fmt: skip
    finally:
        torch.set_num_threads(previous)


# The range test's length when none is given: one epoch of the data, but at least MIN_STEPS
# (fewer make a coarse, noisy curve) and at most MAX_STEPS (enough for any data set). It was
# 200 steps whatever the data: 13 epochs of a 1,000-image folder at batch 64, longer than
# the 6-epoch run it was for.
MIN_STEPS, MAX_STEPS = 100, 200
AUTO_STEPS: int | None = None  # steps of the range test --lr auto runs (None: default_steps)


def default_steps(steps_per_epoch: int) -> int:
    """About one epoch of steps, within [MIN_STEPS, MAX_STEPS]."""
    return max(MIN_STEPS, min(steps_per_epoch, MAX_STEPS))


def auto_lr(trainer) -> tuple[float, dict]:
    """`--lr auto`: run the range test on a new Trainer, keep the curve (lr_find.png) and the
    figures (lr_find.json) in the run, and return the suggested lr with the facts its
    checkpoints record; the trainer adopts them (this function changes nothing in it)."""
    steps = AUTO_STEPS or default_steps(trainer.steps_per_epoch)
    result = find_lr(trainer, steps=steps, progress=trainer.progress)
    run_dir = trainer.setup.run_dir
    write_json(run_dir / "lr_find.json", result.to_dict())
    plot_lr_find(result, run_dir / "lr_find.png", lr_find_title(trainer))
    log.info(
        "lr-find: lowest loss at lr %.3g (%s); training with lr %.3g (see %s)",
        result.min_loss_lr, result.stopped, result.suggestion, run_dir / "lr_find.png",
    )  # fmt: skip
    facts = {"suggestion": result.suggestion, "min_loss_lr": result.min_loss_lr,
             "steps": len(result.lrs), "stopped": result.stopped}  # fmt: skip
    return result.suggestion, facts
