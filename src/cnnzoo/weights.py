"""Loading a torchvision, timm or cnnzoo state dict into a model: legacy key names, another
classifier size, input convolutions adapted to other channel counts."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from cnnzoo.artifacts.sidecar import checkpoint_facts, resolve_checkpoint
from cnnzoo.artifacts.statedict import read_state_dict
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

_LEGACY_DENSENET = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def _rename_legacy_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's DenseNet files predate its module names: `denselayer1.norm.1.weight` is
    today's `denselayer1.norm1.weight` (torchvision renames them the same way when loading)."""
    return {_LEGACY_DENSENET.sub(r"\1\2.", k): v for k, v in sd.items()}


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """First-convolution weights [out, 3, kh, kw] made for `in_chans` input channels.

    One channel: the RGB filters summed, so a grey image gives exactly what the RGB model gives
    for that image repeated on all three channels. More: the RGB filters repeated over the
    channels and scaled by 3 / in_chans, so activations keep the scale the next layers expect.
    """
    w = weight.float()
    if in_chans == 1:
        w = w.sum(1, keepdim=True)
    else:
        w = w.repeat(1, -(-in_chans // 3), 1, 1)[:, :in_chans] * (3 / in_chans)
    return w.to(weight.dtype)


def _adapt_input_convs(
    sd: dict[str, torch.Tensor], own: dict[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Adapt the convolutions that take the image: 3 input channels in the file, another
    count in the model, all else equal. Said once."""
    adapted = []
    for k, w in sd.items():
        mine = own.get(k)
        if (
            mine is not None
            and w.ndim == 4
            and mine.ndim == 4
            and w.shape[1] == 3
            and mine.shape[1] != 3
            and w.shape[0] == mine.shape[0]
            and w.shape[2:] == mine.shape[2:]
        ):
            sd[k] = adapt_input_conv(w, mine.shape[1])
            adapted.append((k, mine.shape[1]))
    if adapted:
        rule = "summed over RGB" if adapted[0][1] == 1 else "repeated and scaled by 3/in_chans"
        log.info(
            "%s: first convolution %s adapted from 3 to %d input channels (%s)",
            source,
            ", ".join(k for k, _ in adapted),
            adapted[0][1],
            rule,
        )
    return sd


def load_weights(model: nn.Module, path: str | Path | Mapping[str, torch.Tensor]) -> None:
    """Load `path` (a checkpoint file, or a state dict already in memory) into `model`,
    adapting what a reference or cnnzoo checkpoint and the model may reasonably differ in, each
    said once in the log:

    - a classifier of another size is re-initialised; a model without one (num_classes=0)
      drops the file's classifier;
    - a first convolution for another number of input channels is adapted (`adapt_input_conv`);
    - BatchNorm counters (`num_batches_tracked`) that old files lack are not required.

    Any other difference is an error naming the first mismatching keys.
    """
    if isinstance(path, Mapping):
        source, sd = "state dict", _rename_legacy_keys(dict(path))
    else:
        source, sd = Path(path).name, _rename_legacy_keys(read_state_dict(path))
    own = model.state_dict()
    # parts a file may carry that this model was built without (e.g. auxiliary heads)
    optional = tuple(getattr(model, "optional_checkpoint_prefixes", ()))
    if optional:
        sd = {k: v for k, v in sd.items() if k in own or not k.startswith(optional)}
    head = getattr(model, "classifier_name", "fc") + "."
    if not any(k.startswith(head) for k in own):  # headless: keep the body only
        dropped = [k for k in sd if k.startswith(head) and k not in own]
        if dropped:
            sd = {k: v for k, v in sd.items() if k not in dropped}
            log.info("%s: classifier dropped (%s), the model has none", source, ", ".join(dropped))
    sd = _adapt_input_convs(sd, own, source)
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    head_mismatch = [k for k in mismatched if k.startswith(head)]
    body_mismatch = [k for k in mismatched if not k.startswith(head)]
    missing = [
        k
        for k in own
        if k not in sd and not k.startswith(head) and not k.endswith("num_batches_tracked")
    ]
    unexpected = [k for k in sd if k not in own]
    # a classifier of another size (or none at all in the file) is re-initialised, not an error
    reinit_head = bool(head_mismatch) or any(k.startswith(head) and k not in sd for k in own)
    if reinit_head:
        unexpected = [k for k in unexpected if not k.startswith(head)]
    problems = (
        [f"{k} shape {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in body_mismatch]
        + [f"{k} missing from checkpoint" for k in missing]
        + [f"{k} not in model" for k in unexpected]
    )
    if problems:
        name = getattr(model, "model_name", type(model).__name__)
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CnnzooError(
            f"{path} does not fit {name}: {'; '.join(problems[:3])}{more}; "
            "check the model name and its options"
        )
    if reinit_head:
        w = sd.get(head + "weight")
        ckpt_outputs = int(w.shape[0]) if w is not None else -1
        for k in head_mismatch + [k for k in own if k.startswith(head) and k not in sd]:
            sd.pop(k, None)
        log.warning(
            "%s: classifier re-initialised (checkpoint has %d outputs, model has %d)",
            source,
            ckpt_outputs,
            getattr(model, "num_classes", -1),
        )
    result = model.load_state_dict(sd, strict=False)
    leftover = [
        k
        for k in result.missing_keys
        if not k.startswith(head) and not k.endswith("num_batches_tracked")
    ]
    if leftover or result.unexpected_keys:
        raise CnnzooError(
            f"{path}: keys not loaded: {', '.join((leftover + result.unexpected_keys)[:3])}"
        )


def checkpoint_defaults(path: str | Path, model: str) -> tuple[Path, dict]:
    """The weights file `path` means (a cnnzoo run folder: its best checkpoint; a sidecar: the
    weights beside it) and what a cnnzoo checkpoint of `model` records about how it was built
    (num_classes, in_chans, model_overrides); {} for torchvision / timm files, which carry
    none, and for a checkpoint of another model."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".json":
        p = resolve_checkpoint(p)
    facts = checkpoint_facts(p) if p.is_file() else {}
    if facts.get("model") != model:
        return p, {}
    keep = ("num_classes", "in_chans", "model_overrides")
    return p, {k: facts[k] for k in keep if facts.get(k) is not None}
