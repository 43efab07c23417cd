"""Noticing a run that diverged and saying so: which tensors became NaN/inf, and the one-line
error with the step, the lr, what is kept on disk and how to go on."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnzoo.errors import CnnzooError


class DivergedError(CnnzooError):
    """The loss, gradients, weights or BatchNorm statistics became NaN or infinite."""


def nonfinite_problem(model: nn.Module, ema: nn.Module | None = None) -> str | None:
    """What became NaN/inf among the weights, EMA weights and BatchNorm statistics, or None
    (one fused check first: the names are looked for only when something is wrong)."""
    named = list(model.state_dict().items())
    if ema is not None:
        named += [(f"ema {k}", v) for k, v in ema.state_dict().items()]
    floats = [(k, v) for k, v in named if v.is_floating_point()]
    if not floats or torch.stack([torch.isfinite(v).all() for _, v in floats]).all():
        return None
    bad = [k for k, v in floats if not torch.isfinite(v).all()]
    stats = [k for k in bad if k.endswith(("running_mean", "running_var"))]
    what = "BatchNorm running statistics" if len(stats) == len(bad) else "weights"
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    return f"the {what} became NaN/inf ({shown})"


def diverged(
    what: str,
    *,
    step: int,
    epoch: int,
    lr: float,
    peak_lr: float,
    saved_step: int | None,
    run_dir: Path,
    at_step: int | None = None,
) -> DivergedError:
    """The error for a run that diverged: what went wrong, at which step (the failing one,
    1-based; or by the last one done), with which lr, what is kept and how to go on."""
    where = f"at step {at_step}" if at_step is not None else f"by step {step}"
    if saved_step is not None:
        then = (
            f"the last good state (step {saved_step}) is kept in {run_dir}; resume with a "
            f"lower lr (cnnzoo train --resume {run_dir} --lr {peak_lr / 10:g})"
        )
    else:
        then = f"nothing was saved; start again with a lower lr (--lr {peak_lr / 10:g})"
    more = " or tolerate a few bad steps with --skip-nonfinite N" if at_step else ""
    return DivergedError(
        f"training diverged {where} (epoch {epoch + 1}, lr {lr:.4g}): {what}; {then}, "
        f"or add --clip-grad 1.0{more}"
    )
