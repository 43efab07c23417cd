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
    # the schedule in force when a finished run was trained longer (`optim.restart_schedule`):
    # {"start_epoch", "start_step", "warmup_epochs"}; None: the run's one schedule from step 0
    segment: dict[str, Any] | None = None

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
            "schedule_segment": self.segment,
        }

    def end_epoch(self, row: dict[str, Any], metric: float, validated: bool) -> None:
        """Count the epoch `row` describes as done: reset the position inside an epoch, keep
        the best metric (with no validation split the last epoch is the best one) and append
        the row, marked with `is_best`, the best so far and the steps skipped so far."""
        self.epoch += 1
        self.batch, self.seen, self.elapsed = 0, 0, 0.0
        row["is_best"] = metric > self.best_val_acc or not validated
        if row["is_best"]:
            self.best_val_acc, self.best_epoch = metric, self.epoch
        row["best_val_acc"] = self.best_val_acc if math.isfinite(self.best_val_acc) else None
        if self.skipped_nonfinite:
            row["skipped_nonfinite"] = self.skipped_nonfinite
        self.history.append(row)

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
                segment=_segment(meta.get("schedule_segment")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CnnzooError(f"the training state is incomplete or damaged ({e!r})") from None
        ok = (
            min(state.epoch, state.step, state.batch, state.seen, state.skipped_nonfinite) >= 0
            and state.batch <= steps_per_epoch
            and state.step >= state.batch
            and all(isinstance(row, dict) for row in state.history)
            and (state.segment is None or state.segment["start_step"] <= state.step)
        )
        if not ok:
            raise CnnzooError(
                f"the training state holds impossible positions (epoch {state.epoch}, step "
                f"{state.step}, batch {state.batch} of {steps_per_epoch}); it is damaged"
            )
        return state


def _segment(raw: Any) -> dict[str, Any] | None:
    """A saved schedule segment, its values checked (TypeError / ValueError when damaged)."""
    if raw is None:
        return None
    seg = {
        "start_epoch": int(raw["start_epoch"]),
        "start_step": int(raw["start_step"]),
        "warmup_epochs": float(raw["warmup_epochs"]),
    }
    if min(seg.values()) < 0 or not math.isfinite(seg["warmup_epochs"]):
        raise ValueError(f"schedule segment {raw!r}")
    return seg
