"""The checkpoint argument that eval, predict and explain share: `--checkpoint RUN`, or the run
folder / .safetensors file as the first positional argument."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import CnnzooError


def add_checkpoint_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        "-c",
        help="run folder or .safetensors written by cnnzoo train (or give it first, positionally)",
    )


def looks_like_checkpoint(path: str) -> bool:
    p = Path(path)
    if p.is_dir():
        return any((p / n).is_file() for n in ("best.safetensors", "last.safetensors"))
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
