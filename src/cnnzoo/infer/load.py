"""A cnnzoo checkpoint back to a model: build the architecture its facts name, load its
weights strictly, eval mode."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnzoo.artifacts.sidecar import read_checkpoint
from cnnzoo.errors import CnnzooError
from cnnzoo.models.factory import create_model


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a cnnzoo checkpoint in eval mode, and its facts (sidecar)."""

    tensors, meta = read_checkpoint(path)
    model = create_model(
        meta["model"],
        num_classes=int(meta["num_classes"]),
        in_chans=int(meta.get("in_chans", 3)),
        **meta.get("model_overrides", {}),
    )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CnnzooError(
            f"{path}: weights do not fit {meta['model']} ({first[1].strip() if len(first) > 1 else first[0]})"
        ) from None
    return model.to(device).eval(), meta
