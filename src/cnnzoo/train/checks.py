"""Checks made before any training step: can this data train a classifier, can this model
take this input, and which files were left out (written to the run folder, all of them).

Each check raises a one-line CnnzooError saying what is wrong and what to do.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from cnnzoo.artifacts.files import write_text
from cnnzoo.artifacts.sidecar import SKIPPED_FILE
from cnnzoo.cfg import size_hw, size_text
from cnnzoo.data.images import shown
from cnnzoo.data.types import DataBundle
from cnnzoo.errors import CnnzooError
from cnnzoo.models.factory import create_model, get_model_cfg
from cnnzoo.train.config import TrainConfig, validate_config

log = logging.getLogger("cnnzoo")

# A training input more than this many times the side the images are stored at is refused:
# it only blows up memory and compute with interpolated pixels.
MAX_UPSCALE = 4


def before_training(cfg: TrainConfig, bundle: DataBundle, run_dir: Path) -> None:
    """All checks between loading the data and the first step (cfg resolved): the data can
    train a classifier, the model takes the input size; then the files left out of the data
    are listed in the run folder."""
    check_data(cfg, bundle)
    check_model_input(cfg, int(bundle.train.images.shape[1]), len(bundle.classes))
    write_skipped(run_dir, bundle.skipped)


def check_given_batch(batch_size: int | None, bundle: DataBundle) -> None:
    """Refuse a --batch-size the user gave that is larger than the training data: every
    epoch would be one step over all of it. Only a value given for a new run (before the
    recipe fills it in): the recipe's default is cut to the data, so tiny folders still
    train, and a resumed run keeps the batch it started with."""
    n = len(bundle.train)
    if batch_size is not None and batch_size > n:
        raise CnnzooError(
            f"--batch-size {batch_size} is larger than the {n} training images of "
            f"{bundle.name}: each epoch would be one step; choose at most {n}, or leave it "
            "out (the recipe's batch is cut to the data)"
        )


def check_data(cfg: TrainConfig, bundle: DataBundle) -> None:
    """Refuse data that cannot train a classifier: one class, a class with no training or
    no validation image, an input far larger than the images stored."""
    n = len(bundle.classes)
    if n < 2:
        only = f" ({bundle.classes[0]!r})" if bundle.classes else ""
        raise CnnzooError(
            f"{bundle.name} holds one class{only}: a classifier needs at least two "
            "(add a folder per class)"
        )
    empty = first_class_without(bundle.train.labels, bundle.classes)
    if empty is not None:
        raise CnnzooError(
            f"class {empty!r} of {bundle.name} has no training image; add images or "
            "remove the class"
        )
    none = first_class_without(bundle.val.labels, bundle.classes) if len(bundle.val) else None
    if none is not None:
        raise CnnzooError(
            f"class {none!r} has no {bundle.val_name} image, so its accuracy cannot be "
            "measured; add images to it (or raise --val-split)"
        )
    stored = size_hw(bundle.image_size)
    if cfg.image_size is not None and any(
        want > MAX_UPSCALE * have
        for want, have in zip(size_hw(cfg.image_size), stored, strict=True)
    ):
        raise CnnzooError(
            f"--image-size {size_text(cfg.image_size)} is more than {MAX_UPSCALE}x the "
            f"{size_text(bundle.image_size)} px the images are stored at; store them larger with --load-size (folders) or "
            "train at a smaller --image-size"
        )


def _runs_at(model: torch.nn.Module, in_chans: int, size: int | tuple[int, int]) -> bool:
    try:
        model(torch.empty(2, in_chans, *size_hw(size), device="meta"))
    except RuntimeError:
        return False
    return True


def check_model_input(cfg: TrainConfig, in_chans: int, num_classes: int) -> None:
    """Refuse an input size the model cannot take (inception_v3 at 32 px), naming about the
    smallest one that works. Runs on the meta device: shapes only, no memory, no arithmetic;
    only below the model's native size, where such a failure is possible."""

    # the shorter side is what can be too small: a rectangle runs where its square does
    size = min(size_hw(cfg.image_size))
    native = min(size_hw(get_model_cfg(cfg.model).input_size))
    if size >= native:
        return
    with torch.device("meta"):
        model = create_model(
            cfg.model, num_classes=num_classes, in_chans=in_chans, **cfg.model_opts
        )
    model.train()  # training mode: auxiliary heads (Inception) take part
    try:
        if _runs_at(model, in_chans, size):
            return
    except (TypeError, ValueError) as e:  # an option value the layers trip over
        raise CnnzooError(f"{cfg.model} cannot run with these options: {e}") from None
    lo, hi = size, native  # lo fails, hi runs (the native size always does)
    while hi - lo > 8:  # to within 8 px: each try costs a forward pass of Python overhead
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _runs_at(model, in_chans, mid) else (mid, hi)
    raise CnnzooError(
        f"{cfg.model} needs inputs of at least {hi} px; --image-size {size} is too small "
        f"(its native size is {native} px; store images larger with --load-size if needed)"
    )


