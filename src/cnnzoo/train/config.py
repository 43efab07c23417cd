"""Training options (`TrainConfig`) and the default recipe each dataset size gets.

Every option left at None is filled by `resolve_config` from a recipe chosen by the data:

| recipe     | when                          | optimiser        | lr    | wd    | epochs | augment  |
| ---------- | ----------------------------- | ---------------- | ----- | ----- | ------ | -------- |
| digits     | `--data digits`               | SGD Nesterov 0.9 | 0.05  | 5e-4  | 10     | none     |
| small      | images up to 64 px (CIFAR)    | SGD Nesterov 0.9 | 0.1   | 5e-4  | 30     | light    |
| large      | bigger images (Imagenette)    | SGD Nesterov 0.9 | 0.05  | 5e-5  | 40     | standard |
| finetune   | `--weights` / `--pretrained`  | SGD Nesterov 0.9 | 0.01  | 1e-4  | 10     | by size  |

All recipes: cosine schedule after a linear warm-up over a share of the run (5%; 1/30 for
small, 10% for finetune: 2 epochs of large's 40, 0.25 of a 5-epoch run),
batch 128 (64 for large and finetune, 32 for digits); label smoothing 0.1 for large and finetune; no EMA, mixup or cutmix unless asked.
AdamW (`--opt adamw`) defaults to wd 0.05 and lr 1e-3 (fine-tuning: the recipe's lr / 100, 1e-4).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.cfg import TRAIN_PRECISIONS, is_size, size_hw, size_value
from cnnzoo.errors import CnnzooError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "flatcos", "constant")
AUGMENTS = ("none", "shift", "light", "standard", "strong")
FREEZE = ("none", "backbone")
CLASS_WEIGHTS = ("none", "auto")
SAMPLERS = ("shuffle", "balanced")


def lr_value(text: str) -> float | str:
    """--lr: a number, or 'auto' for the suggestion of the lr range test (cnnzoo lr-find)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--lr takes a number or auto, not {text!r}") from None


lr_value.__name__ = "lr"  # argparse names the type in its message: "invalid lr value"


RECIPES: dict[str, dict[str, Any]] = {
    # warmup: the linear lr warm-up as a share of the run (warmup_epochs = warmup x epochs), so
    # a short run warms up as briefly as a long one in proportion (2 of 40 epochs: 0.05)
    # 8 px digits: a 1-pixel shift is already an eighth of the image and slows learning more
    # than it helps; 50 steps per epoch reach ~99% in 5-10 epochs (seeds 0-3: 98.3-99.4%)
    "digits": dict(epochs=10, batch_size=32, lr=0.05, wd=5e-4, warmup=0.05,
                   label_smoothing=0.0, augment="none", hflip=False),
    "small": dict(epochs=30, batch_size=128, lr=0.1, wd=5e-4, warmup=1 / 30, label_smoothing=0.0,
                  augment="light"),
    "large": dict(epochs=40, batch_size=64, lr=0.05, wd=5e-5, warmup=0.05, label_smoothing=0.1,
                  augment="standard"),
    "finetune": dict(epochs=10, batch_size=64, lr=0.01, wd=1e-4, warmup=0.1,
                     label_smoothing=0.1),
}  # fmt: skip
RECIPE_NAMES = tuple(RECIPES)


