"""`cnnzoo lr-find --model M --data D`: the learning-rate range test, plotted, lr suggested."""

from __future__ import annotations

import argparse

HELP = "find a learning rate: loss against an exponentially rising lr, with a suggestion"

DESCRIPTION = """\
The learning-rate range test: train from the run's starting point for --steps steps while the
lr rises exponentially from --start-lr to --end-lr, smooth the loss, stop when it blows up, and
suggest the lr one decade below the lowest loss (still on the steep, stable part). The model,
data, augmentation, optimiser and loss are those `cnnzoo train` would use with the same
options; nothing is trained or saved but the plot. `cnnzoo train --lr auto` runs this first
and trains with the suggestion.

examples:
  cnnzoo lr-find --model resnet20 --data digits
  cnnzoo lr-find --model resnet18 --data flowers/ --weights resnet18.pth --opt adamw --out lr.png
"""

# options of `cnnzoo train` that mean nothing for a few hundred steps of a range test
SKIP = ("out", "lr", "epochs", "sched", "warmup_epochs", "min_lr_ratio", "patience", "ema",
        "freeze_epochs")  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    from cnnzoo.cli.train import add_config_arguments

    groups = add_config_arguments(p, skip=SKIP)
    g = p.add_argument_group("range test")
    g.add_argument("--steps", type=int, default=200, help="steps at most (200)")
    g.add_argument("--start-lr", type=float, default=1e-7, help="first lr (1e-7)")
    g.add_argument("--end-lr", type=float, default=10.0, help="last lr (10)")
    g.add_argument(
        "--out", default="lr_find.png", metavar="FILE.png", help="the plot (./lr_find.png)"
    )
    groups["model"].add_argument(
        "--stem", help="ResNet family: 'cifar' (3x3 stem, no pooling) for small images"
    )
    groups["runtime"].add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import shutil
    import tempfile
    from pathlib import Path

    from cnnzoo.artifacts.files import write_json
    from cnnzoo.cli.train import config_from_args
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train.lr_find import find_lr, lr_find_title, plot_lr_find
    from cnnzoo.train.trainer import Trainer

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CnnzooError(f"--out {out}: give a .png file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="cnnzoo-lr-find-"))
    try:
        cfg = dataclasses.replace(config_from_args(args), out=str(scratch / "run"))
        trainer = Trainer(cfg, progress=not args.no_progress)
        result = find_lr(trainer, steps=args.steps, start_lr=args.start_lr, end_lr=args.end_lr,
                         progress=not args.no_progress)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    c = trainer.cfg
    plot_lr_find(result, out, lr_find_title(trainer))
    write_json(out.with_suffix(".json"), result.to_dict())
    print(
        f"{len(result.lrs)} steps, lr {result.lrs[0]:.2g} .. {result.lrs[-1]:.2g} ({result.stopped})"
    )
    print(f"lowest smoothed loss {min(result.losses):.4f} at lr {result.min_loss_lr:.3g}")
    print(f"suggested lr: {result.suggestion:.3g}")
    print(f"plot: {out}")
    print(f"next: cnnzoo train --model {c.model} --data {c.data} --lr {result.suggestion:.3g}")
    return 0
