"""Early stopping (`--patience N`): the run ends when the validation accuracy has not improved
for N epochs; the best checkpoint is already on disk."""

from __future__ import annotations

from typing import Any


def patience_reason(history: list[dict[str, Any]], best_epoch: int, patience: int) -> str | None:
    """Why to stop now, or None to go on. Without a validation split nothing is measured, so
    nothing stops."""
    if patience <= 0 or not history or history[-1].get("val_acc") is None:
        return None
    last = int(history[-1]["epoch"])
    waited = last - best_epoch
    if waited < patience:
        return None
    best = history[best_epoch - 1].get("best_val_acc") if best_epoch >= 1 else None
    best_text = f"{best:.2f}%" if isinstance(best, float) else "its best"
    return (
        f"no val accuracy gain for {waited} epoch(s) (--patience {patience}); the best, "
        f"{best_text} at epoch {best_epoch}, is in best.safetensors"
    )