def write_skipped(run_dir: Path, skipped: list[tuple[str, str]]) -> Path | None:
    """All the files left out of the data, one `path<TAB>reason` per line, in the run folder."""
    if not skipped:
        return None

    path = Path(run_dir) / SKIPPED_FILE
    lines = [f"{shown(f)}\t{why}" for f, why in skipped]
    write_text(path, "file\treason\n" + "\n".join(lines) + "\n")
    log.warning("all %d files left out of the data are listed in %s", len(skipped), path)
    return path


def _count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _numbers(v: object) -> bool:
    return isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v
    )


def check_state(meta: dict, path: Path) -> None:
    """Refuse a resumable state whose JSON was tampered with or torn: every value the trainer
    takes from it is checked for its type and range first."""
    cfg = meta.get("config")
    best = meta.get("best_val_acc")
    checks = [
        (isinstance(cfg, dict) and isinstance(cfg.get("model"), str)
         and isinstance(cfg.get("data"), str), "config has no model and data"),
        (_count(meta.get("epoch")), f"epoch {meta.get('epoch')!r:.40} is not a count"),
        (_count(meta.get("step")), f"step {meta.get('step')!r:.40} is not a count"),
        (_count(meta.get("best_epoch", 0)), "best_epoch is not a count"),
        (best is None or _numbers([best]), f"best_val_acc {best!r:.40} is not a number"),
        (isinstance(meta.get("history", []), list), "history is not a list"),
        (isinstance(meta.get("optimizer"), dict)
         and isinstance(meta["optimizer"].get("param_groups"), list),
         "optimizer state is missing"),
        (_numbers(meta.get("mean", [])) and _numbers(meta.get("std", []))
         and all(x > 0 for x in meta.get("std", [])), "mean / std are not finite (std > 0)"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise CnnzooError(
                f"{path}: {message}; the state file is damaged or was edited, so the run "
                "cannot resume from it (start again, or restore the file)"
            )

    try:
        validate_config(TrainConfig.from_dict(cfg))
    except CnnzooError as e:
        raise CnnzooError(f"{path}: its config does not hold: {e}") from None


def first_class_without(labels: torch.Tensor, classes: list[str]) -> str | None:
    """The first class with no image among `labels`, or None."""
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    return next((c for c, k in zip(classes, counts, strict=True) if k == 0), None)


# a loss at or above this share of ln(classes), a quarter into the run, is worth a warning
CHANCE_LOSS, CHANCE_CHECK = 0.97, 0.25


def chance_warning(row: dict, classes: int, epochs_done: int, epochs: int) -> str | None:
    """The warning for a run whose loss, a quarter of the way in, is still that of uniform
    guessing (ln of the class count): the lr, schedule or data need a look. None otherwise."""
    if classes < 2 or epochs_done < CHANCE_CHECK * epochs:
        return None
    loss = row.get("val_loss", row["train_loss"])
    if loss < CHANCE_LOSS * math.log(classes):
        return None
    which = "validation" if "val_loss" in row else "training"
    return (
        f"after {epochs_done} of {epochs} epochs the {which} loss is {loss:.3f}, chance level "
        f"(ln {classes} = {math.log(classes):.3f}): the model has learnt nothing yet; check "
        "the data and labels, or try another --lr"
    )
