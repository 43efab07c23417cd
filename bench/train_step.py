"""Training-step throughput of one model on random data: images/s and the implied seconds per
epoch, for each memory format and precision, measured side by side in one process.

    OMP_NUM_THREADS=2 python bench/train_step.py --model resnet18 --size 32 --batch 128

`--compile` adds the same rows for `torch.compile`d models. Each configuration runs `--warmup`
untimed steps, then `--steps` timed ones; the median step time is reported (the machines are
noisy)."""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnzoo import create_model


def step_times(model_name: str, size: int, batch: int, channels_last: bool, bf16: bool,
               compiled: bool, warmup: int, steps: int, num_classes: int) -> list[float]:  # fmt: skip
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=num_classes)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, num_classes, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    if compiled:  # the first (untimed) steps pay for the compilation
        model = torch.compile(model)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--epoch-images", type=int, default=50_000)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    a = p.parse_args()
    print(f"{a.model} {a.size}px batch {a.batch}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")  # fmt: skip
    print("| layout | precision | compiled | ms / step | images / s | s / epoch |")
    print("|---|---|---|---:|---:|---:|")
    for compiled in (False, True) if a.compile else (False,):
        for channels_last in (False, True):
            for bf16 in (False, True):
                times = step_times(a.model, a.size, a.batch, channels_last, bf16, compiled,
                                   a.warmup, a.steps, a.classes)  # fmt: skip
                t = statistics.median(times)
                layout = "NHWC" if channels_last else "NCHW"
                prec = "bf16 autocast" if bf16 else "fp32"
                comp = "yes" if compiled else "no"
                epoch = a.epoch_images / a.batch * t
                print(f"| {layout} | {prec} | {comp} | {1000 * t:.0f} | {a.batch / t:.0f} "
                      f"| {epoch:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
