"""A cnnzoo checkpoint on disk: `<name>.safetensors` with the weights and the facts inference
needs (model name and options, classes, input size, normalisation, recipe, metrics), the same
facts in the sidecar `<name>.json`; the names of every file a run folder holds; the checks a
sidecar read from disk must pass before its values size a model or normalise an image."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from cnnzoo.artifacts.files import write_json
from cnnzoo.artifacts.statedict import read_state_dict
from cnnzoo.artifacts.tensors import META_KEY, CorruptCheckpointError, read_tensors, save_tensors
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

FORMAT = "cnnzoo-checkpoint-v1"

# The files of a run folder, named once.
BEST_FILE = "best.safetensors"
LAST_FILE = "last.safetensors"
STATE_FILE = "state.safetensors"
CONFIG_FILE = "config.json"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
CURVES_FILE = "curves.png"
SKIPPED_FILE = "skipped.tsv"


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
        for name in (BEST_FILE, LAST_FILE):
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
    """The cnnzoo facts (sidecar or embedded) of a weights file; {} for other files.
    Facts that are there but make no sense (a tampered sidecar) are an error."""
    p = Path(path)
    sidecar = p.with_suffix(".json")
    facts: Any = {}
    try:
        if sidecar.is_file():
            facts = json.loads(sidecar.read_text())
        elif p.suffix == ".safetensors":
            with safe_open(str(p), framework="pt") as f:
                raw = (f.metadata() or {}).get(META_KEY)
            facts = json.loads(raw) if raw else {}
    except Exception:  # unreadable facts: the weights loader reports the file itself
        return {}
    if not isinstance(facts, dict):
        return {}
    if "model" in facts and "mean" in facts:  # written by cnnzoo: it must still be sane
        problem = facts_problem(facts)
        if problem:
            raise CnnzooError(f"{sidecar if sidecar.is_file() else p}: {problem}")
    return facts


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and facts of a checkpoint: a run folder, a cnnzoo .safetensors, or a .pth/.pt
    state dict next to a .json sidecar (read without running any pickled code)."""
    p = resolve_checkpoint(path)
    sidecar = p.with_suffix(".json")
    if p.suffix == ".safetensors":
        try:
            tensors, meta = read_tensors(p)
        except CorruptCheckpointError as e:
            other = p.with_name(LAST_FILE)
            if not (Path(path).is_dir() and p.name == BEST_FILE and other.is_file()):
                raise
            log.warning("%s; using %s instead", e, other.name)  # a run folder: its last
            p, sidecar = other, other.with_suffix(".json")
            tensors, meta = read_tensors(p)
    else:
        tensors, meta = read_state_dict(p), {}
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise CnnzooError(f"{sidecar}: not valid JSON (or nested too deeply)") from None
        where = sidecar
    else:
        where = p
    missing = [
        k
        for k in ("model", "num_classes", "classes", "input_size", "mean", "std")
        if not isinstance(meta, dict) or k not in meta
    ]
    if missing:
        raise CnnzooError(
            f"{p}: no cnnzoo sidecar facts ({', '.join(missing)} missing); "
            "use a checkpoint written by `cnnzoo train`, or load raw weights with --weights"
        )
    problem = facts_problem(meta)
    if problem:
        raise CnnzooError(f"{where}: {problem}; this checkpoint was not written by cnnzoo as it is")
    return tensors, meta


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite_numbers(v: Any, n: int) -> bool:
    return (
        isinstance(v, list)
        and len(v) == n
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        and all(math.isfinite(x) for x in v)
    )


def _safe_name(v: Any) -> bool:
    """A class name or option string that cannot lead a path anywhere."""
    return isinstance(v, str) and v not in ("", ".", "..") and not any(c in v for c in "/\\\0")


# options a sidecar may not set: they would load other files or contradict the facts
_FORBIDDEN_OVERRIDES = ("weights", "num_classes", "in_chans")


def facts_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's facts (read from a file, so maybe tampered with),
    or None: every value is checked before it sizes a model or normalises an image."""
    in_chans = meta.get("in_chans", 3)
    n = meta.get("num_classes")
    overrides = meta.get("model_overrides", {})
    crop = meta.get("crop_pct", 1.0)
    checks = [
        (isinstance(meta.get("model"), str), "model is not a name"),
        (_is_int(n) and 1 <= n <= 1_000_000, f"num_classes {n!r:.40} is not a count of classes"),
        (isinstance(meta.get("classes"), list) and all(map(_safe_name, meta["classes"])),
         "classes is not a list of class names"),
        (not _is_int(n) or len(meta.get("classes") or []) == n,
         f"{len(meta.get('classes') or [])} class names for {n} outputs"),
        (_is_int(in_chans) and in_chans in (1, 3), f"in_chans {in_chans!r:.40} is not 1 or 3"),
        (_is_int(meta.get("input_size")) and 1 <= meta["input_size"] <= 4096,
         f"input_size {meta.get('input_size')!r:.40} is not a size in pixels"),
        (_finite_numbers(meta.get("mean"), in_chans if _is_int(in_chans) else 3),
         "mean is not one finite number per channel"),
        (_finite_numbers(meta.get("std"), in_chans if _is_int(in_chans) else 3)
         and all(x > 0 for x in meta["std"]), "std is not one positive number per channel"),
        (isinstance(crop, (int, float)) and not isinstance(crop, bool) and 0 < crop <= 1,
         f"crop_pct {crop!r:.40} is not in (0, 1]"),
        (isinstance(overrides, dict)
         and all(isinstance(k, str) and k not in _FORBIDDEN_OVERRIDES for k in overrides)
         and all(v is None or isinstance(v, (int, float, bool)) or _safe_name(v)
                 for v in overrides.values()),
         "model_overrides holds more than plain model options"),
        (isinstance(meta.get("recipe", {}), (dict, type(None))), "recipe is not an object"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            return message
    return None
