"""`cnnzoo lr-find --model M --data D`: the learning-rate range test, plotted, lr suggested."""

from __future__ import annotations

import argparse

HELP = "find a learning rate: loss against an exponentially rising lr, with a suggestion"

DESCRIPTION = """\
The learning-rate range test: train from the run's starting point for --steps steps (about
one epoch of the data: at least 100, at most 200) while the lr rises exponentially from
--start-lr to --end-lr, smooth the loss, stop when it blows up, and suggest the lr one decade
below the lowest loss (still on the steep, stable part). The model, data, augmentation,
optimiser and loss are those `cnnzoo train` would use with the same options; nothing is
trained or saved but the plot. The `next:` line is the `cnnzoo train` command with every
option it measured with and the suggested --lr. `cnnzoo train --lr auto` runs this first
and trains with the suggestion.

examples:
  cnnzoo lr-find --model resnet20 --data digits
  cnnzoo lr-find --model resnet18 --data flowers/ --weights resnet18.pth --opt adamw --out lr.png
  cnnzoo lr-find --model resnet18 --data flowers/ --pretrained --freeze backbone
"""

# options of `cnnzoo train` that mean nothing for a few hundred steps of a range test
SKIP = ("out", "lr", "epochs", "sched", "warmup_epochs", "min_lr_ratio", "patience", "ema",
        "freeze_epochs", "log", "keep")  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.cli.train import add_config_arguments

    groups = add_config_arguments(p, skip=SKIP)
    g = p.add_argument_group("range test")
    g.add_argument(
        "--steps",
        type=int,
        help="steps at most (default: one epoch of the data, at least 100 and at most 200)",
    )
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
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import dataclasses
    import shutil
    import tempfile
    from pathlib import Path

    from cnnzoo.artifacts.files import write_json
    from cnnzoo.cli.train import config_from_args
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train.lr_find import default_steps, find_lr, lr_find_title, plot_lr_find
    from cnnzoo.train.trainer import Trainer

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise CnnzooError(f"--out {out}: give a .png file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="cnnzoo-lr-find-"))
    try:
        cfg = dataclasses.replace(config_from_args(args), out=str(scratch / "run"))
        trainer = Trainer(cfg, progress=not args.no_progress)
        steps = args.steps or default_steps(trainer.steps_per_epoch)
        result = find_lr(trainer, steps=steps, start_lr=args.start_lr, end_lr=args.end_lr,
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
    print(f"next: {next_command(getattr(args, 'argv', []), c, result.suggestion)}")
    return 0


# lr-find's own options (with whether they take a value): not for `cnnzoo train`
OWN_OPTIONS = {"--steps": True, "--start-lr": True, "--end-lr": True, "--out": True,
               "--no-progress": False}  # fmt: skip


def next_command(argv: list[str], cfg, lr: float) -> str:
    """`cnnzoo train` with every option lr-find measured with (as the user spelt them; the
    range test's own left out), the batch size and input side it used when they came from
    the recipe, and the suggested --lr."""
    # imported when the command runs, like the rest of this module's imports
    import shlex

    words = list(argv)
    if "lr-find" in words:  # options before the subcommand (--debug) stay where they are
        words[words.index("lr-find")] = "train"
    else:
        words = ["train", "--model", cfg.model, "--data", cfg.data]
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        name = w.split("=", 1)[0]
        own = [o for o in OWN_OPTIONS if name.startswith("--") and o.startswith(name)]
        if own and len(name) > 2:  # the option, or an abbreviation argparse accepted
            skip = OWN_OPTIONS[own[0]] and "=" not in w
            continue
        out.append(w)
    given = {w.split("=", 1)[0] for w in out}
    if not any(g.startswith("--batch") for g in given):
        out += ["--batch-size", str(cfg.batch_size)]
    if not any(g.startswith("--image") for g in given):
        out += ["--image-size", str(cfg.image_size)]
    return shlex.join(["cnnzoo", *out, "--lr", f"{lr:.3g}"])
