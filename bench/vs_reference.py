"""cnnzoo's plain and fast inference paths against torchvision's and timm's models of the same
architecture, timed alternately in one process. Runs in the benchmark venv that
bench/reference_venv.sh builds (torchvision and timm do not import next to the project's torch).

Every model gets the same weights (cnnzoo's state dict, loaded into torchvision's model, whose
keys it mirrors), so the table also shows that the outputs agree.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics

import timm
import torch
import torchvision
from _alternate import time_alternately

from cnnzoo import create_model
from cnnzoo.infer.fast import fast_form
from cnnzoo.infer.machine import machine_info

# cnnzoo name -> timm's name for the same architecture
TIMM_NAMES = {
    "resnet50": "resnet50",
    "resnet18": "resnet18",
    "convnext_tiny": "convnext_tiny",
    "efficientnet_b0": "efficientnet_b0",
    "mobilenet_v3_large": "mobilenetv3_large_100",
    "densenet121": "densenet121",
}


def cl_autocast(model: torch.nn.Module):
    """The usual recipe for a stock model: channels-last weights and input, bf16 autocast."""
    m = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def run(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return m(x.contiguous(memory_format=torch.channels_last)).float()

    return run


@torch.inference_mode()
def compare(name: str, batch: int, a: argparse.Namespace) -> None:
    torch.manual_seed(0)
    ours = create_model(name).eval()
    tv = getattr(torchvision.models, name)().eval()
    tv.load_state_dict(ours.state_dict())
    tm = timm.create_model(TIMM_NAMES[name]).eval()
    x = torch.randn(batch, 3, a.size, a.size)
    paths = {
        "torchvision eager fp32": tv,
        "timm eager fp32": tm,
        "cnnzoo eager fp32": ours,
        "torchvision CL+autocast bf16": cl_autocast(tv),
        "timm CL+autocast bf16": cl_autocast(tm),
        "cnnzoo fast fp32": fast_form(ours, x[:1]),
        "cnnzoo fast bf16": fast_form(ours, x[:1], torch.bfloat16),
    }
    ref = tv(x)
    same = {k: (f(x) - ref).abs().max().item() for k, f in paths.items() if "timm" not in k}
    times = time_alternately(paths, x, a.warmup, a.rounds)
    base = statistics.median(times["torchvision eager fp32"])
    for k, ts in times.items():
        med = statistics.median(ts)
        diff = f"{same[k]:.1e}" if k in same else "(own weights)"
        print(f"| {name} | {batch} | {k} | {med:.1f} | {1000 * batch / med:.1f} | "
              f"{base / med:.2f}x | {diff} |", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet50"], choices=sorted(TIMM_NAMES))
    p.add_argument("--batches", nargs="+", type=int, default=[16])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    m = machine_info(torch.device("cpu"))
    print(f"{m['cpu']} [{' '.join(m['cpu_features'])}], {m['threads']} threads of {m['cores']} "
          f"cores, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"timm {timm.__version__}, load {os.getloadavg()[0]:.1f} at start")  # fmt: skip
    print("| model | batch | path | ms / batch (median) | images / s | vs torchvision eager | "
          "max abs diff vs torchvision |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|")
    for name in a.models:
        for batch in a.batches:
            compare(name, batch, a)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
