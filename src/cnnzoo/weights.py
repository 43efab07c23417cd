"""Reading checkpoint files (torchvision, timm, cnnzoo) safely and loading them into a model."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import nn

from .errors import CnnzooError

log = logging.getLogger("cnnzoo")

# Containers that training scripts wrap a state dict in.
_WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model", "module")


def _unpickling_detail(message: str) -> str:
    """The informative line of torch's weights_only refusal (its first lines are boilerplate
    about the weights_only default), e.g. "Trying to load unsupported GLOBAL posix.system"."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith(("Unsupported", "Trying to load")) or "GLOBAL" in line:
            return line
    return lines[0] if lines else "unsafe content"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file; pickles are read with weights_only=True (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CnnzooError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CnnzooError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickling_detail(str(e))
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic[:1] != b"\x80" and magic != b"PK":  # neither a pickle nor torch's zip
            raise CnnzooError(
                f"{path}: not a PyTorch checkpoint (not a pickle of tensors: {detail}); "
                "give a .pth / .pt state dict or a .safetensors file"
            ) from None
        raise CnnzooError(
            f"{path}: refused to load, it holds more than tensors ({detail[:120]}); "
            "convert it to .safetensors from a trusted environment"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        why = "the file is empty" if Path(path).stat().st_size == 0 else str(e) or type(e).__name__
        raise CnnzooError(f"{path}: not a readable PyTorch checkpoint ({why})") from None
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CnnzooError(f"{path}: holds no state dict of tensors")
    # DataParallel / DDP / torch.compile prefixes
    for prefix in ("module.", "_orig_mod."):
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load `path` into `model`. The classifier is re-initialised when its shape differs; any
    other difference is an error naming the first mismatching keys."""
    sd = read_state_dict(path)
    own = model.state_dict()
    # parts a file may carry that this model was built without (e.g. auxiliary heads)
    optional = tuple(getattr(model, "optional_checkpoint_prefixes", ()))
    if optional:
        sd = {k: v for k, v in sd.items() if k in own or not k.startswith(optional)}
    head = getattr(model, "classifier_name", "fc") + "."
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape]
    head_mismatch = [k for k in mismatched if k.startswith(head)]
    body_mismatch = [k for k in mismatched if not k.startswith(head)]
    missing = [k for k in own if k not in sd and not k.startswith(head)]
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
            Path(path).name,
            ckpt_outputs,
            getattr(model, "num_classes", -1),
        )
    result = model.load_state_dict(sd, strict=not reinit_head)
    leftover = [k for k in result.missing_keys if not k.startswith(head)]
    if leftover:
        raise CnnzooError(f"{path}: keys not loaded: {', '.join(leftover[:3])}")
