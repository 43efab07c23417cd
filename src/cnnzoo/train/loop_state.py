"""Where a training loop stands: epochs and steps done, the position inside the epoch in
progress, its running sums, the best metric and the history. Saved (as JSON, in the state
file's header) with every checkpoint, so a run resumes mid-epoch at the very batch it left."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.errors import CnnzooError


@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken (skipped non-finite steps count: the schedule moves)
    batch: int = 0  # batches of the epoch in progress done; 0 at an epoch boundary
    seen: int = 0  # images of the epoch in progress counted in its metrics
    elapsed: float = 0.0  # seconds spent on the epoch in progress before this process
    skipped_nonfinite: int = 0  # steps skipped for a NaN/inf loss or gradient (--skip-nonfinite)
    best_val_acc: float = -math.inf
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_meta(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "seen": self.seen,
            "elapsed": self.elapsed,
            "skipped_nonfinite": self.skipped_nonfinite,
            "best_val_acc": self.best_val_acc if math.isfinite(self.best_val_acc) else None,
            "best_epoch": self.best_epoch,
            "history": self.history,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any], steps_per_epoch: int) -> LoopState:
        """The state a file recorded (files from before mid-epoch saves have no batch: 0),
        checked so that a damaged or edited file is refused rather than trained from."""
        try:
            best = meta.get("best_val_acc")
            state = cls(
                epoch=int(meta["epoch"]),
                step=int(meta["step"]),
                batch=int(meta.get("batch", 0)),
                seen=int(meta.get("seen", 0)),
                elapsed=float(meta.get("elapsed", 0.0)),
                skipped_nonfinite=int(meta.get("skipped_nonfinite", 0)),
                best_val_acc=-math.inf if best is None else float(best),
                best_epoch=int(meta.get("best_epoch", 0)),
                history=list(meta.get("history", [])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CnnzooError(f"the training state is incomplete or damaged ({e!r})") from None
        ok = (
            min(state.epoch, state.step, state.batch, state.seen, state.skipped_nonfinite) >= 0
            and state.batch <= steps_per_epoch
            and state.step >= state.batch
            and all(isinstance(row, dict) for row in state.history)
        )
        if not ok:
            raise CnnzooError(
                f"the training state holds impossible positions (epoch {state.epoch}, step "
                f"{state.step}, batch {state.batch} of {steps_per_epoch}); it is damaged"
            )
        return state
