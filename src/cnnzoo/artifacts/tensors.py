"""The checksummed safetensors container: tensors + JSON metadata + a SHA-256 of both, so a
damaged file is named instead of loaded (no pickle is ever read).

`state.safetensors` keeps the copy it replaces as `state.prev.safetensors`, the fallback
`read_newest_good` turns to when the newest is damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as serialize

from cnnzoo.artifacts.files import atomic_write_bytes, previous_path
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

META_KEY = "cnnzoo"


CHECKSUM_KEY = "cnnzoo_sha256"


class CorruptCheckpointError(CnnzooError):
    """A checkpoint file that is truncated, unreadable or fails its checksum."""


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors wants contiguous CPU tensors with no shared storage: copy each one
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}


def digest(tensors: dict[str, torch.Tensor], meta_json: str) -> str:
    """SHA-256 of the JSON metadata and every tensor's name, dtype, shape and bytes (in name
    order, so it does not depend on how the file lays them out)."""
    h = hashlib.sha256(meta_json.encode())
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous().reshape(-1)
        h.update(f"\0{key}\0{t.dtype}\0{tuple(tensors[key].shape)}\0".encode())
        h.update(memoryview(t.view(torch.uint8).numpy()))
    return h.hexdigest()


def save_tensors(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    keep_previous: bool = False,
) -> None:
    """Write tensors + JSON metadata + their checksum to `path` atomically."""
    plain = _plain(tensors)
    meta_json = json.dumps(meta)
    header = {META_KEY: meta_json, CHECKSUM_KEY: digest(plain, meta_json)}
    atomic_write_bytes(Path(path), serialize(plain, metadata=header), keep_previous)


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and the JSON metadata of a file written by `save_tensors`, checked against its
    checksum (files without one, from elsewhere, are read as they are)."""

    path = Path(path)
    if not path.is_file():
        raise CnnzooError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CorruptCheckpointError(
            f"{path}: not a readable safetensors file, truncated or damaged ({e})"
        ) from None
    raw = header.get(META_KEY)
    expected = header.get(CHECKSUM_KEY)
    if expected is not None and digest(tensors, raw or "") != expected:
        raise CorruptCheckpointError(f"{path}: damaged (its checksum does not match its contents)")
    try:
        meta = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, RecursionError):
        raise CorruptCheckpointError(
            f"{path}: its metadata is not valid JSON (or nested too deeply)"
        ) from None
    if not isinstance(meta, dict):
        raise CorruptCheckpointError(f"{path}: its metadata is not a JSON object")
    return tensors, meta


def read_newest_good(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """`path`, or, when it is damaged or missing, the previous copy kept beside it (said
    once). Raises the first file's error when neither is good."""
    try:
        return (*read_tensors(path), path)
    except CnnzooError as first:
        prev = previous_path(path)
        if not prev.is_file():
            raise
        try:
            tensors, meta = read_tensors(prev)
        except CnnzooError:
            raise first from None
        log.warning("%s; using the previous copy %s", first, prev.name)
        return tensors, meta, prev


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
