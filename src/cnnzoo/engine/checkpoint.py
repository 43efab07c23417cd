"""Checkpoint files, all safetensors (no pickle is ever loaded), all written atomically, each
carrying a SHA-256 of its contents so that a damaged one is named instead of loaded.

- `<name>.safetensors` (+ the same facts in `<name>.json`): the weights inference needs, with
  model name and options, classes, input size, normalisation, recipe and metrics. The facts are
  also embedded in the safetensors header, so the weights file alone is enough.
- `state.safetensors`: everything a resumed run needs (model, EMA, optimiser, RNG states as
  uint8 tensors) with the rest (epoch, step, config, history) as JSON in its header. The one
  it replaces stays as `state.prev.safetensors`, the fallback when the newest is damaged.

Every write goes to a temp file (`.NAME.tmpPID`), is fsynced and renamed over the target, so a
kill at any moment leaves the previous file whole; temp files of killed writes are removed by
`remove_temp_files` when the run starts again.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as serialize
from torch import nn

from ..errors import CnnzooError

log = logging.getLogger("cnnzoo")

META_KEY = "cnnzoo"
CHECKSUM_KEY = "cnnzoo_sha256"
FORMAT = "cnnzoo-checkpoint-v1"
# test hook: seconds to pause half-way through writing a checkpoint (.safetensors), so a test
# can kill a real process while one is being written
SLOW_WRITE_ENV = "CNNZOO_TEST_SLOW_WRITE"
_TEMP_NAME = re.compile(r"^\..+\.tmp\d+$")


class CorruptCheckpointError(CnnzooError):
    """A checkpoint file that is truncated, unreadable or fails its checksum."""


class WriteError(CnnzooError):
    """A file that could not be written (full disk, read-only folder); the previous is intact."""


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


def previous_path(path: Path) -> Path:
    """state.safetensors -> state.prev.safetensors: the file a rotated write keeps."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _write_data(f, data: bytes, checkpoint: bool) -> None:
    delay = float(os.environ.get(SLOW_WRITE_ENV) or 0) if checkpoint else 0
    if delay > 0:  # a torn file on disk while the test's kill arrives
        half = len(data) // 2
        f.write(data[:half])
        f.flush()
        time.sleep(delay)
        f.write(data[half:])
    else:
        f.write(data)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible everywhere (Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes, keep_previous: bool = False) -> None:
    """Write `data` to `path` through a fsynced temp file and a rename; with `keep_previous`
    the file it replaces stays as `previous_path(path)`. A failed write (full disk, read-only
    folder) removes its temp file and raises WriteError, leaving `path` as it was."""
    tmp = _temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            _write_data(f, data, path.suffix == ".safetensors")
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.is_file():
            _keep_previous(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        why = e.strerror or str(e)
        if e.errno == errno.ENOSPC:
            why = "the disk is full"
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "the folder is read-only or not writable"
        state = "the previous one is intact" if os.path.exists(path) else "nothing was written"
        raise WriteError(
            f"could not write {path}: {why} ({state}); free space or fix "
            "the folder's permissions, then --resume"
        ) from None


def _keep_previous(path: Path) -> None:
    """Make `path`'s current content the previous copy, with `path` itself never missing:
    a hard link renamed into place (a plain copy where links are not supported)."""
    prev, link = previous_path(path), _temp_path(previous_path(path))
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
    except OSError:
        import shutil

        shutil.copyfile(path, link)
    os.replace(link, prev)


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files that killed writes left in `folder`; returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if _TEMP_NAME.match(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


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
    _atomic_write_bytes(Path(path), serialize(plain, metadata=header), keep_previous)


def write_json(path: str | Path, obj: Any) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and the JSON metadata of a file written by `save_tensors`, checked against its
    checksum (files without one, from elsewhere, are read as they are)."""
    from safetensors import SafetensorError

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
    except json.JSONDecodeError:
        raise CorruptCheckpointError(f"{path}: its metadata is not valid JSON") from None
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


# ------------------------------------------------------------------ inference checkpoints
def save_checkpoint(path: str | Path, model: nn.Module, info: dict[str, Any]) -> None:
    """`path` (.safetensors) with the weights, and the sidecar `path` with .json."""
    path = Path(path)
    info = {"format": FORMAT, **info}
    save_tensors(path, model.state_dict(), info)
    write_json(path.with_suffix(".json"), info)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder means its best.safetensors (or last.safetensors); a file is itself."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (p / name).is_file():
                return p / name
        raise CnnzooError(f"{p}: no best.safetensors or last.safetensors in this folder")
    if not p.exists():
        raise CnnzooError(f"checkpoint not found: {p}")
    if p.suffix == ".json":  # a sidecar: its weights sit beside it
        for weights in (p.with_suffix(".safetensors"), p.with_suffix(".pth"), p.with_suffix(".pt")):
            if weights.is_file():
                return weights
        raise CnnzooError(
            f"{p} is a JSON file; give the checkpoint (.safetensors) or its run folder"
        )
    return p


def checkpoint_facts(path: str | Path) -> dict[str, Any]:
    """The cnnzoo facts (sidecar or embedded) of a weights file; {} for other files."""
    p = Path(path)
    sidecar = p.with_suffix(".json")
    try:
        if sidecar.is_file():
            return json.loads(sidecar.read_text())
        if p.suffix == ".safetensors":
            with safe_open(str(p), framework="pt") as f:
                raw = (f.metadata() or {}).get(META_KEY)
            return json.loads(raw) if raw else {}
    except Exception:  # unreadable facts: the weights loader reports the file itself
        return {}
    return {}


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and facts of a checkpoint: a run folder, a cnnzoo .safetensors, or a .pth/.pt
    state dict next to a .json sidecar (read without running any pickled code)."""
    p = resolve_checkpoint(path)
    sidecar = p.with_suffix(".json")
    if p.suffix == ".safetensors":
        try:
            tensors, meta = read_tensors(p)
        except CorruptCheckpointError as e:
            other = p.with_name("last.safetensors")
            if not (Path(path).is_dir() and p.name == "best.safetensors" and other.is_file()):
                raise
            log.warning("%s; using %s instead", e, other.name)  # a run folder: its last
            p, sidecar = other, other.with_suffix(".json")
            tensors, meta = read_tensors(p)
    else:
        from ..weights import read_state_dict

        tensors, meta = read_state_dict(p), {}
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CnnzooError(f"{sidecar}: not valid JSON") from None
    missing = [
        k for k in ("model", "num_classes", "classes", "input_size", "mean", "std") if k not in meta
    ]
    if missing:
        raise CnnzooError(
            f"{p}: no cnnzoo sidecar facts ({', '.join(missing)} missing); "
            "use a checkpoint written by `cnnzoo train`, or load raw weights with --weights"
        )
    return tensors, meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model of a cnnzoo checkpoint in eval mode, and its facts (sidecar)."""
    from ..registry import create_model

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


# ------------------------------------------------------------------ training state
def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into tensors and JSON."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}/{k}"] = v
            else:
                scalars.setdefault(str(idx), {})[k] = v
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = v
    for idx, st in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = [
        {k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]
    ]
    opt.load_state_dict({"state": state, "param_groups": groups})


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}/{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + "/")}
