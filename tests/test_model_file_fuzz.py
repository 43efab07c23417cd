"""Model files from elsewhere, fuzzed: a checkpoint's sidecar with any JSON value in any fact,
an exported file's cnnzoo metadata as any text or any values, state-dict tensors of another
dtype or shape. Every one ends in a model that loads and gives finite outputs, or in a
one-line CnnzooError; never another exception, a hang or a NaN result."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from cnnzoo import create_model
from cnnzoo.artifacts.sidecar import facts_problem
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.load import load_checkpoint
from cnnzoo.infer.metadata import parse_metadata

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
CLASSES = ["a", "b", "c"]
GOOD = {"model": "resnet20", "num_classes": 3, "classes": CLASSES, "in_chans": 3,
        "input_size": 16, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
        "crop_pct": 1.0, "model_overrides": {}}  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    return create_model("resnet20", num_classes=3).state_dict()


def _write(folder, tensors, facts):
    path = folder / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    (folder / "model.json").write_text(json.dumps(facts))
    return path


def _load_or_refuse(path) -> None:
    try:
        model, meta = load_checkpoint(path)
    except CnnzooError as e:
        assert "\n" not in str(e).strip(), e
        return
    size = meta["input_size"]
    h, w = (size, size) if isinstance(size, int) else size
    with torch.no_grad():
        out = model(torch.rand(1, int(meta.get("in_chans", 3)), h, w))
    assert torch.isfinite(out).all(), "a model that loads must give finite outputs"


@SETTINGS
@given(key=st.sampled_from(sorted(GOOD)), value=json_values)
def test_any_value_in_any_sidecar_fact(weights, tmp_path_factory, key, value):
    facts = {**GOOD, key: value}
    problem = facts_problem(facts)
    assert problem is None or isinstance(problem, str)
    _load_or_refuse(_write(tmp_path_factory.mktemp("f"), weights, facts))


@SETTINGS
@given(
    raw=st.one_of(st.text(max_size=40), json_values.map(json.dumps),
                  st.dictionaries(st.sampled_from(sorted(GOOD)), json_values).map(
                      lambda d: json.dumps({**GOOD, **d}, allow_nan=True))),
)  # fmt: skip
def test_any_exported_metadata_text(raw):
    try:
        meta = parse_metadata({"cnnzoo": raw}, "model.onnx")
    except CnnzooError as e:
        assert "\n" not in str(e).strip()
        return
    problem = facts_problem(meta)
    assert problem is None or isinstance(problem, str)


@SETTINGS
@given(
    dtype=st.sampled_from([torch.int64, torch.int8, torch.bool, torch.float16, torch.float64]),
    which=st.integers(0, 10_000),
    reshape=st.booleans(),
)
def test_tensors_of_another_dtype_or_shape(weights, tmp_path_factory, dtype, which, reshape):
    keys = [k for k, v in weights.items() if v.is_floating_point()]
    key = keys[which % len(keys)]
    bad = dict(weights)
    t = weights[key]
    bad[key] = t.reshape(-1)[: max(1, t.numel() - 1)] if reshape else t.to(dtype)
    _load_or_refuse(_write(tmp_path_factory.mktemp("t"), bad, GOOD))


def test_the_good_file_loads(weights, tmp_path):
    model, meta = load_checkpoint(_write(tmp_path, weights, GOOD))
    assert meta["classes"] == CLASSES and not math.isnan(float(model.fc.weight.sum()))
