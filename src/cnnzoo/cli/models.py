"""`cnnzoo models [PATTERN]`: the registered models with their size, cost and published accuracy."""

from __future__ import annotations

import argparse

HELP = "list models: parameters, multiply-adds, published ImageNet top-1"
DESCRIPTION = """List the registered models with parameters and multiply-adds (one forward pass at the
model's native input size, on the meta device: shapes only, no memory or compute) and the
published ImageNet-1K top-1 of the best torchvision weights, where torchvision publishes one."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'resnext*'")
    p.add_argument("--names", action="store_true", help="print the names only")


def model_row(name: str) -> tuple[int, float]:
    """Parameters and G multiply-adds of a model at its native size, measured on meta tensors."""
    import torch

    from .. import create_model, summary

    with torch.device("meta"):
        model = create_model(name)
    size = model.cfg.input_size
    s = summary(model, (1, 3, size, size), depth=1, device="meta")
    return s.total_params, s.gmacs


def run(args: argparse.Namespace) -> int:
    from .. import list_models
    from ..errors import CnnzooError
    from ..registry import get_model_cfg
    from ..zoo_facts import PUBLISHED_TOP1

    names = list_models(args.pattern)
    if not names:
        raise CnnzooError(f"no model matches {args.pattern!r}; try `cnnzoo models` for all")
    if args.names:
        print("\n".join(names))
        return 0
    print(f"{'model':<22} {'family':<14} {'input':>5} {'params':>13} {'GMACs':>8} {'top-1':>7}")
    for name in names:
        cfg = get_model_cfg(name)
        params, gmacs = model_row(name)
        top1 = PUBLISHED_TOP1.get(name)
        print(
            f"{name:<22} {cfg.family:<14} {cfg.input_size:>5} {params:>13,} {gmacs:>8.3f} "
            f"{f'{top1:.2f}' if top1 else '-':>7}"
        )
    return 0
