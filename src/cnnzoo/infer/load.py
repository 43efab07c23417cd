"""A cnnzoo checkpoint back to a model: build the architecture its facts name, load its
weights strictly, eval mode."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnzoo.artifacts.sidecar import read_checkpoint
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.checks import check_forward_memory, check_probe, check_tensor_dtypes
from cnnzoo.models.factory import create_model


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a cnnzoo checkpoint in eval mode, and its facts (sidecar)."""

    tensors, meta = read_checkpoint(path)
    check_forward_memory(meta, str(path))  # before any input of that size is allocated
    model = create_model(
        meta["model"],
        num_classes=int(meta["num_classes"]),
        in_chans=int(meta.get("in_chans", 3)),
        **meta.get("model_overrides", {}),
    )
    check_tensor_dtypes(model, tensors, str(path))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise CnnzooError(
            f"{path}: weights do not fit {meta['model']} ({first[1].strip() if len(first) > 1 else first[0]})"
        ) from None
    model = model.to(device).eval()
    check_probe(model, meta, str(path))  # finite logits, one per class, or one line
    return model, meta
