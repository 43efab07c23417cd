"""`cnnzoo models [PATTERN]`: the registered models with their size, cost and published accuracy."""

from __future__ import annotations

import argparse

HELP = "list models: parameters, multiply-adds, published ImageNet top-1"

# Published ImageNet-1K top-1 (the best weights torchvision publishes; timm's where noted).
# Filled from shared/reference/published.json, which holds torchvision's metadata.


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'resnext*'")
    p.add_argument(
        "--fast", action="store_true", help="skip building models (names and configs only)"
    )


def run(args: argparse.Namespace) -> int:
    from .. import create_model, list_models, summary
    from ..errors import CnnzooError
    from ..zoo_facts import PUBLISHED_TOP1

    names = list_models(args.pattern)
    if not names:
        raise CnnzooError(f"no model matches {args.pattern!r}; try `cnnzoo models` for all")
    print(f"{'model':<22} {'family':<14} {'input':>5} {'params':>13} {'GMACs':>8} {'top-1':>7}")
    for name in names:
        model = create_model(name) if not args.fast else None
        cfg = model.cfg if model is not None else None
        if model is None:
            from ..registry import get_model_cfg

            cfg = get_model_cfg(name)
            params, gmacs = "", ""
        else:
            size = cfg.input_size
            s = summary(model, (1, 3, size, size), depth=1)
            params, gmacs = f"{s.total_params:,}", f"{s.gmacs:.3f}"
        top1 = PUBLISHED_TOP1.get(name)
        print(
            f"{name:<22} {cfg.family:<14} {cfg.input_size:>5} {params:>13} {gmacs:>8} "
            f"{f'{top1:.2f}' if top1 else '-':>7}"
        )
    return 0
