"""Training options (`TrainConfig`) and the default recipe each dataset size gets.

Every option left at None is filled by `resolve_config` from a recipe chosen by the data:

| recipe     | when                          | optimiser        | lr    | wd    | epochs | augment  |
| ---------- | ----------------------------- | ---------------- | ----- | ----- | ------ | -------- |
| digits     | `--data digits`               | SGD Nesterov 0.9 | 0.05  | 5e-4  | 10     | none     |
| small      | images up to 64 px (CIFAR)    | SGD Nesterov 0.9 | 0.1   | 5e-4  | 30     | light    |
| large      | bigger images (Imagenette)    | SGD Nesterov 0.9 | 0.05  | 5e-5  | 40     | standard |
| finetune   | `--weights` given             | SGD Nesterov 0.9 | 0.01  | 1e-4  | 10     | by size  |

All recipes: cosine schedule after a linear warm-up (1 epoch; 2 for large, 0.5 for digits),
batch 128 (64 for large and finetune, 32 for digits); label smoothing 0.1 for large and finetune; no EMA, mixup or cutmix unless asked.
AdamW (`--opt adamw`) defaults to lr 1e-3 and wd 0.05 instead.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import CnnzooError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "onecycle", "constant")
AUGMENTS = ("none", "shift", "light", "standard", "strong")
FREEZE = ("none", "backbone")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved with every checkpoint as its recipe."""

    model: str
    data: str
    data_dir: str | None = None
    download: bool = False  # fetch cifar10 / cifar100 / imagenette when not in data_dir
    out: str | None = None  # run folder; default runs/<model>-<data>-<timestamp>
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    wd: float | None = None
    opt: str = "sgd"
    momentum: float = 0.9
    sched: str = "cosine"
    warmup_epochs: float | None = None
    min_lr_ratio: float = 0.0  # final lr as a fraction of the peak
    label_smoothing: float | None = None
    mixup: float = 0.0  # Beta(a, a) parameter; 0 disables
    cutmix: float = 0.0
    clip_grad: float = 0.0  # max global grad norm; 0 disables
    ema: float = 0.0  # decay of the weight average; 0 disables
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    val_split: float = 0.1
    image_size: int | None = None  # side of the training input (the data's own by default)
    load_size: int | None = None  # side images are stored at when loaded (data layer default)
    augment: str | None = None
    hflip: bool | None = None
    crop_pad: int | None = None  # pad-crop shift in pixels (image_size // 8 by default)
    model_opts: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    freeze: str = "none"
    backbone_lr_scale: float = 1.0
    recipe: str | None = None  # name of the recipe that filled the defaults

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


RECIPES: dict[str, dict[str, Any]] = {
    # 8 px digits: a 1-pixel shift is already an eighth of the image and slows learning more
    # than it helps; 50 steps per epoch reach ~99% in 5-10 epochs (seeds 0-3: 98.3-99.4%)
    "digits": dict(epochs=10, batch_size=32, lr=0.05, wd=5e-4, warmup_epochs=0.5,
                   label_smoothing=0.0, augment="none", hflip=False),
    "small": dict(epochs=30, batch_size=128, lr=0.1, wd=5e-4, warmup_epochs=1, label_smoothing=0.0,
                  augment="light"),
    "large": dict(epochs=40, batch_size=64, lr=0.05, wd=5e-5, warmup_epochs=2, label_smoothing=0.1,
                  augment="standard"),
    "finetune": dict(epochs=10, batch_size=64, lr=0.01, wd=1e-4, warmup_epochs=1,
                     label_smoothing=0.1),
}  # fmt: skip


def data_recipe(data: str, data_image_size: int) -> str:
    """The from-scratch recipe for this data: digits, small (<= 64 px) or large."""
    if data == "digits":
        return "digits"
    return "small" if data_image_size <= 64 else "large"


def pick_recipe(cfg: TrainConfig, data_image_size: int) -> str:
    return "finetune" if cfg.weights else data_recipe(cfg.data, data_image_size)


