"""Scoring held-out images during training: the validation split after every epoch (loss,
top-1, top-5; it picks the best checkpoint), and a folder's test split once, at the end, with
the best checkpoint's weights (never used to pick anything). Under DDP each rank scores a
contiguous share and the sums are added, so every rank gets the whole split's numbers."""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cnnzoo.artifacts.sidecar import BEST_FILE, LAST_FILE, save_checkpoint
from cnnzoo.artifacts.tensors import read_tensors
from cnnzoo.data.types import ImageTensors
from cnnzoo.infer.evaluate import Preprocess, compute_logits, score
from cnnzoo.train.distributed import Dist
from cnnzoo.train.records import write_metrics

if TYPE_CHECKING:  # annotations only: the trainer imports this module
    from cnnzoo.train.trainer import Trainer

log = logging.getLogger("cnnzoo")


def validate(
    model: nn.Module,
    val: ImageTensors,
    preprocess: Preprocess,
    dist: Dist,
    batch_size: int,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
) -> dict[str, float]:
    """{"loss", "acc", "top5"} on `val` ({} when the split is empty)."""
    if len(val) == 0:
        return {}
    images, labels = val.images, val.labels
    world, rank = dist.world, dist.rank
    if world > 1:
        lo, hi = rank * len(val) // world, (rank + 1) * len(val) // world
        images, labels = images[lo:hi], labels[lo:hi]
    logits = compute_logits(model, images, preprocess, batch_size, amp_dtype, channels_last)
    if world == 1:
        s = score(logits, labels)
        return {"loss": s.loss, "acc": s.top1, "top5": s.top5}
    m = int(labels.shape[0])
    s = score(logits, labels) if m else None
    part = [0.0, 0.0, 0.0, 0.0]
    if s is not None:
        part = [s.loss * m, round(s.top1 * m / 100), round(s.top5 * m / 100), float(m)]
    sums = dist.sum_(torch.tensor(part, dtype=torch.float64)).tolist()
    n = sums[3]
    return {"loss": sums[0] / n, "acc": 100.0 * sums[1] / n, "top5": 100.0 * sums[2] / n}


def score_test(trainer: Trainer) -> dict[str, Any] | None:
    """At the end of a run, score the test split (a folder's test/) once with the weights of
    the checkpoint the validation split picked (best, or last when best is not kept), and
    record the result in that checkpoint's sidecar, the last row of the metrics and the log.
    None when the data has no test split. Every rank takes part (the scoring is shared)."""
    setup = trainer.setup
    test = setup.bundle.test
    if test is None or len(test) == 0 or not trainer.loop.history:
        return None
    path = setup.run_dir / BEST_FILE
    if not path.is_file():
        path = setup.run_dir / LAST_FILE
    tensors, info = read_tensors(path)
    model = copy.deepcopy(setup.model)  # the trained model stays as the last step left it
    model.load_state_dict(tensors)
    cfg = trainer.cfg
    v = validate(
        model, test, setup.preprocess, trainer.dist, max(256, 2 * cfg.batch_size),
        trainer.amp_dtype, cfg.channels_last,
    )  # fmt: skip
    result = {
        "test_loss": v["loss"],
        "test_acc": v["acc"],
        "test_top5": v["top5"],
        "test_images": len(test),
        "test_epoch": int(info.get("epoch", trainer.loop.best_epoch)),
        "test_checkpoint": path.name,
    }
    if trainer.dist.is_main:
        info["test"] = result
        save_checkpoint(path, model, {key: x for key, x in info.items() if key != "format"})
        trainer.loop.history[-1].update(result)
        write_metrics(setup.run_dir, trainer.loop.history)
    log.info(
        "test: loss %.4f acc %.2f%% top5 %.2f%% on %d images, with %s (epoch %d); scored "
        "once, never used to pick a checkpoint",
        v["loss"], v["acc"], v["top5"], len(test), path.name, result["test_epoch"],
    )  # fmt: skip
    return result
