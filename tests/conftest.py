"""Shared fixtures: where the reference figures and datasets live (../shared by default)."""

from __future__ import annotations

import importlib.util
import json
import os
from functools import cache
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CNNZOO_SHARED", ROOT.parent / "shared"))
REFERENCE = Path(os.environ.get("CNNZOO_REFERENCE", SHARED / "reference"))
DATASETS = Path(os.environ.get("CNNZOO_DATASETS", SHARED / "datasets"))

torch.set_num_threads(max(1, os.cpu_count() or 1))


ZOO2 = REFERENCE / "zoo2"  # the second part of the zoo: the same kinds of facts, merged in


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@cache
def reference_models() -> dict:
    return {**_json(REFERENCE / "models.json"), **_json(ZOO2 / "models.json")}


@cache
def published() -> dict:
    """torchvision's weight sets per model. zoo2's published.json lists timm's tags beside them
    (entries with a "tag" instead of "weights"): those are in `timm_tags()`."""
    models = dict(_json(REFERENCE / "published.json").get("models", {}))
    for name, rows in _json(ZOO2 / "published.json").get("models", {}).items():
        if all("weights" in r for r in rows):
            models[name] = rows
    return models


@cache
def timm_tags() -> dict:
    """timm's pretrained tags per model (Hugging Face id, preprocessing, top-1)."""
    tags = dict(_json(REFERENCE / "timm_tags.json").get("models", {}))
    for name, rows in _json(ZOO2 / "published.json").get("models", {}).items():
        if all("tag" in r for r in rows):
            tags[name] = rows
    return tags


@cache
def parity_module():
    path = REFERENCE / "parity.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("cnnzoo_reference_parity", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def parity_outputs() -> dict:
    from safetensors.torch import load_file

    paths = [REFERENCE / "parity.safetensors", ZOO2 / "parity.safetensors"]
    return {k: v for p in paths if p.is_file() for k, v in load_file(str(p)).items()}


def need_reference():
    if not reference_models():
        pytest.skip(f"reference figures not found at {REFERENCE} (set CNNZOO_REFERENCE)")


@pytest.fixture
def reference():
    need_reference()
    return reference_models()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one thread: tiny models train as fast on one, and one thread does not
    stall when the other core is busy (two OpenMP threads on one free core wait for each other
    at every op)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
