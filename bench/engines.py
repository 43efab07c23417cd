"""Every engine on the same model, taking turns in one process (bench/_alternate.py): PyTorch
eager, cnnzoo's fast fp32 / bf16, onnxruntime, OpenVINO fp32 / bf16 / int8 (NNCF, calibrated
on random input), the one `auto` chooses, and the raw OpenVINO API on the same IR as cnnzoo's
engine (its overhead). Medians in ms per batch, images/s, ratio to eager.

    OMP_NUM_THREADS=2 PYTHONPATH=src python bench/engines.py --model resnet50 --batch 16 1
    OMP_NUM_THREADS=2 PYTHONPATH=src python bench/engines.py --model mobilenet_v3_large --batch 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import openvino as ov
import torch
from _alternate import time_alternately

from cnnzoo import create_model
from cnnzoo.benchmark import signal_weights_
from cnnzoo.export.writers import write_onnx
from cnnzoo.infer.fast import fast_form, prepare_inference
from cnnzoo.infer.machine import machine_info
from cnnzoo.infer.openvino import OpenVinoModule
from cnnzoo.infer.runtime import OnnxModule
from cnnzoo.models.factory import get_model_cfg


def int8_model(onnx_path: Path, size: int, images: int = 32):
    import nncf

    calib = [
        np.random.default_rng(i).standard_normal((1, 3, size, size), np.float32)
        for i in range(images)
    ]
    return nncf.quantize(ov.convert_model(str(onnx_path)), nncf.Dataset(calib), subset_size=images)


def ort_int8(onnx_path: Path, out: Path, size: int, images: int = 32) -> Path:
    """onnxruntime's static quantization (QDQ, per-channel weights) of the ONNX file."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.items = iter(
                {"input": rng.standard_normal((1, 3, size, size), np.float32)}
                for _ in range(images)
            )

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(onnx_path), str(out), Reader(), per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, nargs="+", default=[16, 1])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--no-int8", action="store_true")
    p.add_argument(
        "--ort-int8",
        action="store_true",
        help="also onnxruntime's static int8 (QDQ, calibrated on the same 32 random inputs)",
    )
    p.add_argument(
        "--only", help="comma list of engine-name prefixes to time (baseline: the first)"
    )
    p.add_argument(
        "--overhead-rounds",
        type=int,
        default=0,
        help="then time cnnzoo's OpenVINO engine against the raw API alone, this many rounds",
    )
    args = p.parse_args()
    threads = torch.get_num_threads()
    size = get_model_cfg(args.model).input_size
    model = signal_weights_(create_model(args.model))
    folder = Path(tempfile.mkdtemp())
    onnx_path = folder / "model.onnx"
    write_onnx(model, onnx_path, torch.zeros(1, 3, size, size), {}, dynamic_batch=True)
    ir = folder / "model.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(ir), compress_to_fp16=False)
    q = None if args.no_int8 else int8_model(onnx_path, size)
    ort_q = ort_int8(onnx_path, folder / "int8.onnx", size) if args.ort_int8 else None
    print(f"{args.model} at {size} px, {threads} threads; {machine_info(torch.device('cpu'))}")
    for batch in args.batch:
        x = torch.randn(batch, 3, size, size)
        runs = {
            "eager fp32": model,
            "fast fp32": fast_form(model, x[:1]),
            "fast bf16": fast_form(model, x[:1], torch.bfloat16),
            "onnxruntime fp32": OnnxModule(onnx_path, threads),
            "openvino fp32": OpenVinoModule(ir, "fp32", threads),
            "openvino bf16": OpenVinoModule(ir, "bf16", threads),
        }
        if q is not None:
            runs["openvino int8"] = OpenVinoModule(q, "bf16", threads)
        if ort_q is not None:
            runs["onnxruntime int8 (static QDQ)"] = OnnxModule(ort_q, threads)
        # the raw API on the same IR and settings as cnnzoo's "openvino bf16"
        compiled = ov.Core().compile_model(
            str(ir),
            "CPU",
            {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16",
             "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1},
        )  # fmt: skip
        request = compiled.create_infer_request()
        arr = x.numpy()
        runs["raw openvino API bf16"] = lambda _x, r=request, a=arr: r.infer(
            {0: a}, share_inputs=True
        )
        engines = {
            k: (lambda m=m: m) for k, m in runs.items() if k.startswith(("onnx", "openvino"))
        }
        engines = {k: v for k, v in engines.items() if k != "openvino int8"}
        with torch.inference_mode():
            auto = prepare_inference(model, x, "auto", engines=engines, probe_batch=batch)
            runs[f"auto -> {auto.name}"] = auto.model
            if args.only:
                keep = tuple(s.strip() for s in args.only.split(","))
                runs = {k: m for k, m in runs.items() if k.startswith(keep)}
            times = time_alternately(
                {k: (lambda xx, m=m: m(xx)) for k, m in runs.items()}, x, 2, args.rounds
            )
        load = os.getloadavg()[0]
        base = next(iter(times))
        eager = statistics.median(times[base])
        print(f"\nbatch {batch} (load {load:.2f}); medians of {args.rounds} rounds")
        print(f"{'engine':<34} {'ms':>9} {'images/s':>9} {'vs ' + base[:6]:>9}")
        for k, ts in times.items():
            ms = statistics.median(ts)
            print(f"{k:<34} {ms:>9.2f} {1000 * batch / ms:>9.1f} {eager / ms:>8.2f}x")
        if "raw openvino API bf16" in times and "openvino bf16" in times:
            raw = statistics.median(times["raw openvino API bf16"])
            mine = statistics.median(times["openvino bf16"])
            print(f"cnnzoo's overhead over the raw OpenVINO API: {100 * (mine / raw - 1):+.1f}%")
        if args.overhead_rounds:
            pair = {k: runs[k] for k in ("openvino bf16", "raw openvino API bf16")}
            pair_times = time_alternately(
                {k: (lambda xx, m=m: m(xx)) for k, m in pair.items()}, x, 3, args.overhead_rounds
            )
            raw = statistics.median(pair_times["raw openvino API bf16"])
            mine = statistics.median(pair_times["openvino bf16"])
            print(
                f"the two alone, {args.overhead_rounds} rounds: cnnzoo {mine:.2f} ms, raw API "
                f"{raw:.2f} ms: overhead {100 * (mine / raw - 1):+.1f}% "
                f"(load {os.getloadavg()[0]:.2f})"
            )


if __name__ == "__main__":
    main()
