"""A model file is checked as a whole when loaded: NaN / inf weights, a negative running
variance, an absurd normalisation, integer tensors where floats belong, an input size whose
forward pass would not fit, ONNX metadata that disagrees with its graph: each one line, exit 2,
valid JSON or nothing on stdout, and the server refuses to start."""

from __future__ import annotations

import json

import onnx
import pytest
import torch

from cnnzoo.artifacts.files import write_json
from cnnzoo.artifacts.sidecar import read_checkpoint
from cnnzoo.artifacts.tensors import save_tensors
from cnnzoo.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_files")
    out = root / "run"
    args = ["train", "--model", "resnet20", "--data", "digits", "--out", str(out),
            "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert main(["data", "digits", "--export", str(root / "img"), "--per-class", "1"]) == 0
    assert main(["export", "-c", str(out), "-o", str(root / "m.onnx"), "--no-progress"]) == 0
    return root, out, next((root / "img").rglob("*.png"))


def variant(root, out, name, tensors=None, meta=None):
    t, m = read_checkpoint(out)
    t = {k: v.clone() for k, v in t.items()}
    if tensors:
        tensors(t)
    if meta:
        m = {**m, **meta}
    path = root / f"{name}.safetensors"
    save_tensors(path, t, m)
    write_json(path.with_suffix(".json"), m)
    return path


def set_(key, value):
    def change(t):
        t[key] = value(t[key])

    return change


CASES = {
    "nan_weight": (set_("conv1.weight", lambda w: w.index_fill(0, torch.tensor([0]), float("nan"))),
                   None, "NaN or infinite"),
    "inf_weight": (set_("fc.weight", lambda w: w + float("inf")), None, "NaN or infinite"),
    "negative_var": (set_("bn1.running_var", lambda v: -v), None, "NaN or infinite"),
    "absurd_mean": (None, {"mean": [1e30] * 3}, "mean is not"),
    "tiny_std": (None, {"std": [1e-38] * 3}, "std is not"),
    "int_weight": (set_("fc.weight", lambda w: w.to(torch.int32)), None, "is int32 where"),
    "bool_bias": (set_("fc.bias", lambda b: b > 0), None, "is bool where"),
    "huge_input": (None, {"input_size": 4096}, "GB for one image's forward pass"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_checkpoints_are_one_line_and_never_nan(run, name, capsys):
    root, out, image = run
    tensors, meta, why = CASES[name]
    path = variant(root, out, name, tensors, meta)
    capsys.readouterr()
    assert main(["predict", str(path), str(image), "--json"]) == 2
    cap = capsys.readouterr()
    assert why in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
    assert "nan" not in cap.out.lower()
    assert main(["export", "-c", str(path), "-o", str(root / f"{name}.onnx")]) == 2
    assert not (root / f"{name}.onnx").exists()


def onnx_variant(root, name, change):
    proto = onnx.load(str(root / "m.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads(props["cnnzoo"])
    change(meta)
    for p in proto.metadata_props:
        if p.key == "cnnzoo":
            p.value = json.dumps(meta)
    path = root / f"{name}.onnx"
    onnx.save(proto, str(path))
    return path


ONNX_CASES = {
    "fewer_classes": (lambda m: m.update(classes=m["classes"][:3], num_classes=3),
                      "outputs for 3 class names"),
    "nan_mean": (lambda m: m.update(mean=[float("nan")] * len(m["mean"])), "mean is not"),
    "zero_std": (lambda m: m.update(std=[0.0] * len(m["std"])), "std is not"),
    "text_size": (lambda m: m.update(input_size="32px"), "input_size"),
    "other_size": (lambda m: m.update(input_size=16), "its graph takes"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_metadata_is_checked_against_the_graph(run, name, capsys):
    root, out, image = run
    change, why = ONNX_CASES[name]
    path = onnx_variant(root, name, change)
    capsys.readouterr()
    assert main(["predict", str(path), str(image), "--json"]) == 2
    cap = capsys.readouterr()
    assert why in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
    assert cap.out == ""
    assert main(["serve", "-c", str(path), "--port", "0"]) == 2  # refuses to start
    assert why in capsys.readouterr().err


def test_good_files_still_load(run, capsys):
    root, out, image = run
    assert main(["predict", str(root / "m.onnx"), str(image), "--json"]) == 0
    json.loads(capsys.readouterr().out)
