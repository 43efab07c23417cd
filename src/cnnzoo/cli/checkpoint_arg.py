"""The arguments eval, predict and explain share: the checkpoint (`--checkpoint RUN`, or the run
folder / .safetensors file as the first positional argument) and how the model runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.cfg import INFERENCE_PRECISIONS
from cnnzoo.errors import CnnzooError


def add_checkpoint_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        "-c",
        help="run folder or .safetensors written by cnnzoo train (or give it first, positionally)",
    )


def add_inference_options(p: argparse.ArgumentParser) -> None:
    """--device and --precision: where the model runs and which inference path."""
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")
    p.add_argument(
        "--precision",
        choices=INFERENCE_PRECISIONS,
        default="auto",
        help="auto (default): the fastest of the exact model and its fast forms (BatchNorm "
        "folded, channels-last, bf16 where the CPU has AMX/AVX512-BF16), timed on the first "
        "batch; fp32: the exact model; fast-fp32 / bf16: that fast form (pytorch backend)",
    )


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
