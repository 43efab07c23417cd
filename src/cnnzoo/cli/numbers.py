"""Every numeric option of every subcommand checked as a number before anything runs: finite,
and in a stated range, so that no NaN, inf or 1e308 reaches the code (an internal error after
the run folder is made, a server whose every request hangs, a warm-up of 1e9 epochs that trains
at lr 1e-10). One line names the option, the value and the range; exit status 2.

The ranges are generous (a user who needs more is far outside what this library is tested
for); the commands still make their own checks that depend on other options.
"""

from __future__ import annotations

import argparse
import math

from cnnzoo.errors import CnnzooError

INT_MAX = 2**31 - 1
# option (argparse dest) -> (lowest, highest), both allowed; None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None]] = {
    # training
    "epochs": (1, 100_000),
    "batch_size": (1, 65_536),
    "lr": (0, 1_000),
    "start_lr": (0, 1_000),
    "end_lr": (0, 1_000),
    "wd": (0, 100),
    "warmup_epochs": (0, 100_000),
    "freeze_epochs": (0, 100_000),
    "label_smoothing": (0, 1),
    "mixup": (0, 100),
    "cutmix": (0, 100),
    "clip_grad": (0, 1e6),
    "ema": (0, 1),
    "backbone_lr_scale": (0, 1_000),
    "image_size": (8, 4096),
    "load_size": (1, 4096),
    "input_size": (8, 4096),
    "mean": (-255, 255),
    "std": (0, 255),
    "crop_pad": (0, 2048),
    "crop_scale": (0, 1),
    "min_lr_ratio": (0, 1),
    "momentum": (0, 1),
    "accum_steps": (1, 4096),
    "checkpoint_every": (0, INT_MAX),
    "skip_nonfinite": (0, INT_MAX),
    "stop_after": (1, 100_000),
    "progressive": (8, 4096),
    "patience": (0, 100_000),
    "cache_ram": (0, 1),
    "val_split": (0, 1),
    "seed": (0, 2**63 - 2),
    "threads": (1, 4096),
    "nproc": (1, 4096),
    "steps": (1, 1_000_000),
    # inference, export, bench
    "topk": (1, 1_000_000),
    "top_losses": (0, 10_000),
    "per_class": (1, 100_000),
    "num_classes": (1, 1_000_000),
    "opset": (7, 20),  # what torch's TorchScript-based ONNX exporter writes
    "check_limit": (1, 1_000_000),
    "calibration_images": (1, 1_000_000),
    "max_drop": (0, 100),  # points of top-1
    "batch": (1, 65_536),
    "warmup": (0, 1_000_000),
    "iters": (1, 1_000_000),
    "depth": (0, 1_000),
    # the server
    "port": (0, 65_535),
    "max_batch": (1, 1_024),
    "max_images": (1, 1_024),
    "max_delay_ms": (0, 60_000),
    "max_body_mb": (0.001, 4_096),
    "max_pixels": (0.000_001, 1_000),
    "max_memory_mb": (16, 1_048_576),
    "max_connections": (1, 100_000),
    "read_timeout": (0.1, 3_600),
    "body_timeout": (0.1, 86_400),
}
# beyond the range's edge, these must also not equal the low end (a share of 0 is nothing)
_OPEN_LOW = {
    "lr", "start_lr", "end_lr", "crop_scale", "cache_ram", "max_body_mb", "max_pixels", "std",
}  # fmt: skip


def _shown(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) and abs(x) >= 10_000 else f"{x:g}"


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse a non-finite number for any option, and one outside its range (RANGES); an
    option of several numbers (--image-size H W, --mean R G B) has each checked."""
    for dest, value in sorted(vars(args).items()):
        if dest.startswith("_"):
            continue
        if isinstance(value, list) and value and all(_is_number(v) for v in value):
            for v in value:
                _check_number(dest, v)
        elif _is_number(value):
            _check_number(dest, value)
    warmup, epochs = getattr(args, "warmup_epochs", None), getattr(args, "epochs", None)
    if isinstance(warmup, (int, float)) and isinstance(epochs, int) and warmup > epochs:
        raise CnnzooError(
            f"--warmup-epochs {_shown(warmup)} is longer than the run's {epochs} epochs; "
            "the lr would never reach its peak"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(dest: str, value: float) -> None:
    """One value of option `dest`: finite and in its range."""
    flag = "--" + dest.replace("_", "-")
    if isinstance(value, float) and not math.isfinite(value):
        raise CnnzooError(f"{flag} must be a finite number (got {value})")
    low, high = RANGES.get(dest, (None, None))
    if dest not in RANGES:  # any other number: at least a sane magnitude
        low, high = -1e12, 1e12
    too_low = low is not None and (value < low or (dest in _OPEN_LOW and value <= low))
    if too_low or (high is not None and value > high):
        edge = "(" if dest in _OPEN_LOW else "["
        raise CnnzooError(
            f"{flag} must be in {edge}{_shown(low)}, {_shown(high)}] (got {_shown(value)})"
        )
