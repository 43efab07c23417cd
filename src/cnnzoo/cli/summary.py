"""`cnnzoo summary MODEL`: Keras-style per-layer table with parameters and multiply-adds."""

from __future__ import annotations

import argparse

HELP = "per-layer table of a model: output shapes, parameters, multiply-adds"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model name (see `cnnzoo models`)")
    p.add_argument(
        "--input-size", type=int, default=None, help="image side (default: the model's own)"
    )
    p.add_argument(
        "--depth", type=int, default=2, help="how many levels of nesting to show (default 2)"
    )
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs")
    p.add_argument("--stem", default=None, help="ResNet family: 'cifar' for 32x32 input")


def run(args: argparse.Namespace) -> int:
    from cnnzoo import create_model, summary
    from cnnzoo.errors import CnnzooError

    if args.depth < 1:
        raise CnnzooError("--depth must be at least 1")
    overrides = {"stem": args.stem} if args.stem else {}
    model = create_model(args.model, num_classes=args.num_classes, **overrides)
    size = args.input_size if args.input_size is not None else model.cfg.input_size
    if size < 1:
        raise CnnzooError("--input-size must be positive")
    try:
        s = summary(model, (1, 3, size, size), depth=args.depth)
    except RuntimeError as e:
        raise CnnzooError(
            f"{args.model} cannot run at {size}x{size}: {str(e).splitlines()[0]}"
        ) from None
    print(f"{args.model}  ({model.cfg.family}, input 3x{size}x{size})")
    print(s.table())
    return 0
