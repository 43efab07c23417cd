"""`cnnzoo data D`: what a dataset holds before training: classes, counts, sizes, skipped files."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

HELP = "show a dataset: classes with counts per split, source image sizes, skipped files"
DESCRIPTION = """\
Load a dataset the way `cnnzoo train` does and show what it holds: the classes with their
image counts per split, the stored image size and normalisation, the sizes and colour modes
of the source files (folders), and the files that could not be read. --grid writes a
picture of a few training images per class.

D is digits, cifar10, cifar100, imagenette, or a folder laid out as ROOT/CLASS/IMAGE
(a share of each class is held out for validation) or ROOT/train/CLASS/IMAGE with
ROOT/val/ or ROOT/test/ beside it.

examples:
  cnnzoo data ./flowers --grid flowers.png
  cnnzoo data cifar10 --download
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data", metavar="D", help="digits, cifar10, cifar100, imagenette, or an image folder"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="where downloaded datasets live (default: $CNNZOO_DATA_DIR or ~/.cache/cnnzoo)",
    )
    p.add_argument(
        "--val-split",
        type=float,
        default=0.1,
        help="share of each class held out for validation when there is no val/ or test/ "
        "(default 0.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the stored square images (default: 256 for folders, or the images' own "
        "size when smaller; 8 digits, 32 CIFAR, 160 Imagenette)",
    )
    p.add_argument("--download", action="store_true", help="download CIFAR / Imagenette if missing")
    p.add_argument(
        "--cache",
        choices=["auto", "memory", "disk"],
        default="auto",
        help="where a folder's decoded images live; disk builds (or reuses) the memory-mapped "
        "cache that `cnnzoo train --cache disk` reads, so this command can prepare it (auto)",
    )
    p.add_argument("--cache-dir", default=None, help="folder of the disk cache (DATA_DIR/cache)")
    p.add_argument("--grid", metavar="FILE.png", default=None, help="write sample images per class")
    p.add_argument(
        "--per-class", type=int, default=8, help="images per class in the grid (default 8)"
    )
    p.add_argument(
        "--export",
        metavar="DIR",
        default=None,
        help="write --per-class validation images of each class as PNG files to DIR/CLASS/ "
        "(e.g. to try `cnnzoo predict` on images the model never trained on)",
    )


def _counts(labels, n: int) -> list[int]:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import torch

    return torch.bincount(labels, minlength=n).tolist()


def _formats_lines(formats: dict[tuple[int, int, str], int]) -> list[str]:
    sizes, modes = Counter(), Counter()
    for (w, h, mode), k in formats.items():
        sizes[f"{w}x{h}"] += k
        modes[mode] += k
    total = sum(sizes.values())
    lines = [f"source files: {total:,} readable"]
    common = sizes.most_common(5)
    text = ", ".join(f"{s} ({k:,})" for s, k in common)
    if len(sizes) > len(common):
        widths = [w for w, _, _ in formats]
        heights = [h for _, h, _ in formats]
        text += (
            f", and {len(sizes) - len(common):,} other sizes "
            f"(widths {min(widths)}..{max(widths)}, heights {min(heights)}..{max(heights)})"
        )
    lines.append(f"  sizes: {text}")
    lines.append("  modes: " + ", ".join(f"{m} ({k:,})" for m, k in modes.most_common()))
    return lines


def _stats_lines(bundle) -> list[str]:
    """The data's own per-channel mean / std (of its training images), and what training
    normalises with when that is something else (ImageNet's, for folders and Imagenette)."""
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.data.stats import channel_stats

    mean, std = channel_stats(bundle.train.images)
    fmt = lambda v: " ".join(f"{x:.4f}" for x in v)  # noqa: E731
    lines = [f"mean      {fmt(mean)}  (of the training images)", f"std       {fmt(std)}"]
    if (tuple(mean), tuple(std)) != (tuple(bundle.mean), tuple(bundle.std)):
        lines += [
            f"normalise {fmt(bundle.mean)} / {fmt(bundle.std)} by default (ImageNet's, "
            "for pretrained weights); cnnzoo train --stats uses the data's own",
        ]
    return lines


