"""Checks made before any training step: can this data train a classifier, can this model
take this input, and which files were left out (written to the run folder, all of them).

Each check raises a one-line CnnzooError saying what is wrong and what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..data.types import DataBundle
from ..errors import CnnzooError
from .config import TrainConfig

log = logging.getLogger("cnnzoo")

SKIPPED_FILE = "skipped.tsv"
# A training input more than this many times the side the images are stored at is refused:
# it only blows up memory and compute with interpolated pixels.
MAX_UPSCALE = 4


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
    counts = torch.bincount(bundle.train.labels, minlength=n).tolist()
    empty = [c for c, k in zip(bundle.classes, counts, strict=True) if k == 0]
    if empty:
        raise CnnzooError(
            f"class {empty[0]!r} of {bundle.name} has no training image; add images or "
            "remove the class"
        )
    if len(bundle.val):
        val_counts = torch.bincount(bundle.val.labels, minlength=n).tolist()
        none = [c for c, k in zip(bundle.classes, val_counts, strict=True) if k == 0]
        if none:
            raise CnnzooError(
                f"class {none[0]!r} has no {bundle.val_name} image, so its accuracy cannot be "
                "measured; add images to it (or raise --val-split)"
            )
    if cfg.image_size is not None and cfg.image_size > MAX_UPSCALE * bundle.image_size:
        raise CnnzooError(
            f"--image-size {cfg.image_size} is more than {MAX_UPSCALE}x the {bundle.image_size} "
            "px the images are stored at; store them larger with --load-size (folders) or "
            "train at a smaller --image-size"
        )


def _runs_at(model: torch.nn.Module, in_chans: int, size: int) -> bool:
    try:
        model(torch.empty(2, in_chans, size, size, device="meta"))
    except RuntimeError:
        return False
    return True


def check_model_input(cfg: TrainConfig, in_chans: int, num_classes: int) -> None:
    """Refuse an input size the model cannot take (inception_v3 at 32 px), naming the
    smallest one that works. Runs on the meta device: shapes only, no memory, no arithmetic."""
    from ..registry import create_model

    size = int(cfg.image_size)
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
    native = int(model.cfg.input_size)
    lo, hi = size, max(native, size + 1)
    if not _runs_at(model, in_chans, hi):
        raise CnnzooError(f"{cfg.model} does not run at {size} px (nor at {hi} px)")
    while hi - lo > 1:  # lo fails, hi runs
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
    from ..data.images import shown
    from .checkpoint import write_text

    path = Path(run_dir) / SKIPPED_FILE
    lines = [f"{shown(f)}\t{why}" for f, why in skipped]
    write_text(path, "file\treason\n" + "\n".join(lines) + "\n")
    log.warning("all %d files left out of the data are listed in %s", len(skipped), path)
    return path
