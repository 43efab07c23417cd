"""TorchScript files from `cnnzoo export`, BatchNorm folded (the default) against `--no-fold`:
median ms per batch of the two loaded files, timed alternately in one process
(`_alternate.time_alternately`, as the other path comparisons).

    python bench/export_fold.py --models resnet50 densenet121 --batch 1 16 --threads 2

Both files pass the exporter's parity check against the PyTorch model first (seeded weights,
`signal_weights_`). ONNX needs no such figure: torch's ONNX exporter already folds eval-mode
BatchNorm into the convolutions (the two .onnx files are the same graph).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import torch
from _alternate import time_alternately

from cnnzoo import create_model
from cnnzoo.benchmark import signal_weights_
from cnnzoo.export import export_model
from cnnzoo.export.exporter import model_meta
from cnnzoo.infer.machine import cpu_features, cpu_name
from cnnzoo.infer.runtime import load_torchscript


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["resnet50"])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    feats = " ".join(sorted(cpu_features() & {"amx_bf16", "avx512_bf16", "avx512f"}))
    print(f"machine: {cpu_name()} [{feats}], {args.threads} threads, torch {torch.__version__}, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| model | batch | folded ms | unfolded ms | unfolded / folded |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = signal_weights_(create_model(name))
            meta = model_meta(name, model.num_classes)
            files = {}
            for fold in ("folded", "unfolded"):
                path = Path(tmp) / f"{name}-{fold}.pt"
                export_model(
                    model, meta, path, fmt="torchscript", fold=fold == "folded", progress=False
                )
                files[fold] = load_torchscript(path)[0]
            size = int(meta["input_size"])
            with torch.inference_mode():
                for batch in args.batch:
                    x = torch.randn(batch, 3, size, size)
                    times = time_alternately(files, x, args.warmup, args.rounds)
                    f, u = (statistics.median(times[k]) for k in ("folded", "unfolded"))
                    print(f"| {name} | {batch} | {f:.1f} | {u:.1f} | {u / f:.2f}x |")


if __name__ == "__main__":
    main()
