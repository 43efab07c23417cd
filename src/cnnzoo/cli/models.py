"""`cnnzoo models [PATTERN]`: the registered models with their size, cost and published accuracy."""

from __future__ import annotations

import argparse

HELP = "list models: parameters, multiply-adds, published ImageNet top-1"
DESCRIPTION = """List the registered models with parameters and multiply-adds (one forward pass at the
model's native input size, with the default classifier; figures stored in the package and
checked against the models by the tests, so listing builds nothing) and the published
ImageNet-1K top-1 of the best torchvision weights, where torchvision publishes one."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'resnext*'")
    p.add_argument("--names", action="store_true", help="print the names only")


def run(args: argparse.Namespace) -> int:
    import fnmatch

    from cnnzoo.errors import CnnzooError
    from cnnzoo.zoo_facts import PUBLISHED_TOP1
    from cnnzoo.zoo_table import ZOO_TABLE

    names = sorted(n for n in ZOO_TABLE if fnmatch.fnmatch(n, args.pattern))
    if not names:
        raise CnnzooError(f"no model matches {args.pattern!r}; try `cnnzoo models` for all")
    if args.names:
        print("\n".join(names))
        return 0
    print(f"{'model':<22} {'family':<14} {'input':>5} {'params':>13} {'GMACs':>8} {'top-1':>7}")
    for name in names:
        family, size, params, macs = ZOO_TABLE[name]
        top1 = PUBLISHED_TOP1.get(name)
        print(
            f"{name:<22} {family:<14} {size:>5} {params:>13,} {macs / 1e9:>8.3f} "
            f"{f'{top1:.2f}' if top1 else '-':>7}"
        )
    return 0
