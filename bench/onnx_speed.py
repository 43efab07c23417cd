"""onnxruntime against PyTorch on the CPU: median ms per batch of the same model, measured
alternately in one process (rounds of `--iters` calls each, backends taking turns), so a
busy machine slows both alike. Where the tree has the fast inference path
(`cnnzoo.infer.fast`), its fp32 form (BatchNorm folded, channels-last) and bf16 form are
timed in the same turns.

    python bench/onnx_speed.py --models resnet50 mobilenet_v3_large --batch 1 16 --threads 1

Weights are seeded (`signal_weights_`: realistic activations, no denormal numbers); the ONNX
file is what `cnnzoo export --dynamic-batch` writes, checked against PyTorch first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cnnzoo import create_model
from cnnzoo.benchmark import signal_weights_
from cnnzoo.export.writers import write_onnx
from cnnzoo.infer.metadata import export_metadata
from cnnzoo.infer.runtime import OnnxModule


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            flags = Path("/proc/cpuinfo").read_text()
            feats = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
            return f"{line.split(':', 1)[1].strip()} [{' '.join(feats)}]"
    return "unknown CPU"


def onnx_twin(model: torch.nn.Module, name: str, size: int, folder: Path) -> OnnxModule:
    meta = {"model": name, "num_classes": 1000, "classes": [str(i) for i in range(1000)]}
    meta |= {"input_size": size, "mean": [0.5] * 3, "std": [0.5] * 3}
    example = torch.zeros(1, 3, size, size)
    props = export_metadata(
        meta, export_format="onnx", precision="fp32", input_shape=(1, 3, size, size),
        dynamic_batch=True,
    )  # fmt: skip
    path = folder / f"{name}.onnx"
    write_onnx(model, path, example, props, dynamic_batch=True)
    return OnnxModule(path)


def pytorch_forms(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.nn.Module]:
    """The plain model, plus the fast path's forms when this tree has them."""
    forms = {"PyTorch": model}
    try:
        from cnnzoo.infer.fast import bf16_is_native, fast_form
    except ImportError:
        return forms
    forms["fast fp32"] = fast_form(model, x[:1])
    if bf16_is_native():
        forms["fast bf16"] = fast_form(model, x[:1], torch.bfloat16)
    return forms


def timed(fn, x: torch.Tensor, iters: int) -> list[float]:
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(x)
        out.append(1000 * (time.perf_counter() - start))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v3_large"])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5, help="turns per backend (5)")
    p.add_argument("--iters", type=int, default=5, help="timed calls per turn (5)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_name()}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average)")
    header = False
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = signal_weights_(create_model(name))
            size = model.cfg.input_size
            ort = onnx_twin(model, name, size, Path(tmp))
            for batch in args.batch:
                x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
                with torch.no_grad():
                    runners = {**pytorch_forms(model, x), "onnxruntime": ort}
                    diff = float((ort(x) - model(x)).abs().max())
                    times: dict[str, list[float]] = {k: [] for k in runners}
                    for fn in runners.values():  # warm-up
                        fn(x)
                    for _ in range(args.rounds):
                        for k, fn in runners.items():
                            times[k] += timed(fn, x, args.iters)
                ms = {k: statistics.median(v) for k, v in times.items()}
                others = [k for k in runners if k != "onnxruntime"]
                if not header:
                    cols = [f"{k} ms" for k in runners] + [f"{k} / onnxruntime" for k in others]
                    print("| model | batch | " + " | ".join(cols) + " | max diff |")
                    print("|---|---:|" + "---:|" * (len(cols) + 1))
                    header = True
                cells = [f"{ms[k]:.1f}" for k in runners]
                cells += [f"{ms[k] / ms['onnxruntime']:.2f}" for k in others]
                print(f"| {name} | {batch} | " + " | ".join(cells) + f" | {diff:.1e} |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
