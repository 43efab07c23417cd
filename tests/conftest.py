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


ZOO2 = REFERENCE / "zoo2"  # the same kinds of facts for the second part of the zoo


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


@cache
def reference_models() -> dict:
    return {**_json(REFERENCE / "models.json"), **_json(ZOO2 / "models.json")}


def _zoo2_published() -> dict:
    return _json(ZOO2 / "published.json").get("models", {})


@cache
def published() -> dict:
    """torchvision's weight sets per model: weights, url (the file name), acc1, gmacs, ...;
    zoo2's also say which is torchvision's default and its crop / resize / interpolation."""
    models = dict(_json(REFERENCE / "published.json").get("models", {}))
    for name, rows in _zoo2_published().items():
        if rows and "weights" in rows[0]:  # torchvision's (timm's tags: timm_published())
            models[name] = [{**r, "url": r["url"].rsplit("/", 1)[1]} for r in rows]
    return models


@cache
def timm_published() -> dict:
    """timm's pretrained tags per zoo2 model: tag, hf_hub_id, url, input_size, crop_pct, ..."""
    return {n: rows for n, rows in _zoo2_published().items() if rows and "tag" in rows[0]}


@cache
def timm_tags() -> dict:
    """timm's pretrained tags per model, both parts of the zoo (Hugging Face id,
    preprocessing, top-1)."""
    return {**_json(REFERENCE / "timm_tags.json").get("models", {}), **timm_published()}


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


def pytest_collection_modifyitems(session, config, items):
    """The tests that send stop signals to the test process run first. Once OpenVINO has
    run in a process (predict / eval / serve choose it in-process), a SIGTERM to that process
    ends it with SIGSEGV (docs/reliability.md, "Known problems"), which would take a test
    worker down with it."""
    first = ("test_kills.py", "test_reliability.py")
    items.sort(key=lambda item: item.path.name not in first)
