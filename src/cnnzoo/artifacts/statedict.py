"""Reading state dicts from torchvision, timm and cnnzoo files safely: safetensors, or pickles
read with weights_only=True, so no code in a file ever runs."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from cnnzoo.errors import CnnzooError

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