def resolve_config(cfg: TrainConfig, data_image_size: int) -> TrainConfig:
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
    for key, value in recipe.items():
        if getattr(out, key) is None:
            setattr(out, key, value)
    if out.hflip is None:  # flips come with the cropping presets; --hflip adds them to any
        out.hflip = out.augment not in ("none", "shift")
    if out.image_size is None:
        out.image_size = data_image_size
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


def validate_config(cfg: TrainConfig) -> None:
    """Raise a one-line CnnzooError for the first option that makes no sense."""
    _check_types(cfg)
    size = cfg.image_size
    checks = [
        (cfg.epochs is None or cfg.epochs >= 1, f"--epochs must be at least 1 (got {cfg.epochs})"),
        (cfg.epochs is None or cfg.epochs <= 100_000, f"--epochs {cfg.epochs} is beyond reason"),
        (cfg.batch_size is None or cfg.batch_size >= 1, "--batch-size must be at least 1"),
        (cfg.lr is None or cfg.lr > 0, f"--lr must be positive (got {cfg.lr})"),
        (cfg.wd is None or cfg.wd >= 0, f"--wd must not be negative (got {cfg.wd})"),
        (cfg.opt in OPTIMIZERS, f"--opt must be one of {', '.join(OPTIMIZERS)}"),
        (cfg.sched in SCHEDULES, f"--sched must be one of {', '.join(SCHEDULES)}"),
        (cfg.augment is None or cfg.augment in AUGMENTS,
         f"--augment must be one of {', '.join(AUGMENTS)}"),
        (cfg.freeze in FREEZE, f"--freeze must be one of {', '.join(FREEZE)}"),
        (cfg.freeze == "none" or cfg.weights is not None,
         "--freeze backbone keeps a backbone that was never trained; give --weights FILE "
         "(pretrained weights) or leave --freeze out"),
        (0.0 <= cfg.val_split < 1.0, f"--val-split must be in [0, 1) (got {cfg.val_split})"),
        (cfg.warmup_epochs is None or cfg.warmup_epochs >= 0, "--warmup-epochs must be >= 0"),
        (cfg.label_smoothing is None or 0 <= cfg.label_smoothing < 1,
         "--label-smoothing must be in [0, 1)"),
        (cfg.mixup >= 0 and cfg.cutmix >= 0, "--mixup and --cutmix must not be negative"),
        (cfg.clip_grad >= 0, "--clip-grad must not be negative"),
        (0 <= cfg.ema < 1, f"--ema must be a decay in [0, 1), e.g. 0.999 (got {cfg.ema})"),
        (cfg.backbone_lr_scale >= 0, "--backbone-lr-scale must not be negative"),
        (size is None or size >= 8,
         f"--image-size must be at least 8 px (got {size}); smaller inputs hold no picture"),
        (size is None or size <= MAX_IMAGE_SIZE,
         f"--image-size {size} is above the {MAX_IMAGE_SIZE} px any model here is built for"),
        (cfg.load_size is None or cfg.load_size >= 1, "--load-size must be positive"),
        (cfg.load_size is None or cfg.load_size <= MAX_IMAGE_SIZE,
         f"--load-size {cfg.load_size} is above {MAX_IMAGE_SIZE} px"),
        (cfg.crop_pad is None or cfg.crop_pad >= 0, "--crop-pad must not be negative"),
        (cfg.crop_pad is None or size is None or cfg.crop_pad <= size // 2,
         f"--crop-pad {cfg.crop_pad} is more than half the {size} px image; "
         f"{max(1, (size or 8) // 8)} px is the usual shift"),
        (0 <= cfg.min_lr_ratio <= 1, "--min-lr-ratio must be in [0, 1]"),
        (0 <= cfg.momentum < 1, "--momentum must be in [0, 1)"),
        (0 <= cfg.seed <= MAX_SEED, f"--seed must be in [0, 2**63 - 2] (got {cfg.seed})"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise CnnzooError(message)
    from ..registry import check_overrides

    check_overrides(cfg.model, cfg.model_opts)
