"""`cnnzoo train --model M --data D`: train from scratch or fine-tune, resumable."""

from __future__ import annotations

import argparse
import logging

HELP = "train or fine-tune a model on digits, CIFAR, Imagenette or an image folder"

DESCRIPTION = """\
Train a model; options left out come from a recipe picked by the data:

  recipe    when                     opt  lr     wd     epochs  batch  augment
  digits    --data digits            SGD  0.05   5e-4   10      32     none
  small     images <= 64 px (CIFAR)  SGD  0.1    5e-4   30      128    light (pad-crop, flip)
  large     bigger (Imagenette)      SGD  0.05   5e-5   40      64     standard (random-resized)
  finetune  --weights given          SGD  0.01   1e-4   10      64     the data's own

Small images and the ResNet family: add --stem cifar (3x3 stem, no max-pool).

SGD is Nesterov with momentum 0.9; the lr warms up linearly (1 epoch; 2 for large, 0.5 for
digits), then follows a cosine to 0. Label smoothing 0.1 for large and finetune.
--sched onecycle brings its own warm-up (30% of the run) instead of --warmup-epochs.
--opt adamw: lr 1e-3 (1e-4 when fine-tuning), wd 0.05. Weight decay never applies to norms
and biases.

The run folder (--out, default runs/MODEL-DATA-TIME) gets best/last.safetensors with a .json
sidecar (all that predict needs), state.safetensors (to --resume), metrics.jsonl / .csv and
curves.png.

examples:
  cnnzoo train --model resnet20 --data digits
  cnnzoo train --model resnet20 --data cifar10 --data-dir data --ema 0.999
  cnnzoo train --model resnet18 --data flowers/ --weights resnet18-f37072fd.pth \\
      --freeze backbone --epochs 5
  cnnzoo train --resume runs/resnet20-cifar10-20250101-120000
"""


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("recipe (defaults from the recipe table above)")
    g.add_argument(
        "--recipe",
        choices=["digits", "small", "large", "finetune"],
        help="use this recipe's defaults instead of the one the data picks",
    )
    g.add_argument("--epochs", type=int, help="epochs to train")
    g.add_argument("--batch-size", type=int, help="images per step")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--wd", type=float, help="weight decay (not on norms and biases)")
    g.add_argument("--opt", choices=["sgd", "adamw"], default="sgd", help="optimiser (sgd)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9, Nesterov)")
    g.add_argument(
        "--sched",
        choices=["cosine", "onecycle", "constant"],
        default="cosine",
        help="lr schedule after warm-up (cosine); onecycle warms up itself",
    )
    g.add_argument("--warmup-epochs", type=float, help="linear lr warm-up length")
    g.add_argument("--min-lr-ratio", type=float, default=0.0, help="final lr / peak lr (0)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing (0 or 0.1)")
    g.add_argument(
        "--mixup",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="mixup with Beta(ALPHA, ALPHA), e.g. 0.2 (off)",
    )
    g.add_argument(
        "--cutmix",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="cutmix with Beta(ALPHA, ALPHA), e.g. 1.0 (off)",
    )
    g.add_argument(
        "--clip-grad",
        type=float,
        default=0.0,
        metavar="NORM",
        help="clip the global gradient norm (off)",
    )
    g.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="keep and evaluate an EMA of the weights, e.g. 0.999 (off)",
    )
    g.add_argument(
        "--augment",
        choices=["none", "shift", "light", "standard", "strong"],
        help="augmentation preset: none; shift = pad-crop; light = pad-crop + flip; "
        "standard = random-resized crop + flip; strong = standard + TrivialAugment "
        "+ random erasing",
    )
    g.add_argument(
        "--hflip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random horizontal flips (on with light, standard and strong; --hflip adds "
        "them to none and shift; never for digits unless asked)",
    )
    g.add_argument(
        "--crop-pad",
        type=int,
        metavar="PX",
        help="shift of the pad-crop in --augment shift/light (image size // 8: 4 px at 32)",
    )
    g.add_argument("--image-size", type=int, help="training input side (the data's own)")
    g.add_argument("--seed", type=int, default=0, help="seed of weights, split, order (0)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model name (see `cnnzoo models`)")
    p.add_argument("--data", help="digits, cifar10, cifar100, imagenette or a folder CLASS/IMG")
    p.add_argument("--data-dir", help="where cifar10/cifar100/imagenette are (or go)")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument(
        "--val-split",
        type=float,
        default=0.1,
        help="part of train held out when the data has no val split (0.1)",
    )
    p.add_argument(
        "--load-size",
        type=int,
        help="side images of a folder are stored at when loaded (data default)",
    )
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (runs/MODEL-DATA-TIME)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run where it stopped (--epochs may extend it)",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N epochs of this call; --resume goes on",
    )
    m = p.add_argument_group("model")
    m.add_argument("--stem", help="ResNet family: 'cifar' (3x3 stem, no pooling) for small images")
    m.add_argument(
        "--model-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any model option, e.g. drop_path_rate=0.1 (repeatable)",
    )
    m.add_argument(
        "--weights",
        metavar="FILE",
        help="start from a torchvision / timm / cnnzoo checkpoint or run folder (fine-tuning)",
    )
    m.add_argument(
        "--freeze",
        choices=["none", "backbone"],
        default="none",
        help="backbone: train only the classifier",
    )
    m.add_argument(
        "--backbone-lr-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="backbone lr = F x lr, e.g. 0.1 when fine-tuning (1)",
    )
    _add_recipe_options(p)
    r = p.add_argument_group("runtime")
    r.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")
    r.add_argument("--amp", action="store_true", help="mixed precision (bf16; fp16 on old GPUs)")
    r.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: one per core; 1 for the digits recipe); 1 is faster for "
        "tiny models on a busy machine",
    )


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
    from ..errors import CnnzooError

    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CnnzooError(f"--model-opt {item!r}: expected KEY=VALUE, e.g. drop_rate=0.2")
        opts[key.strip()] = parse_value(value.strip())
    if stem:
        opts["stem"] = stem
    return opts