def report(bundle) -> str:
    """The text `cnnzoo data` prints for a DataBundle."""
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.data.images import shown

    n = len(bundle.classes)
    train = _counts(bundle.train.labels, n)
    val = _counts(bundle.val.labels, n)
    c, s = bundle.train.images.shape[1], bundle.image_size
    nbytes = bundle.train.images.numel() + bundle.val.images.numel()
    test = ""
    if bundle.test is not None:  # scored at the end of training, never for selection
        nbytes += bundle.test.images.numel()
        test = f", test {len(bundle.test):,} (scored at the end of training)"
    out = [
        f"dataset   {bundle.name}",
        f"classes   {n}",
        f"stored    {c}x{s}x{s} uint8: train {len(bundle.train):,}, "
        f"val {len(bundle.val):,} ({bundle.val_name}){test}; {nbytes / 1e6:,.1f} MB",
        *_stats_lines(bundle),
        "",
    ]
    width = max([len("class"), len("total")] + [len(name) for name in bundle.classes])
    out.append(f"{'class':<{width}}  {'train':>9}  {'val':>9}")
    for name, a, b in zip(bundle.classes, train, val, strict=True):
        out.append(f"{shown(name):<{width}}  {a:>9,}  {b:>9,}")
    out.append(f"{'total':<{width}}  {sum(train):>9,}  {sum(val):>9,}")
    if bundle.source_formats:
        out += ["", *_formats_lines(bundle.source_formats)]
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.train.imbalance import imbalance_warning

    warning = imbalance_warning(bundle.train.labels, list(bundle.classes))
    if warning:
        out += ["", warning]
    if bundle.skipped:
        out += ["", f"skipped {len(bundle.skipped)} unreadable file(s):"]
        out += [f"  {shown(f)}: {why}" for f, why in bundle.skipped]
    return "\n".join(out)


def write_grid(bundle, path: Path, per_class: int, seed: int) -> None:
    """A PNG (or any format matplotlib writes) with `per_class` training images per row,
    one row per class, labelled with the class name."""
    # matplotlib is slow to import; only pictures need it
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib is slow to import; only pictures need it
    import matplotlib.pyplot as plt
    import torch

    rows, cols = len(bundle.classes), per_class
    tile = 1.0 if rows <= 20 else 0.5
    g = torch.Generator().manual_seed(seed)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * tile + 1.5, rows * tile), squeeze=False)
    for r, name in enumerate(bundle.classes):
        idx = torch.nonzero(bundle.train.labels == r).flatten()
        pick = idx[torch.randperm(idx.numel(), generator=g)[:cols]].tolist()
        for k, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if k < len(pick):
                img = bundle.train.images[pick[k]].permute(1, 2, 0).numpy()
                ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
        axes[r, 0].text(
            -0.08,
            0.5,
            name,
            transform=axes[r, 0].transAxes,
            ha="right",
            va="center",
            fontsize=9,
        )
    fig.subplots_adjust(left=1.4 / (cols * tile + 1.5), wspace=0.05, hspace=0.05)
    from cnnzoo.insight.plots import save_figure  # matplotlib: only when a grid is asked for

    save_figure(fig, path, bbox_inches="tight", pad_inches=0.1)  # closes the figure


def export_images(bundle, out: Path, per_class: int) -> int:
    """Write the first `per_class` validation images of each class as DIR/CLASS/NNNN.png."""
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from PIL import Image

    written = 0
    for c, name in enumerate(bundle.classes):
        idx = (bundle.val.labels == c).nonzero().flatten()[:per_class].tolist()
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in idx:
            pixels = bundle.val.images[i].permute(1, 2, 0).numpy()
            Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels).save(
                folder / f"{i:05d}.png"
            )
            written += 1
    return written


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.data import load_data
    from cnnzoo.errors import CnnzooError

    if args.per_class < 1:
        raise CnnzooError("--per-class must be at least 1")
    grid = Path(args.grid) if args.grid else None
    if grid is not None and not grid.parent.is_dir():
        raise CnnzooError(f"cannot write {grid}: folder {grid.parent} does not exist")
    if grid is not None:  # no device, FIFO, folder or run file; a format matplotlib writes
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from cnnzoo.artifacts.files import check_output

        check_output(grid, (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".webp"), "--grid")
    if args.export:
        Path(args.export).mkdir(parents=True, exist_ok=True)  # a bad path fails before loading
    bundle = load_data(
        args.data,
        data_dir=args.data_dir,
        image_size=args.image_size,
        val_split=args.val_split,
        seed=args.seed,
        download=args.download,
        progress=sys.stderr.isatty(),
        max_unreadable=1.0,  # show a broken folder in full instead of refusing it
        cache=args.cache,
        cache_dir=args.cache_dir,
    )
    print(report(bundle))
    if args.export:
        n = export_images(bundle, Path(args.export), args.per_class)
        print(f"\nwrote {n} {bundle.val_name} images to {args.export}")
    if grid is not None:
        write_grid(bundle, grid, args.per_class, args.seed)
        print(f"\nwrote {grid}")
    return 0
