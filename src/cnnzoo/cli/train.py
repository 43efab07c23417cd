"""`cnnzoo train --model M --data D`: train from scratch or fine-tune, resumable."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import typing

HELP = "train or fine-tune a model on digits, CIFAR, Imagenette or an image folder"

DESCRIPTION = """\
Train a model; options left out come from a recipe picked by the data:

  recipe    when                     opt  lr     wd     epochs  batch  augment
  digits    --data digits            SGD  0.05   5e-4   10      32     none
  small     images <= 64 px (CIFAR)  SGD  0.1    5e-4   30      128    light (pad-crop, flip)
  large     bigger (Imagenette)      SGD  0.05   5e-5   40      64     standard (random-resized)
  finetune  --pretrained / --weights SGD  0.01   1e-4   10      64     the data's own

Small images (32 px), any model: add --stem cifar (the stem keeps full resolution).

SGD is Nesterov with momentum 0.9; the lr warms up linearly over 5% of the run (1/30 for
small, 10% for finetune; so 2 epochs of large's 40, a quarter epoch of 5), then follows a
cosine to 0. A run whose loss is still at chance a quarter of the way in says so. Label smoothing 0.1 for large and finetune.
--sched onecycle brings its own warm-up (30% of the run) instead of --warmup-epochs;
--sched flatcos holds the peak lr after the warm-up to 75% of the run, then anneals by cosine.
--opt adamw: lr 1e-3 (1e-4 when fine-tuning), wd 0.05. Weight decay never applies to norms
and biases.

The run folder (--out, default runs/MODEL-DATA-TIME) gets best/last.safetensors with a .json
sidecar (all that predict needs; --keep best or last writes one of them), state.safetensors
(to --resume), metrics.jsonl / .csv, curves.png and train_batch.png; the final line says what
it weighs. A folder with train/ and val/ (valid/, validation/) picks the best epoch on val;
its test/ is scored once at the end (without val/, --val-split of train is held out).

examples:
  cnnzoo train --model resnet20 --data digits
  cnnzoo train --model resnet20 --data cifar10 --data-dir data --ema 0.999
  cnnzoo train --model resnet18 --data flowers/ --pretrained --freeze backbone --epochs 5
  cnnzoo train --model resnet50 --data flowers/ --pretrained a1_in1k --freeze-epochs 2
  cnnzoo models --pretrained resnet50    (the published sets --pretrained TAG may name)
  cnnzoo train --model resnet18 --data flowers/ --weights runs/resnet18-flowers-20250101-120000
  cnnzoo train --resume runs/resnet20-cifar10-20250101-120000
"""


GROUPS = {
    "data": "data and run folder",
    "model": "model",
    "recipe": "recipe (defaults from the recipe table above)",
    "runtime": "runtime",
}


def _config_argument(group: argparse._ArgumentGroup, f: dataclasses.Field, kind: type) -> None:
    """One `cnnzoo train` option from one TrainConfig field and its metadata."""
    meta = dict(f.metadata)
    flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
    meta.pop("group")
    kw: dict = {"dest": f.name, "help": meta.pop("help"), **meta}
    if f.name == "model_opts":  # KEY=VALUE pairs, parsed by parse_model_opts
        kw.update(action="append", default=[])
    elif kind is bool and f.default is None:
        kw.update(action=argparse.BooleanOptionalAction, default=None)
    elif kind is bool and "nargs" not in meta:  # a flag (--pretrained [TAG] takes a value too)
        kw.update(action="store_true", default=f.default)
    else:
        kw.setdefault("type", kind)  # a field may bring its own parser (--lr takes auto)
        kw["default"] = f.default
    group.add_argument(flag, **kw)


def add_config_arguments(
    p: argparse.ArgumentParser, skip: tuple[str, ...] = ()
) -> dict[str, argparse._ArgumentGroup]:
    """One option per TrainConfig field (but those in `skip`), in GROUPS; returns the groups."""
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.train.config import TrainConfig

    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), None)
        _config_argument(groups[f.metadata["group"]], f, kind or hints[f.name])
    return groups


def add_arguments(p: argparse.ArgumentParser) -> None:
    groups = add_config_arguments(p)
    run = groups["data"]
    run.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run where it stopped; --epochs N trains longer: a finished run's "
        "added epochs get a schedule of their own (warm-up, then the peak lr, or --lr, "
        "annealed again), a stopped run's schedule is stretched to N",
    )
    run.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N epochs of this call; --resume goes on",
    )
    groups["model"].add_argument(
        "--stem",
        metavar="{imagenet,cifar}",
        help="any model: 'cifar' keeps the stem at full resolution (stride 1, no stem pooling) "
        "for 32 px images; training from scratch (imagenet: the reference stem)",
    )
    groups["runtime"].add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train in N processes on this machine (DistributedDataParallel, launched with "
        "torchrun; one per GPU, or gloo on CPUs); --batch-size stays the global batch",
    )
    groups["runtime"].add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_value(text: str):
    """'3' -> 3, '0.1' -> 0.1, 'true' -> True, 'none' -> None, anything else a string."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_model_opts(items: list[str], stem: str | None) -> dict:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.errors import CnnzooError

    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CnnzooError(f"--model-opt {item!r}: expected KEY=VALUE, e.g. drop_rate=0.2")
        opts[key.strip()] = parse_value(value.strip())
    if stem:
        opts["stem"] = stem
    return opts


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the options describe (model options and --stem folded into model_opts)."""
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.train.config import TrainConfig

    fields = [f.name for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)]
    values = {name: getattr(args, name) for name in fields}
    values["model_opts"] = parse_model_opts(args.model_opts, args.stem)
    return TrainConfig(**values)


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train import distributed

    if args.nproc is not None and not distributed.launched_by_torchrun():
        if args.nproc < 1:
            raise CnnzooError(f"--nproc must be at least 1 (got {args.nproc})")
        return distributed.launch(args.nproc, _without_nproc(args.argv))
    dist = distributed.init_from_env(args.device)
    if not dist.is_main:  # one voice: rank 0 logs, shows progress and writes the run folder
        logging.getLogger("cnnzoo").setLevel(logging.WARNING)
        args.no_progress = True
    try:
        code = _train(args, dist)
    except BaseException:
        distributed.shutdown(orderly=False)
        raise
    distributed.shutdown()
    return code


def _resume_command(run_dir, dist) -> str:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import os

    if not dist.enabled:
        return f"cnnzoo train --resume {run_dir}"
    if int(os.environ.get("LOCAL_WORLD_SIZE", dist.world)) == dist.world:  # one machine
        return f"cnnzoo train --nproc {dist.world} --resume {run_dir}"
    return f"the same torchrun command with -m cnnzoo train --resume {run_dir}"


def _train(args: argparse.Namespace, dist) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train.config import changed_fields
    from cnnzoo.train.records import folder_size_line
    from cnnzoo.train.trainer import Trainer

    log = logging.getLogger("cnnzoo")
    progress = not args.no_progress
    if args.stop_after is not None and args.stop_after < 1:
        raise CnnzooError("--stop-after must be at least 1")
    cfg = config_from_args(args)
    if args.resume:
        trainer = Trainer.resume(
            args.resume, changes=changed_fields(cfg), progress=progress, dist=dist
        )
    else:
        trainer = Trainer(cfg, progress=progress, dist=dist)
    resume_cmd = _resume_command(trainer.setup.run_dir, dist)
    try:
        result = trainer.fit(stop_after=args.stop_after)
    except KeyboardInterrupt:  # a second Ctrl-C: the last saved state is whole on disk
        if trainer.saved_step is not None:
            log.warning(
                "stopped at step %d; continue from step %d with: %s",
                trainer.loop.step,
                trainer.saved_step,
                resume_cmd,
            )
        raise
    finally:
        trainer.close()  # the folder is free for a resume from here on
    if not dist.is_main:
        return 0
    if result.interrupted is not None:
        print(
            f"stopped by {result.interrupted} at step {result.step} (epoch "
            f"{result.epochs_done + (1 if trainer.loop.batch else 0)}/{trainer.cfg.epochs}); "
            f"the state is saved; continue with: {resume_cmd}"
        )
        if dist.enabled:  # torchrun counts any other code as a failed worker
            return 0
        return 128 + getattr(signal.Signals, result.interrupted, signal.SIGTERM).value
    if result.stopped_early:
        print(f"stopped early after epoch {result.epochs_done}: {result.stopped_early}")
    elif result.epochs_done < trainer.cfg.epochs:
        print(
            f"stopped after epoch {result.epochs_done}/{trainer.cfg.epochs}; "
            f"continue with: {resume_cmd}"
        )
        return 0
    best = (
        f"best val acc {result.best_val_acc:.2f}% (epoch {result.best_epoch})"
        if result.history and result.history[-1].get("val_acc") is not None
        else "no validation split"
    )
    if result.test is not None:  # scored once, after training, with the picked checkpoint
        t = result.test
        best += f"; test acc {t['test_acc']:.2f}% ({t['test_images']} images, "
        best += f"epoch {t['test_epoch']})"
    print(f"done: {best}; checkpoints in {result.run_dir}")
    print(folder_size_line(result.run_dir))
    print(f"next: cnnzoo predict --checkpoint {result.run_dir} IMAGES...")
    return 0
