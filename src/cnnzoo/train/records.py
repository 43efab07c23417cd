"""What a run leaves beside its checkpoints: metrics.jsonl, metrics.csv, one line per epoch."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from cnnzoo.artifacts.files import atomic_write_bytes
from cnnzoo.artifacts.sidecar import METRICS_CSV, METRICS_JSONL


def _clean(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


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
        parts.append(f"crops {row['train_size']}px")
    parts.append(f"{row['images_per_s']:.0f} img/s {row['epoch_time']:.1f}s")
    if row.get("is_best"):
        parts.append("*")
    return "  ".join(parts)