def option(default: Any = None, help: str = "", *, group: str = "recipe", **argparse_kw: Any):
    """A TrainConfig field that is also a `cnnzoo train` option: `help` and `group` say how the
    command line shows it, `argparse_kw` (choices, metavar, flag) how it parses. The command line
    is generated from these fields, so an option is written once, here."""
    meta = {"help": help, "group": group, **argparse_kw}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved with every checkpoint as its recipe.
    Options left at None are filled from the recipe the data picks (`resolve_config`)."""

    model: str = option(None, "model name (see `cnnzoo models`)", group="data")
    data: str = option(
        None, "digits, cifar10, cifar100, imagenette or a folder CLASS/IMG", group="data"
    )
    data_dir: str | None = option(
        None, "where cifar10/cifar100/imagenette are (or go)", group="data"
    )
    download: bool = option(False, "download the dataset if missing", group="data")
    val_split: float = option(
        0.1, "part of train held out when the data has no val split (0.1)", group="data"
    )
    load_size: int | None = option(
        None, "side images of a folder are stored at when loaded (data default)", group="data"
    )
    cache: str = option(
        "auto",
        "where a folder's decoded images live: memory, disk (a memory-mapped file, built once, "
        "for data larger than RAM) or auto (disk when they would take more than --cache-ram "
        "of the RAM)",
        group="data",
        choices=("auto", "memory", "disk"),
    )
    cache_dir: str | None = option(
        None, "folder of the disk cache (DATA_DIR/cache: ~/.cache/cnnzoo/cache)", group="data"
    )
    cache_ram: float = option(
        0.5,
        "share of the RAM decoded images may take before auto goes to disk (0.5)",
        group="data",
        metavar="SHARE",
    )
    out: str | None = option(
        None, "run folder (runs/MODEL-DATA-TIME)", group="data", metavar="RUN_DIR"
    )
    recipe: str | None = option(
        None, "use this recipe's defaults instead of the one the data picks", choices=RECIPE_NAMES
    )
    epochs: int | None = option(None, "epochs to train")
    batch_size: int | None = option(None, "images per step")
    lr: float | str | None = option(
        None,
        "peak learning rate, or auto: run the lr range test first and use its suggestion",
        type=lr_value,
    )
    wd: float | None = option(None, "weight decay (not on norms and biases)")
    opt: str = option("sgd", "optimiser (sgd: Nesterov)", choices=OPTIMIZERS)
    momentum: float = option(0.9, "SGD momentum (0.9)")
    sched: str = option(
        "cosine",
        "lr schedule after warm-up (cosine); onecycle warms up itself; flatcos holds the peak "
        "until 75%% of the run, then anneals (cosine)",
        choices=SCHEDULES,
    )
    warmup_epochs: float | None = option(
        None, "linear lr warm-up length (the recipe's share of the run: 5%% of --epochs)"
    )
    min_lr_ratio: float = option(0.0, "final lr / peak lr (0)")
    label_smoothing: float | None = option(None, "label smoothing (0 or 0.1)")
    mixup: float = option(0.0, "mixup with Beta(ALPHA, ALPHA), e.g. 0.2 (off)", metavar="ALPHA")
    cutmix: float = option(0.0, "cutmix with Beta(ALPHA, ALPHA), e.g. 1.0 (off)", metavar="ALPHA")
    clip_grad: float = option(0.0, "clip the global gradient norm (off)", metavar="NORM")
    ema: float = option(
        0.0, "keep and evaluate an EMA of the weights, e.g. 0.999 (off)", metavar="DECAY"
    )
    augment: str | None = option(
        None,
        "augmentation preset: none; shift = pad-crop; light = pad-crop + flip; standard = "
        "random-resized crop + flip; strong = standard + TrivialAugment + random erasing",
        choices=AUGMENTS,
    )
    hflip: bool | None = option(
        None,
        "random horizontal flips (on with light, standard and strong; --hflip adds them to none "
        "and shift; never for digits unless asked)",
    )
    crop_pad: int | None = option(
        None,
        "shift of the pad-crop in --augment shift/light (image size // 8: 4 px at 32)",
        metavar="PX",
    )
    crop_scale: float = option(
        0.08,
        "smallest area share of a random-resized crop (0.08); larger, e.g. 0.35, is milder "
        "augmentation (a lever for short runs)",
        metavar="MIN",
    )
    image_size: int | list[int] | None = option(
        None,
        "training input size: one number for a square, or two, H W, for a rectangle (e.g. "
        "--image-size 24 40: crops, evaluation and exported files all take H x W; images are "
        "resized, aspect kept, to cover it, then centre-cropped). Default: the data's own",
        nargs="+",
        metavar="PX",
    )
    progressive: int | None = option(
        None,
        "progressive resizing: training crops grow from this side to --image-size over the "
        "run (multiples of 8; the last epoch at full size), so early epochs run faster; "
        "validation stays at --image-size (a rectangle's shorter side starts here, the other "
        "in proportion)",
        metavar="PX",
    )
    seed: int = option(0, "seed of weights, split, order (0)")
    patience: int = option(
        0, "stop when the val accuracy has not improved for N epochs (0: never)", metavar="N"
    )
    class_weights: str = option(
        "none", "auto: weigh each class's loss by its inverse frequency", choices=CLASS_WEIGHTS
    )
    sampler: str = option(
        "shuffle",
        "balanced: draw every class equally often each epoch (with replacement)",
        choices=SAMPLERS,
    )
    stats: bool = option(
        False, "normalise with the data's own mean and std (see cnnzoo data)", group="data"
    )
    mean: list[float] | None = option(
        None,
        "normalise with this mean, on the 0..1 scale: three numbers (R G B), one for grey "
        "images; recorded in the checkpoint, so eval, predict, export and serve use it too "
        "(default: the data's or the weights' own)",
        group="data",
        nargs="+",
        type=float,
        metavar="M",
    )
    std: list[float] | None = option(
        None,
        "normalise with this standard deviation (0..1 scale, each above 0), as --mean",
        group="data",
        nargs="+",
        type=float,
        metavar="S",
    )
    model_opts: dict[str, Any] = option(
        {},
        "any model option, e.g. drop_path_rate=0.1 (repeatable)",
        group="model",
        flag="--model-opt",
        metavar="KEY=VALUE",
    )
    weights: str | None = option(
        None,
        "start from a torchvision / timm / cnnzoo checkpoint or run folder (fine-tuning)",
        group="model",
        metavar="FILE",
    )
    pretrained: bool | str = option(
        False,
        "start from the reference's published ImageNet weights of --model, or those named TAG "
        "(e.g. IMAGENET1K_V1, a1_in1k: see cnnzoo models --pretrained); fine-tuning, with "
        "that file's normalisation and interpolation; downloaded once into $CNNZOO_HOME "
        "(default ~/.cache/cnnzoo)",
        group="model",
        nargs="?",
        const=True,
        type=str,
        metavar="TAG",
    )
    freeze: str = option(
        "none", "backbone: train only the classifier", group="model", choices=FREEZE
    )
    backbone_lr_scale: float = option(
        1.0, "backbone lr = F x lr, e.g. 0.1 when fine-tuning (1)", group="model", metavar="F"
    )
    freeze_epochs: int = option(
        0,
        "train the classifier alone for the first N epochs, then the whole network "
        "(backbone at --backbone-lr-scale)",
        group="model",
        metavar="N",
    )
    device: str = option("auto", "auto (cuda if available), cpu, cuda:N", group="runtime")
    amp: bool = option(
        False,
        "reduced-precision autocast where it pays, said and recorded as --precision: bf16 on "
        "CUDA (fp16 on GPUs without bf16); on a CPU with AMX or AVX512-BF16, bf16 when a few "
        "timed training passes of this model and batch are faster; else fp32",
        group="runtime",
    )
    precision: str | None = option(
        None,
        "autocast precision, forced (fp32 unless --amp chooses)",
        group="runtime",
        choices=TRAIN_PRECISIONS,
    )
    channels_last: bool = option(False, "NHWC memory format", group="runtime")
    compile: bool = option(False, "torch.compile the model", group="runtime")
    accum_steps: int = option(
        1,
        "split each step's batch into N micro-batches whose gradients add up: the same "
        "global batch in less memory (--batch-size stays the images per optimiser step)",
        group="runtime",
        metavar="N",
    )
    sync_bn: bool = option(
        False,
        "with several processes (torchrun, --nproc): BatchNorm statistics over the whole "
        "global batch instead of each process's share",
        group="runtime",
    )
    checkpoint_every: int = option(
        0,
        "also save the resumable state every N optimiser steps, not only after each epoch "
        "(0: per epoch only); a kill then loses at most N steps",
        group="runtime",
        metavar="N",
    )
    allow_data_change: bool = option(
        False,
        "with --resume: go on although the data changed since the run started (files added, "
        "removed or replaced, classes renamed); recorded in the run's data.json",
        group="runtime",
    )
    skip_nonfinite: int = option(
        0,
        "skip up to N steps whose loss or gradients are NaN/inf instead of stopping the run (0)",
        group="runtime",
        metavar="N",
    )
    keep: str = option(
        "all",
        "checkpoints kept beside the resume state: all (best and last), best or last; the "
        "final line says what the run folder weighs",
        group="data",
        choices=("all", "best", "last"),
    )
    log: str = option(
        "none",
        "also log the epochs' numbers and a grid of training images to tensorboard "
        "(RUN/tensorboard) or mlflow (MLFLOW_TRACKING_URI, else RUN/mlruns); needs that "
        "library: pip install 'cnnzoo[watch]'",
        group="runtime",
        choices=("none", "tensorboard", "mlflow"),
    )
    threads: int | None = option(
        None,
        "CPU threads (default: one per idle core, looked at again each epoch, so the run "
        "slows down gracefully beside other busy processes; 1 for the digits recipe)",
        group="runtime",
        metavar="N",
    )

    def __post_init__(self) -> None:
        # one form for sizes and channel values, as JSON gives them back on --resume: a
        # square's side an int ([32] and [32, 32] are 32), a rectangle [H, W], values lists
        size = self.image_size
        if isinstance(size, (list, tuple)) and len(size) in (1, 2):
            if all(isinstance(v, int) and not isinstance(v, bool) for v in size):
                self.image_size = size_value(size)
        for name in ("mean", "std"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def data_recipe(data: str, data_image_size: int | list[int]) -> str:
    """The from-scratch recipe for this data: digits, small (shorter side <= 64 px) or large."""
    if data == "digits":
        return "digits"
    return "small" if min(size_hw(data_image_size)) <= 64 else "large"


def pick_recipe(cfg: TrainConfig, data_image_size: int | list[int]) -> str:
    return "finetune" if cfg.weights or cfg.pretrained else data_recipe(cfg.data, data_image_size)


def resolve_config(cfg: TrainConfig, data_image_size: int | list[int]) -> TrainConfig:
    """A copy of `cfg` with every None filled from the recipe for this data, then checked."""
    name = cfg.recipe or pick_recipe(cfg, data_image_size)
    if name not in RECIPES:
        raise CnnzooError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    recipe = dict(RECIPES[name])
    if cfg.opt == "adamw":
        recipe.update(lr=recipe["lr"] / 100 if name == "finetune" else 1e-3, wd=0.05)
    if name == "finetune":  # the data's own augmentation (none and no flips for digits)
        own = RECIPES[data_recipe(cfg.data, data_image_size)]
        recipe["augment"] = own["augment"]
        if "hflip" in own:
            recipe["hflip"] = own["hflip"]
    out = dataclasses.replace(cfg, recipe=name, model_opts=dict(cfg.model_opts))
    warmup = recipe.pop("warmup")
    for key, value in recipe.items():
        if getattr(out, key) is None:
            setattr(out, key, value)
    if out.warmup_epochs is None:  # a share of this run's length, however long it is
        out.warmup_epochs = round(warmup * out.epochs, 4)
    if out.hflip is None:  # flips come with the cropping presets; --hflip adds them to any
        out.hflip = out.augment not in ("none", "shift")
    if out.image_size is None:
        out.image_size = size_value(data_image_size)
    validate_config(out)
    return out


# the largest side a training input may have: far beyond any model's native size (600 px),
# small enough that one image of it still fits in memory
MAX_IMAGE_SIZE = 4096
# seeds feed torch generators, which take 64-bit integers (and seed + 1 is used as well)
MAX_SEED = 2**63 - 2
_TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "None": type(None)}


def _check_types(cfg: TrainConfig) -> None:
    """Each field holds its annotated type: a config read from a tampered file (or built in
    Python with a typo) fails here with one line instead of deep inside training."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        kinds = [k.strip() for k in str(f.type).split("|")]
        if any(k.startswith("dict") for k in kinds):
            ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        else:
            allowed = tuple(t for k in kinds for t in (_TYPES.get(k, object),))
            ok = isinstance(value, allowed)
            # bool is an int to Python, never a number here; floats must be finite
            if isinstance(value, bool) and "bool" not in kinds:
                ok = False
            if isinstance(value, float) and not math.isfinite(value):
                raise CnnzooError(
                    f"--{f.name.replace('_', '-')} must be a finite number (got {value})"
                )
        if not ok:
            want = " or ".join(k for k in kinds)
            raise CnnzooError(
                f"option {f.name!r} must be {want}, got {type(value).__name__} {value!r:.40}"
            )


