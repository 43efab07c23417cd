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

# the cores are shared out between pytest-xdist's workers: more threads than cores stall
# (docs/design.md, "Threads on a shared CPU")
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, (os.cpu_count() or 1) // _WORKERS))


@cache
def reference_models() -> dict:
    path = REFERENCE / "models.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@cache
def published() -> dict:
    path = REFERENCE / "published.json"
    return json.loads(path.read_text())["models"] if path.is_file() else {}


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
    path = REFERENCE / "parity.safetensors"
    if not path.is_file():
        return {}
    from safetensors.torch import load_file

    return load_file(str(path))


def missing(what: str) -> None:
    """Skip with the reason, or fail under CI (CI=true): CI must never pass without checking
    exactness and real-data accuracy."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what}; CI runs every check, so it must be there")
    pytest.skip(what)


def need_reference():
    if not reference_models():
        missing(f"reference figures not found at {REFERENCE} (set CNNZOO_REFERENCE)")


def with_reference(names) -> list:
    """Parameters for a test over reference models: the names, or, when the reference files
    are absent, one case that skips (fails under CI) saying so, instead of pytest's silent
    "got empty parameter set"."""
    names = sorted(names)
    return names if reference_models() else ["(reference absent)"]


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
