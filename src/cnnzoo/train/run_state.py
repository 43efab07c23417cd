"""A run's resumable state as tensors + JSON, the content of `state.safetensors`: the model,
optimiser, EMA, the data-order generator (as it was at the epoch's start, so the epoch's
permutation is redrawn), every rank's augmentation / dropout RNG streams and running sums, the
grad scaler and the loop's position and history. `gather` and `restore` round-trip all of it,
which is what makes a resumed run bit-identical to one that never stopped."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from cnnzoo.artifacts.sidecar import STATE_FILE
from cnnzoo.artifacts.tensors import prefixed, unprefixed
from cnnzoo.errors import CnnzooError
from cnnzoo.train.loop_state import LoopState
from cnnzoo.train.state import load_optimizer, optimizer_tensors

if TYPE_CHECKING:  # annotations only: the trainer imports this module
    from cnnzoo.train.trainer import Trainer

log = logging.getLogger("cnnzoo")


def per_rank_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """What differs between ranks: their augmentation / dropout RNGs and their share of the
    epoch's running sums."""
    out = {
        "rng/aug": trainer.aug_gen.get_state(),
        "rng/torch": torch.get_rng_state(),
        "epoch/loss_sum": trainer.loss_sum.reshape(1),
        "epoch/correct": trainer.correct.reshape(1),
    }
    if trainer.setup.device.type == "cuda":
        out["rng/cuda"] = torch.cuda.get_rng_state(trainer.setup.device)
    return out


def rank_key(key: str, rank: int) -> str:
    return key if rank == 0 else f"rank{rank}/{key}"


def gather(trainer: Trainer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The whole resumable state (every rank's share gathered; a collective under DDP)."""
    setup, dist = trainer.setup, trainer.dist
    opt_t, opt_meta = optimizer_tensors(trainer.optimizer)
    mid_epoch = trainer.loop.batch > 0
    tensors = {
        **prefixed("model", setup.model.state_dict()),
        **prefixed("optim", opt_t),
        # the epoch in progress is redrawn from the generator state at its start
        "rng/data": trainer.order_state if mid_epoch else trainer.gen.get_state(),
    }
    for key, t in per_rank_tensors(trainer).items():
        for rank, value in enumerate(dist.gather(t)):
            tensors[rank_key(key, rank)] = value
    if trainer.ema is not None:
        tensors.update(prefixed("ema", trainer.ema.state_dict()))
    scaler = trainer.scaler
    meta = {
        "config": trainer.cfg.to_dict(),
        **trainer.loop.to_meta(),
        "world_size": dist.world,
        "mean": list(setup.mean),
        "std": list(setup.std),
        "optimizer": opt_meta,
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
    }
    return tensors, meta


def restore(trainer: Trainer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Put a saved state back into a freshly built trainer of the same run; a state that does
    not fit (damaged, or another run's) is one line naming the file."""
    try:
        _restore(trainer, tensors, meta)
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CnnzooError(
            f"{trainer.setup.run_dir / STATE_FILE} does not fit this run ({first}); "
            "the file is damaged or belongs to another run"
        ) from None


def _restore(trainer: Trainer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    setup, device = trainer.setup, trainer.setup.device
    trainer.loop = LoopState.from_meta(meta, trainer.steps_per_epoch)
    setup.model.load_state_dict(unprefixed("model", tensors))
    load_optimizer(trainer.optimizer, unprefixed("optim", tensors), meta["optimizer"])
    if trainer.ema is not None:
        trainer.ema.load_state_dict(unprefixed("ema", tensors))
    trainer.gen.set_state(tensors["rng/data"])
    trainer.order_state = trainer.gen.get_state()
    rank = trainer.dist.rank
    mine = {k: tensors.get(rank_key(k, rank)) for k in per_rank_tensors(trainer)}
    if mine["rng/torch"] is None:
        log.warning(
            "the saved state has no RNG streams for rank %d (it ran on %s process(es)): "
            "augmentation continues from fresh seeds, not bit-exactly",
            rank,
            meta.get("world_size", 1),
        )
    else:
        if mine["rng/aug"].numel() == trainer.aug_gen.get_state().numel():  # same device kind
            trainer.aug_gen.set_state(mine["rng/aug"])
        torch.set_rng_state(mine["rng/torch"])
        if device.type == "cuda" and mine.get("rng/cuda") is not None:
            torch.cuda.set_rng_state(mine["rng/cuda"], device)
        if trainer.loop.batch > 0:
            trainer.loss_sum.copy_(mine["epoch/loss_sum"].reshape(()))
            trainer.correct.copy_(mine["epoch/correct"].reshape(()))
    if meta.get("scaler") and trainer.scaler.is_enabled():
        trainer.scaler.load_state_dict(meta["scaler"])
    trainer.saved_step = trainer.loop.step