def _shown(v: Any) -> str:
    """A size or list option as typed: 24 40."""
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)[:40]
    return f"{v!r:.40}"


def _check_channel_values(cfg: TrainConfig) -> None:
    """--mean / --std: one or three finite numbers each (0..1 scale), std above 0."""
    for name, low in (("mean", None), ("std", 1e-4)):
        v = getattr(cfg, name)
        if v is None:
            continue
        if not isinstance(v, list) or len(v) not in (1, 3):
            raise CnnzooError(
                f"--{name} takes three numbers (R G B) or one for grey images (got {_shown(v)})"
            )
        for x in v:
            if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x):
                raise CnnzooError(f"--{name} values must be finite numbers (got {_shown(v)})")
            if low is not None and x < low:
                raise CnnzooError(
                    f"--std values must be above 0 (at least {low:g}; got {_shown(v)}): each "
                    "is a divisor"
                )
            if abs(x) > 255:
                raise CnnzooError(
                    f"--{name} {x:g} is beyond 255; the values are on the 0..1 scale, e.g. "
                    "0.485 0.456 0.406"
                )


def progressive_size(epoch: int, epochs: int, start: int, full: int | list[int]) -> int | list[int]:
    """The training crop size of 0-based `epoch` under --progressive: its shorter side linear
    from `start` to the full size's over the run, in multiples of 8, the last epoch at `full`;
    a rectangle's other side in proportion (also a multiple of 8, at most the full one)."""
    if epochs <= 1 or epoch >= epochs - 1:
        return full
    h, w = size_hw(full)
    short = min(h, w)
    side = start + (short - start) * epoch / (epochs - 1)
    side = min(short, max(8, 8 * round(side / 8)))
    if h == w:
        return side
    return size_value([min(d, max(8, 8 * round(d * side / short / 8))) for d in (h, w)])