# what --resume may change; every other option must be left out or equal the run's own
RESUME_OPTIONS = ("resume", "epochs", "device", "stop_after", "no_progress", "threads", "data_dir")


def check_resume_options(args: argparse.Namespace) -> None:
    """Refuse options that --resume would ignore, unless they repeat the run's settings."""
    import json
    from pathlib import Path

    from ..data.load import canonical_source
    from ..errors import CnnzooError

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    saved_path = Path(args.resume) / "config.json"
    saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
    given = {k: v for k, v in vars(args).items() if k in defaults and v != defaults[k]}
    bad = []
    for key, value in given.items():
        if key in RESUME_OPTIONS:
            continue
        if key in ("model_opt", "stem"):
            if parse_model_opts(args.model_opt, args.stem) == saved.get("model_opts"):
                continue
        elif key == "data" and canonical_source(value) == saved.get("data"):
            continue
        elif key in saved and saved[key] == value:
            continue
        bad.append("--" + key.replace("_", "-"))
    if bad:
        raise CnnzooError(
            f"--resume continues the run with its own settings; {', '.join(sorted(set(bad)))} "
            "cannot change (only --epochs, --device, --stop-after, --data-dir, --threads); "
            "start a new run with --out to change them"
        )


def run(args: argparse.Namespace) -> int:
    from ..engine.config import TrainConfig
    from ..engine.trainer import Trainer
    from ..errors import CnnzooError

    log = logging.getLogger("cnnzoo")
    progress = not args.no_progress
    if args.stop_after is not None and args.stop_after < 1:
        raise CnnzooError("--stop-after must be at least 1")
    if args.threads is not None:
        if args.threads < 1:
            raise CnnzooError("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    if args.resume:
        check_resume_options(args)
        device = args.device if args.device != "auto" else None
        if args.epochs is not None and args.epochs < 1:
            raise CnnzooError(f"--epochs must be at least 1 (got {args.epochs})")
        trainer = Trainer.resume(
            args.resume,
            epochs=args.epochs,
            device=device,
            data_dir=args.data_dir,
            progress=progress,
        )
    else:
        if not args.model or not args.data:
            raise CnnzooError("--model and --data are required (or --resume RUN_DIR)")
        cfg = TrainConfig(
            model=args.model,
            data=args.data,
            data_dir=args.data_dir,
            download=args.download,
            out=args.out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            wd=args.wd,
            opt=args.opt,
            momentum=args.momentum,
            sched=args.sched,
            warmup_epochs=args.warmup_epochs,
            min_lr_ratio=args.min_lr_ratio,
            label_smoothing=args.label_smoothing,
            mixup=args.mixup,
            cutmix=args.cutmix,
            clip_grad=args.clip_grad,
            ema=args.ema,
            amp=args.amp,
            channels_last=args.channels_last,
            compile=args.compile,
            device=args.device,
            seed=args.seed,
            val_split=args.val_split,
            image_size=args.image_size,
            load_size=args.load_size,
            augment=args.augment,
            hflip=args.hflip,
            crop_pad=args.crop_pad,
            model_opts=parse_model_opts(args.model_opt, args.stem),
            weights=args.weights,
            freeze=args.freeze,
            backbone_lr_scale=args.backbone_lr_scale,
            recipe=args.recipe,
        )
        trainer = Trainer(cfg, progress=progress)
    if args.threads is None and trainer.device.type == "cpu" and trainer.cfg.recipe == "digits":
        # 8-px batches are too small to gain from a second thread, and two OpenMP threads
        # stall badly (~100x) when another process holds one of the cores
        import torch

        torch.set_num_threads(1)
    try:
        result = trainer.fit(stop_after=args.stop_after)
    except KeyboardInterrupt:
        if trainer.epoch > 0:  # the state of the last whole epoch is on disk
            log.warning(
                "stopped during epoch %d; continue from epoch %d with: cnnzoo train --resume %s",
                trainer.epoch + 1,
                trainer.epoch,
                trainer.run_dir,
            )
        raise
    if result.epochs_done < trainer.cfg.epochs:
        print(
            f"stopped after epoch {result.epochs_done}/{trainer.cfg.epochs}; "
            f"continue with: cnnzoo train --resume {result.run_dir}"
        )
        return 0
    best = (
        f"best val acc {result.best_val_acc:.2f}% (epoch {result.best_epoch})"
        if result.history and result.history[-1].get("val_acc") is not None
        else "no validation split"
    )
    print(f"done: {best}; checkpoints in {result.run_dir}")
    print(f"next: cnnzoo predict --checkpoint {result.run_dir} IMAGES...")
    return 0
