"""What a run writes and says besides its resumable state: the best / last checkpoints (as
--keep says), metrics.jsonl, metrics.csv, the checkpoint sidecar's facts, the line it starts
with, one line per epoch, and what the run folder weighs."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from cnnzoo import __version__
from cnnzoo.artifacts.files import atomic_write_bytes, previous_path
from cnnzoo.artifacts.sidecar import (
    BEST_FILE,
    LAST_FILE,
    METRICS_CSV,
    METRICS_JSONL,
    STATE_FILE,
    save_checkpoint,
)
from cnnzoo.cfg import size_text, size_value
from cnnzoo.train.loop_state import LoopState

if TYPE_CHECKING:  # annotations only (setup imports torch and the data)
    from cnnzoo.train.config import TrainConfig
    from cnnzoo.train.setup import RunSetup


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


KEEP = ("all", "best", "last")  # --keep: the checkpoints kept beside the resume state


def save_checkpoints(run_dir: Path, weights: Any, info: dict, is_best: bool, keep: str) -> None:
    """After an epoch: last.safetensors and, when the epoch is the best, best.safetensors,
    as --keep says (all: both; best or last: that one only; the other is removed, so a
    resume that changes --keep leaves no stale file)."""
    kept = {"all": (LAST_FILE, BEST_FILE), "best": (BEST_FILE,), "last": (LAST_FILE,)}[keep]
    if LAST_FILE in kept:
        save_checkpoint(run_dir / LAST_FILE, weights, info)
    if is_best and BEST_FILE in kept:
        save_checkpoint(run_dir / BEST_FILE, weights, info)
    for name in {LAST_FILE, BEST_FILE} - set(kept):
        (run_dir / name).unlink(missing_ok=True)
        (run_dir / name).with_suffix(".json").unlink(missing_ok=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def folder_size_line(run_dir: Path) -> str:
    """What the run folder weighs, and what of it is what: the model, the checkpoints, the
    resume state (the optimiser's buffers and a previous copy: several times the model)."""
    files = [f for f in run_dir.rglob("*") if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    state = sum(p.stat().st_size for p in (run_dir / STATE_FILE, previous_path(run_dir / STATE_FILE))
                if p.is_file())  # fmt: skip
    ckpts = [run_dir / name for name in (BEST_FILE, LAST_FILE) if (run_dir / name).is_file()]
    model = ckpts[0].stat().st_size if ckpts else 0
    keep = "" if len(ckpts) < 2 else "; --keep best or last keeps one checkpoint"
    return (
        f"run folder: {_mb(total)} (model {_mb(model)}: {len(ckpts)} checkpoint(s) "
        f"{_mb(sum(c.stat().st_size for c in ckpts))}, resume state {_mb(state)}, which "
        f"`rm {run_dir}/state*.safetensors` frees once the run is final{keep})"
    )


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Rewrite both files from the whole history (kept in the training state), so a resumed run
    never repeats or loses a line."""
    lines = "".join(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n" for row in history)
    atomic_write_bytes(run_dir / METRICS_JSONL, lines.encode())
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if _clean(v) is None else v) for k, v in row.items()})
    atomic_write_bytes(run_dir / METRICS_CSV, buf.getvalue().encode())


def epoch_line(row: dict, epochs: int) -> str:
    """The one-line summary of an epoch."""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"lr {row['lr']:.4g}",
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.2f}%",
    ]
    if row.get("val_acc") is not None and math.isfinite(row["val_acc"]):
        parts.append(
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.2f}% top5 {row['val_top5']:.2f}%"
        )
    if row.get("ema_val_acc") is not None:
        parts.append(f"ema acc {row['ema_val_acc']:.2f}%")
    if row.get("train_size"):
        parts.append(f"crops {size_text(row['train_size'])}px")
    parts.append(f"{row['images_per_s']:.0f} img/s {row['epoch_time']:.1f}s")
    if row.get("is_best"):
        parts.append("*")
    return "  ".join(parts)


def sidecar_info(
    setup: RunSetup, cfg: TrainConfig, row: dict, weights_kind: str, lr_find: dict | None
) -> dict:
    """A checkpoint's sidecar: everything predict and eval need, and where the weights came
    from (`weights_kind`: model or ema; the epoch's metrics; the recipe)."""
    return {
        "model": cfg.model,
        "model_overrides": cfg.model_opts,
        "num_classes": len(setup.classes),
        "in_chans": int(setup.train_images.shape[1]),
        "classes": setup.classes,
        "input_size": size_value(cfg.image_size),  # an int, or [H, W] for a rectangle
        "mean": list(setup.mean),
        "std": list(setup.std),
        "crop_pct": setup.crop_pct,
        "interpolation": setup.preprocess.interpolation,
        "data": {
            "source": cfg.data,
            "name": setup.bundle.name,
            "load_size": setup.bundle.image_size,
            "val_split": cfg.val_split,
            "seed": cfg.seed,
            "val_name": setup.bundle.val_name,
        },
        "epoch": row["epoch"],
        "weights": weights_kind,
        "metrics": row,
        "recipe": cfg.to_dict(),
        "lr_find": lr_find,
        "cnnzoo_version": __version__,
        "saved": datetime.now().isoformat(timespec="seconds"),
    }


def start_line(setup: RunSetup, cfg: TrainConfig, world: int) -> str:
    """The line a new run starts with: model, data, sizes, recipe, optimiser, device, folder."""
    b = setup.bundle
    procs = f" x {world} processes" if world > 1 else ""
    held = " (--val-split)" if b.val_name.startswith("held-out") else ""
    test = f", {len(b.test)} test scored once at the end" if b.test is not None else ""
    return (
        f"training {cfg.model} on {b.name}: {len(b.train)} train images, {len(b.val)} "
        f"{b.val_name}{held} to pick the best epoch{test}; {len(setup.classes)} classes, "
        f"{size_text(cfg.image_size)}px, recipe {cfg.recipe}, "
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.opt} lr {cfg.lr:g} wd {cfg.wd:g}, "
        f"{cfg.precision}, on {setup.device}{procs} -> {setup.run_dir}"
    )


def resume_line(run_dir: Path, loop: LoopState, epochs: int, steps_per_epoch: int) -> str:
    """The line a resumed run starts with: where it stands."""
    return (
        f"resuming {run_dir} at epoch {loop.epoch + (1 if loop.batch else 0)}/{epochs}, "
        f"batch {loop.batch}/{steps_per_epoch} (step {loop.step})"
    )


class EpochBar:
    """One epoch's progress bar with its running loss, accuracy and images/s (refreshed every
    5 batches); does nothing when disabled."""

    def __init__(self, total: int, desc: str, enabled: bool, done: int = 0) -> None:
        self.total = total
        self.bar = None
        if enabled:
            self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                            dynamic_ncols=True, unit="batch")  # fmt: skip
            if done:
                self.bar.update(done)

    def step(self, b: int, loop: LoopState, loss_sum, correct, world: int) -> None:
        """Batch `b` (0-based) is done; `loss_sum` / `correct` are the epoch's running sums."""
        if self.bar is None:
            return
        if b % 5 == 0 or loop.batch == self.total:
            seen = max(loop.seen, 1)
            self.bar.set_postfix(
                loss=f"{float(loss_sum) / seen:.4f}",
                acc=f"{100.0 * float(correct) / seen:.1f}%",
                img_s=f"{seen * world / max(loop.elapsed, 1e-9):.0f}",
                refresh=False,
            )
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
