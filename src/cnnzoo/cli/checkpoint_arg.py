"""The arguments eval, predict and explain share: the checkpoint (`--checkpoint RUN`, or the run
folder / .safetensors file as the first positional argument) and how the model runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.cfg import BACKENDS, INFERENCE_PRECISIONS
from cnnzoo.errors import CnnzooError


def add_checkpoint_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        "-c",
        help="run folder or .safetensors written by cnnzoo train (or give it first, positionally)",
    )


def add_inference_options(p: argparse.ArgumentParser) -> None:
    """--backend, --precision and --device: which engine runs the model, in which number
    format, where."""
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="the engine. auto (default): every installed engine that can run the model is "
        "timed on the first batch and the fastest kept (printed with the timings); from a "
        "checkpoint, its ONNX and OpenVINO exports are cached in RUN/engines/ (keyed by the "
        "SHA-256 of its weights). pytorch: the model itself; onnxruntime; openvino (pip install "
        "'cnnzoo[openvino]'). An .onnx file runs in onnxruntime or openvino, an .xml IR in openvino",
    )
    p.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="auto (default): any; fp32: the exact PyTorch model (or an engine's fp32 when "
        "the model is an exported file or --backend names the engine); fast-fp32: float32 "
        "engines (PyTorch's fast form: BatchNorm folded, channels-last; onnxruntime; "
        "openvino fp32); bf16: bf16 engines (PyTorch's fast form in bf16, openvino bf16), where "
        "the CPU has AMX/AVX512-BF16",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")


def looks_like_checkpoint(path: str) -> bool:
    # local for start-up time: artifacts imports torch, and this module builds --help
    from cnnzoo.artifacts.sidecar import BEST_FILE, LAST_FILE

    p = Path(path)
    if p.is_dir():
        return any((p / n).is_file() for n in (BEST_FILE, LAST_FILE))
    if p.suffix in (".pth", ".pt"):  # a state dict with a cnnzoo sidecar beside it
        return p.with_suffix(".json").is_file()
    return p.suffix == ".safetensors"


def split_checkpoint(args: argparse.Namespace, paths: list[str]) -> tuple[str, list[str]]:
    """(checkpoint, the other positional paths): --checkpoint when given, else the first path."""
    if args.checkpoint:
        return args.checkpoint, paths
    if paths and looks_like_checkpoint(paths[0]):
        return paths[0], paths[1:]
    raise CnnzooError(
        "which checkpoint? give --checkpoint RUN, or the run folder / .safetensors file first"
    )