def progressive_aug(aug, cfg: TrainConfig, epoch: int):
    """The augmentation settings of 0-based `epoch`: with --progressive, their crop side
    follows `progressive_size`; otherwise `aug` itself."""
    if not cfg.progressive:
        return aug
    size = progressive_size(epoch, cfg.epochs, cfg.progressive, cfg.image_size)
    if size_hw(size) == size_hw(aug.image_size):
        return aug
    return dataclasses.replace(aug, image_size=size)


def validate_config(cfg: TrainConfig) -> None:
    """Raise a one-line CnnzooError for the first option that makes no sense."""
    if not (cfg.model and cfg.data):
        raise CnnzooError("--model and --data are required (or --resume RUN_DIR)")
    _check_types(cfg)
    if cfg.image_size is not None and not is_size(cfg.image_size, 8, MAX_IMAGE_SIZE):
        raise CnnzooError(
            f"--image-size takes one number (a square) or two, H W, each in [8, "
            f"{MAX_IMAGE_SIZE}] px (got {_shown(cfg.image_size)})"
        )
    _check_channel_values(cfg)
    # the shorter side: what pads, progressive starts and upscaling limits compare with
    size = None if cfg.image_size is None else min(size_hw(cfg.image_size))
    checks = [
        (cfg.epochs is None or cfg.epochs >= 1, f"--epochs must be at least 1 (got {cfg.epochs})"),
        (cfg.epochs is None or cfg.epochs <= 100_000, f"--epochs {cfg.epochs} is beyond reason"),
        (cfg.batch_size is None or cfg.batch_size >= 1, "--batch-size must be at least 1"),
        (cfg.lr is None or cfg.lr == "auto" or (not isinstance(cfg.lr, str) and cfg.lr > 0),
         f"--lr must be positive or auto (got {cfg.lr})"),
        (cfg.wd is None or cfg.wd >= 0, f"--wd must not be negative (got {cfg.wd})"),
        (cfg.opt in OPTIMIZERS, f"--opt must be one of {', '.join(OPTIMIZERS)}"),
        (cfg.sched in SCHEDULES, f"--sched must be one of {', '.join(SCHEDULES)}"),
        (cfg.augment is None or cfg.augment in AUGMENTS,
         f"--augment must be one of {', '.join(AUGMENTS)}"),
        (cfg.freeze in FREEZE, f"--freeze must be one of {', '.join(FREEZE)}"),
        (cfg.freeze == "none" or cfg.weights is not None or bool(cfg.pretrained),
         "--freeze backbone keeps a backbone that was never trained; give --pretrained or "
         "--weights FILE, or leave --freeze out"),
        (0.0 <= cfg.val_split < 1.0, f"--val-split must be in [0, 1) (got {cfg.val_split})"),
        (cfg.warmup_epochs is None or cfg.warmup_epochs >= 0, "--warmup-epochs must be >= 0"),
        (cfg.label_smoothing is None or 0 <= cfg.label_smoothing < 1,
         "--label-smoothing must be in [0, 1)"),
        (cfg.mixup >= 0 and cfg.cutmix >= 0, "--mixup and --cutmix must not be negative"),
        (cfg.clip_grad >= 0, "--clip-grad must not be negative"),
        (0 <= cfg.ema < 1, f"--ema must be a decay in [0, 1), e.g. 0.999 (got {cfg.ema})"),
        (cfg.backbone_lr_scale >= 0, "--backbone-lr-scale must not be negative"),
        (cfg.load_size is None or cfg.load_size >= 1, "--load-size must be positive"),
        (cfg.load_size is None or cfg.load_size <= MAX_IMAGE_SIZE,
         f"--load-size {cfg.load_size} is above {MAX_IMAGE_SIZE} px"),
        (cfg.crop_pad is None or cfg.crop_pad >= 0, "--crop-pad must not be negative"),
        (cfg.crop_pad is None or size is None or cfg.crop_pad <= size // 2,
         f"--crop-pad {cfg.crop_pad} is more than half the {size} px image; "
         f"{max(1, (size or 8) // 8)} px is the usual shift"),
        (0 < cfg.crop_scale <= 1, f"--crop-scale must be in (0, 1] (got {cfg.crop_scale})"),
        (cfg.progressive is None or 8 <= cfg.progressive,
         f"--progressive {cfg.progressive} is below 8 px; give the side the run starts at"),
        (cfg.progressive is None or size is None or cfg.progressive <= size,
         f"--progressive {cfg.progressive} is above --image-size {size}; it is where crops "
         "start, growing to --image-size"),
        (cfg.progressive is None or cfg.augment is None or cfg.augment in ("standard", "strong"),
         f"--progressive needs random-resized crops (--augment standard or strong), not "
         f"--augment {cfg.augment}"),
        (0 <= cfg.min_lr_ratio <= 1, "--min-lr-ratio must be in [0, 1]"),
        (0 <= cfg.momentum < 1, "--momentum must be in [0, 1)"),
        (not (cfg.pretrained and cfg.weights), "give --pretrained or --weights, not both"),
        (not (cfg.stats and (cfg.mean is not None or cfg.std is not None)),
         "--stats measures the mean and std; give it or --mean / --std, not both"),
        (cfg.accum_steps >= 1, f"--accum-steps must be at least 1 (got {cfg.accum_steps})"),
        (cfg.checkpoint_every >= 0, "--checkpoint-every must not be negative (0: per epoch)"),
        (cfg.skip_nonfinite >= 0, "--skip-nonfinite must not be negative"),
        (cfg.cache in ("auto", "memory", "disk"), "--cache must be auto, memory or disk"),
        (0 < cfg.cache_ram <= 1, f"--cache-ram must be a share in (0, 1] (got {cfg.cache_ram})"),
        (0 <= cfg.seed <= MAX_SEED, f"--seed must be in [0, 2**63 - 2] (got {cfg.seed})"),
        (cfg.precision is None or cfg.precision in TRAIN_PRECISIONS,
         f"--precision must be one of {', '.join(TRAIN_PRECISIONS)}"),
        (cfg.threads is None or cfg.threads >= 1, "--threads must be at least 1"),
        (cfg.log in ("none", "tensorboard", "mlflow"), "--log must be none, tensorboard or mlflow"),
        (cfg.keep in ("all", "best", "last"), "--keep must be all, best or last"),
        (cfg.patience >= 0, "--patience must not be negative"),
        (cfg.class_weights in CLASS_WEIGHTS, "--class-weights must be none or auto"),
        (cfg.sampler in SAMPLERS, "--sampler must be shuffle or balanced"),
        (cfg.freeze_epochs >= 0, "--freeze-epochs must not be negative"),
        (not (cfg.freeze_epochs and cfg.freeze == "backbone"),
         "--freeze-epochs unfreezes the backbone later; leave out --freeze backbone"),
        (cfg.epochs is None or cfg.freeze_epochs < cfg.epochs,
         "--freeze-epochs must be less than --epochs (the rest trains the whole network)"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise CnnzooError(message)
    # function-local for start-up time: the CLI builds its options from this module, and the
    # model factory imports torch (`cnnzoo models` and `--help` import none)
    from cnnzoo.models.factory import check_overrides

    check_overrides(cfg.model, cfg.model_opts)
    package = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny"}.get(cfg.log)
    if package and importlib.util.find_spec(cfg.log) is None:  # before any folder or data
        raise CnnzooError(
            f"--log {cfg.log} needs the {cfg.log} library; pip install {package} (or "
            "'cnnzoo[watch]'), or leave --log out"
        )
    if "stem" in cfg.model_opts:  # cheap, so before any data loads; the same check as the models
        from cnnzoo.models.base import check_stem  # local: torch, as above

        check_stem(cfg.model_opts["stem"])


# what a resumed run may change; every other option must be left out or equal the run's own
# (a lower lr after a divergence, how often to save, what to tolerate, where the cache is,
# how many threads)
RESUMABLE_CHANGES = (
    "epochs", "device", "data_dir", "lr", "checkpoint_every", "skip_nonfinite", "cache",
    "cache_dir", "cache_ram", "threads", "allow_data_change", "log", "keep",
)  # fmt: skip


def apply_resume_changes(
    saved: TrainConfig, changes: dict[str, Any], done_epochs: int
) -> TrainConfig:
    """`saved` with `changes` (TrainConfig field -> value) applied, as a resumed run may take
    them: only RESUMABLE_CHANGES may differ from the run's own settings; anything else is
    refused with one line naming the options, rather than silently ignored."""
    from cnnzoo.data.sources import canonical_source  # local: cnnzoo.data imports torch

    bad = []
    for key, value in changes.items():
        if key in RESUMABLE_CHANGES:
            continue
        own = getattr(saved, key, None)
        if key == "data" and canonical_source(value) == own:
            continue
        if value != own:
            bad.append("--" + key.replace("_", "-").replace("model-opts", "model-opt"))
    if bad:
        allowed = ", ".join("--" + k.replace("_", "-") for k in RESUMABLE_CHANGES)
        raise CnnzooError(
            f"--resume continues the run with its own settings; {', '.join(sorted(set(bad)))} "
            f"cannot change (only {allowed}); start a new run with --out to change them"
        )
    out = dataclasses.replace(saved, model_opts=dict(saved.model_opts))
    for key in RESUMABLE_CHANGES:
        if changes.get(key) is not None:
            setattr(out, key, changes[key])
    out.allow_data_change = bool(changes.get("allow_data_change"))  # for this resume only
    if out.epochs is not None and out.epochs < done_epochs:
        raise CnnzooError(f"--epochs {out.epochs} is less than the {done_epochs} done")
    return out


def changed_fields(cfg: TrainConfig) -> dict[str, Any]:
    """The fields of `cfg` that differ from TrainConfig's defaults (what a user asked for)."""
    default = TrainConfig()
    return {
        f.name: getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if getattr(cfg, f.name) != getattr(default, f.name)
    }
