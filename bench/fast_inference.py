"""The fast inference form against the plain eager model, measured alternately in one process:
images/s per batch, the ratio to plain eager fp32, and how far the outputs move.

    python bench/fast_inference.py --models resnet50 --batches 16 1 --threads 2

Paths timed (each after `--warmup` untimed calls; then `--rounds` rounds, one call of each path
per round, so that a busy moment on a shared machine hurts every path alike; medians):
  eager fp32          the model as built (what `--precision fp32` runs)
  eager CL+autocast   channels-last input and weights, bf16 autocast (the usual recipe)
  fast fp32 unfused   BatchNorm folded, channels-last (engine.fast.fast_form(fuse=False))
  fast fp32           the same with each conv fused with its activation / residual add
                      (engine.fast.fast_form, what predict and eval run)
  fast bf16 [unfused] the same two with bf16 weights
  + compile           `--compile`: the fast forms through torch.compile with inductor freezing
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics

import torch
from _alternate import time_alternately

from cnnzoo import create_model
from cnnzoo.infer.fast import fast_form
from cnnzoo.infer.machine import machine_info


def autocast_form(model: torch.nn.Module):
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cl(x.contiguous(memory_format=torch.channels_last)).float()

    return run


def paths(model: torch.nn.Module, x: torch.Tensor, compile: bool) -> dict:
    out = {
        "eager fp32": model,
        "eager CL+autocast": autocast_form(model),
        "fast fp32 unfused": fast_form(model, x[:1], fuse=False),
        "fast fp32": fast_form(model, x[:1]),
        "fast bf16 unfused": fast_form(model, x[:1], torch.bfloat16, fuse=False),
        "fast bf16": fast_form(model, x[:1], torch.bfloat16),
    }
    if compile:
        out["fast fp32 + compile"] = fast_form(model, x[:1], compile=True)
        out["fast bf16 + compile"] = fast_form(model, x[:1], torch.bfloat16, compile=True)
    return out


@torch.inference_mode()
def measure(name: str, batch: int, size: int, a: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(batch, 3, size, size)
    runs = paths(model, x, a.compile)
    ref = model(x)
    diffs = {k: (f(x) - ref).abs().max().item() for k, f in runs.items()}
    times = time_alternately(runs, x, a.warmup, a.rounds)
    base = statistics.median(times["eager fp32"])
    for k, ts in times.items():
        med = statistics.median(ts)
        print(
            f"| {name} | {batch} | {k} | {med:.1f} | {min(ts):.1f}-{max(ts):.1f} | "
            f"{1000 * batch / med:.1f} | {base / med:.2f}x | {diffs[k]:.1e} |",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet50"])
    p.add_argument("--batches", nargs="+", type=int, default=[16, 1])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd fast forms")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    m = machine_info(torch.device("cpu"))
    print(f"{m['cpu']} [{' '.join(m['cpu_features'])}], {m['threads']} threads of "
          f"{m['cores']} cores, torch {m['torch']}, load {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    print("| model | batch | path | ms / batch (median) | min-max | images / s | vs eager fp32 | max abs diff |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in a.models:
        for batch in a.batches:
            measure(name, batch, a.size, a)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
