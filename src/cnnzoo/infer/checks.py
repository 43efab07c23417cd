"""A model file checked as a whole when it is loaded, before it answers anything: its facts
consistent with its graph (class count = output width, input size = the graph's input, mean
finite, std finite and > 0), tensors of the dtype the model expects, the memory one image's
forward pass takes estimated before anything that size is allocated, and one probe forward on
a grey-and-noise image, normalised as predictions will be, whose logits must be finite.

Each failure is one CnnzooError line naming the file and what does not hold: a checkpoint with
NaN weights, a negative running variance or an absurd normalisation would otherwise answer
"nan%" with exit 0, and a server would start healthy and answer 500 to every request.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from cnnzoo.artifacts.sidecar import facts_problem
from cnnzoo.cfg import Size, size_hw, size_text
from cnnzoo.errors import CnnzooError
from cnnzoo.models.factory import create_model

# one image's forward pass may take at most this much memory (CNNZOO_MAX_FORWARD_MB to change)
MAX_FORWARD_BYTES = int(float(os.environ.get("CNNZOO_MAX_FORWARD_MB", 4096)) * 2**20)


def forward_bytes(name: str, num_classes: int, in_chans: int, size: Size, **opts: Any) -> int:
    """An upper bound of the activation memory of one image of `size` px (an int: a square;
    or (H, W)) through `name`: the
    sum of every layer's float32 output, measured on the meta device (shapes only, nothing
    allocated)."""
    total = 0

    def add(_m, _i, out) -> None:
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * 4

    with torch.device("meta"):
        model = create_model(name, num_classes=num_classes, in_chans=in_chans, **opts).eval()
    hooks = [m.register_forward_hook(add) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.empty(1, in_chans, *size_hw(size), device="meta"))
    except (RuntimeError, ValueError, TypeError):
        return 0  # the model cannot take this size: the probe says so
    finally:
        for h in hooks:
            h.remove()
    return total


def check_forward_memory(meta: dict[str, Any], where: str) -> None:
    """Refuse an input size whose forward pass would take more than MAX_FORWARD_BYTES."""
    size = meta["input_size"]
    need = forward_bytes(meta["model"], int(meta["num_classes"]), int(meta.get("in_chans", 3)),
                         size, **meta.get("model_overrides", {}))  # fmt: skip
    if need > MAX_FORWARD_BYTES:
        raise CnnzooError(
            f"{where}: input_size {size_text(size)} would take {need / 2**30:.1f} GB for one image's "
            f"forward pass, above the {MAX_FORWARD_BYTES / 2**30:.1f} GB limit "
            "(CNNZOO_MAX_FORWARD_MB); the file's facts are wrong or the size is too large"
        )


def check_tensor_dtypes(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Floating tensors where the model holds floating ones (weights, running statistics),
    integer ones where it counts: a cast would hide a damaged or foreign file."""
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for key, t in tensors.items():
        mine = own.get(key)
        if mine is None or not isinstance(t, torch.Tensor):
            continue
        if mine.is_floating_point() != t.is_floating_point() or t.dtype == torch.bool:
            raise CnnzooError(
                f"{where}: tensor {key} is {str(t.dtype).removeprefix('torch.')} where the "
                f"model holds {str(mine.dtype).removeprefix('torch.')}; the file is damaged or "
                "was not written for this model"
            )


def probe_input(meta: dict[str, Any], batch: int = 1) -> torch.Tensor:
    """A grey image with a little noise, normalised by the file's mean and std."""
    chans, size = int(meta.get("in_chans", 3)), size_hw(meta["input_size"])
    g = torch.Generator().manual_seed(0)
    pixels = 0.5 + 0.1 * torch.randn(batch, chans, *size, generator=g)
    mean = torch.tensor(meta["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return (pixels - mean) / std


def check_probe(model: nn.Module, meta: dict[str, Any], where: str, batch: int = 1) -> None:
    """One forward pass of `probe_input`: logits of shape [batch, len(classes)], all finite."""
    x = probe_input(meta, batch)
    if not torch.isfinite(x).all():
        raise CnnzooError(f"{where}: mean / std give non-finite inputs; the file is damaged")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            out = model(x.to(device))
    except (RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise CnnzooError(f"{where}: the model does not run on its own input ({first})") from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    n = len(meta["classes"])
    if out.ndim != 2 or out.shape[1] != n:
        raise CnnzooError(
            f"{where}: the model gives {tuple(out.shape)} outputs for {n} class names; the "
            "file's class list does not match its graph"
        )
    if not torch.isfinite(out).all():
        raise CnnzooError(
            f"{where}: the model's outputs are NaN or infinite (NaN / inf weights, a negative "
            "running variance or an absurd normalisation); the file is damaged"
        )


def check_exported(model: nn.Module, meta: dict[str, Any], where: str) -> None:
    """An exported file's metadata as a whole, then the probe (batch = the graph's)."""
    problem = facts_problem(meta)
    if problem:
        raise CnnzooError(f"{where}: its cnnzoo metadata does not hold: {problem}")
    shape = getattr(model, "input_shape", None)
    if shape and all(isinstance(d, int) for d in shape[1:]):
        want = [int(meta.get("in_chans", 3)), *size_hw(meta["input_size"])]
        if list(shape[1:]) != want:
            raise CnnzooError(
                f"{where}: its graph takes {list(shape[1:])} but its metadata says {want}; "
                "export it again"
            )
    check_probe(model, meta, where, batch=getattr(model, "fixed_batch", None) or 1)
