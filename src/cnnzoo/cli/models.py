"""`cnnzoo models [PATTERN]`: the registered models with their size, cost and published accuracy."""

from __future__ import annotations

import argparse

HELP = "list models: parameters, multiply-adds, published ImageNet top-1"
DESCRIPTION = """List the registered models with parameters and multiply-adds (one forward pass at the
model's native input size, with the default classifier; figures stored in the package and
checked against the models by the tests, so listing builds nothing) and the published
ImageNet-1K top-1 of the best torchvision weights, where torchvision publishes one.

--pretrained lists every published weight set instead (torchvision 0.29.1's and timm 1.0.31's
tags; PATTERN matches the model or model.tag): its top-1 at its own eval transform (input
size, resized shorter side, interpolation), the file's size (~: estimated from the parameter
count), licence (non-commercial ones say so), SHA-256 as pinned (the first hex digits; "none
known" where no checksum is published: the first download's is recorded), and whether it is
in the cache. `--pretrained TAG` of train / lr-find and create_model("MODEL.TAG") take it.

--plot FILE.png draws the models listed that have a published top-1 as seed 004's classic
figure: published top-1 against multiply-adds (log scale), bubble area the parameters, one
colour per family, from the stored table (no model is built or timed; `cnnzoo bench --all
--plot` draws top-1 against measured speed instead).

examples:
  cnnzoo models 'efficientnet*'
  cnnzoo models --plot zoo.png
  cnnzoo models --pretrained resnet50
  cnnzoo models --pretrained '*.a1_in1k'"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="glob filter, e.g. 'resnext*'")
    p.add_argument("--names", action="store_true", help="print the names only")
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="list the published weight sets (tags) instead: top-1, transform, size, licence, "
        "SHA-256, cached",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw published top-1 against GMACs (bubble area: parameters) of the "
        "models listed that have a published top-1",
    )


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import fnmatch

    from cnnzoo.errors import CnnzooError
    from cnnzoo.zoo_facts import PUBLISHED_TOP1
    from cnnzoo.zoo_table import ZOO_TABLE

    if args.plot and args.pretrained:
        raise CnnzooError("--plot draws the models table, not the weight sets: drop --pretrained")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise CnnzooError(f"--plot writes a PNG: give a name ending in .png (got {args.plot})")
    if args.pretrained:
        return _list_weights(args.pattern, args.names)
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
    if args.plot:
        _plot(names, args.plot)
    return 0


def cost_points(names: list[str]) -> list[tuple[str, str, float, float, int]]:
    """(model, family, GMACs, published top-1 %, parameters) of those of `names` that have a
    published top-1, from the stored tables: what `models --plot` draws."""
    # imported when asked, as in run(): the module stays light to import
    from cnnzoo.zoo_facts import PUBLISHED_TOP1
    from cnnzoo.zoo_table import ZOO_TABLE

    return [
        (n, ZOO_TABLE[n][0], ZOO_TABLE[n][3] / 1e9, PUBLISHED_TOP1[n], ZOO_TABLE[n][2])
        for n in names
        if n in PUBLISHED_TOP1
    ]


def _plot(names: list[str], path: str) -> None:
    """`models --plot`: the classic accuracy-against-cost bubbles of the models listed."""
    # matplotlib is slow to import; only the picture needs it
    from cnnzoo.errors import CnnzooError
    from cnnzoo.insight.plots import plot_accuracy_vs_cost

    points = cost_points(names)
    if not points:
        raise CnnzooError("none of these models has a published top-1: nothing to plot")
    plot_accuracy_vs_cost(points, path)
    print(f"plot: {path} ({len(points)} models with a published top-1)")


def _list_weights(pattern: str, names_only: bool) -> int:
    """`cnnzoo models --pretrained [PATTERN]`: one line per published weight set."""
    import fnmatch

    from cnnzoo.errors import CnnzooError
    from cnnzoo.hub import PUBLISHED
    from cnnzoo.zoo_table import ZOO_TABLE

    rows = [
        (i, e)
        for model in sorted(PUBLISHED)
        for i, e in enumerate(PUBLISHED[model])
        if fnmatch.fnmatch(model, pattern) or fnmatch.fnmatch(e.name, pattern)
    ]
    if not rows:
        raise CnnzooError(
            f"no published weights match {pattern!r}; try `cnnzoo models --pretrained` for all"
        )
    if names_only:
        print("\n".join(e.name for _, e in rows))
        return 0
    print(f"{'weights':<44} {'top-1':>6} {'input':>5} {'resize':>6} {'interp':<8} {'MB':>7} "
          f"{'licence':<31} {'sha256':<10} cached")  # fmt: skip
    for i, e in rows:
        name = e.name + (" (default)" if i == 0 else "")
        top1 = f"{e.top1:.2f}" if e.top1 is not None else "-"
        same = [o.file_mb for o in PUBLISHED[e.model] if o.file == e.file and o.file_mb]
        if same:  # published (timm's tv_in1k tags are torchvision's files)
            size = f"{same[0]:.1f}"
        else:  # float32 weights: 4 bytes a parameter
            params = ZOO_TABLE[e.model][2] if e.model in ZOO_TABLE else None
            size = f"~{params * 4 / 1e6:.1f}" if params else "-"
        licence = (e.licence or "-") + (" (non-commercial)" if e.non_commercial else "")
        sha = e.sha256[:8] if e.sha256 else "none known"
        print(
            f"{name:<44} {top1:>6} {e.input_size or '-':>5} {e.resize or '-':>6} "
            f"{e.interpolation or '-':<8} {size:>7} {licence:<31} {sha:<10} "
            f"{'yes' if e.cached() else 'no'}"
        )
    return 0
