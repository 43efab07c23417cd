"""Training precision: what `--precision` names and what `--amp` picks.

`--amp` asks for reduced-precision autocast where it pays. On CUDA it always does (bf16, or
fp16 with a grad scaler on GPUs without bf16). On a CPU, bf16 pays only with hardware bf16
(AMX or AVX512-BF16) and only at sizes where the matrix work outweighs the casts: measured on
the project's AMX Xeon, a resnet18 step at 128 px runs 2.4x faster in bf16 but not at all
faster at 32 px. So the choice is measured, not assumed: a few training steps of the run's
own model, batch and layout in each precision, alternately, and bf16 only when it is faster.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.cfg import TRAIN_PRECISIONS as PRECISIONS
from cnnzoo.cfg import size_hw
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.machine import bf16_is_native

log = logging.getLogger("cnnzoo")

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MIN_GAIN = 1.1  # bf16 must be this much faster: a closer call is not worth the rounding


@cache
def cpu_has_bf16() -> bool:
    """Hardware bf16 matrix instructions on this CPU: AMX tiles or AVX512-BF16 dot products."""
    return bf16_is_native(torch.device("cpu"))


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision name (None: plain fp32)."""
    return DTYPES[precision]


__all__ = ["PRECISIONS", "autocast_dtype", "check_precision", "choose_precision", "cpu_has_bf16"]


def check_precision(precision: str, device: torch.device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise CnnzooError("--precision fp16 needs a CUDA GPU; use bf16 (or --amp) on a CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise CnnzooError("this GPU has no bf16; use --precision fp16 (or --amp)")


def step_seconds(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None
) -> float:
    """Wall time of one forward and backward pass (no optimiser step: the weights stay)."""
    start = time.perf_counter()
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = F.cross_entropy(model(x).float(), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - start


def measure_bf16_gain(
    model: nn.Module, x: torch.Tensor, num_classes: int, rounds: int = 2
) -> tuple[float, float]:
    """Median seconds per training pass (fp32, bf16) of a copy of `model` on input like `x`,
    one warm-up pass each, then `rounds` passes of each, alternating."""
    probe = copy.deepcopy(model).train()  # BatchNorm statistics of the real model stay
    y = torch.randint(0, num_classes, (x.shape[0],), device=x.device)
    times: dict[torch.dtype | None, list[float]] = {None: [], torch.bfloat16: []}
    for i in range(rounds + 1):
        for dtype in times:
            t = step_seconds(probe, x, y, dtype)
            if i > 0:
                times[dtype].append(t)
    return statistics.median(times[None]), statistics.median(times[torch.bfloat16])


def choose_precision(model: nn.Module, x: torch.Tensor, num_classes: int) -> tuple[str, str]:
    """What `--amp` picks for this model and input: (precision, why), the reason said in
    words for the log."""
    device = x.device
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "CUDA GPU with bf16"
        return "fp16", "CUDA GPU without bf16 (fp16 with loss scaling)"
    if not cpu_has_bf16():
        return "fp32", "this CPU has no AMX or AVX512-BF16, where bf16 only adds casts"
    fp32, bf16 = measure_bf16_gain(model, x, num_classes)
    timing = f"a training pass measured {1000 * fp32:.0f} ms fp32, {1000 * bf16:.0f} ms bf16"
    if fp32 >= MIN_GAIN * bf16:
        return "bf16", f"{timing} ({fp32 / bf16:.1f}x)"
    return "fp32", f"{timing}: bf16 is not {MIN_GAIN:g}x faster at this size"


def choose_for_run(
    model: nn.Module, cfg, channels: int, classes: int, device: torch.device, threads
) -> str:
    """--amp: bf16 where it is measured (or known, on CUDA) to pay for this run's own model,
    batch and size, timed with the threads the run will use; else fp32. Said in the log."""
    previous = torch.get_num_threads()
    threads.apply()
    x = torch.randn(cfg.batch_size, channels, *size_hw(cfg.image_size), device=device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    precision, why = choose_precision(model, x, classes)
    torch.set_num_threads(previous)
    log.info("--amp: %s autocast (%s)", precision, why)
    return precision
