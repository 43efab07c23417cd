"""The engines (infer/engines.py) on a real run (resnet20, one epoch on digits): every engine
gives the exact model's answers on the held-out images, `auto` keeps the fastest candidate,
exports are cached, an IR is readable by a client that knows nothing of cnnzoo or torch, and
a missing engine or a damaged IR is one line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import missing
from torch import nn

from cnnzoo.cli.main import main
from cnnzoo.errors import CnnzooError
from cnnzoo.export.engines import open_model, open_predictor
from cnnzoo.infer.engines import CANDIDATES, fastest
from cnnzoo.infer.evaluate import compute_logits, prepare_evaluation
from cnnzoo.infer.fast import prepare_inference

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def engines_installed():
    """The engines are part of `make install` (the dev extra): CI must test them."""
    for name in ("onnxruntime", "openvino", "nncf"):
        if importlib.util.find_spec(name) is None:
            missing(f"{name} is not installed (pip install 'cnnzoo[openvino]')")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    out = root / "run"
    args = ["train", "--model", "resnet20", "--data", "digits", "--out", str(out),
            "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert main(["data", "digits", "--export", str(root / "samples"), "--per-class", "2"]) == 0
    return root, out


def test_every_engine_gives_the_exact_models_answers(run):
    _, out = run
    model, meta, _, engines = open_model(out, "auto", "cpu")
    assert {"onnxruntime fp32", "openvino fp32"} <= set(engines)
    ev = prepare_evaluation(str(out), loaded=(model, meta), precision="fp32", progress=False)
    assert ev.path.name == "fp32 (exact)" and len(ev.images) > 150  # the held-out digits
    exact = compute_logits(model, ev.images, ev.preprocess, 64)
    tol = 1e-4 * max(1.0, float(exact.abs().max()))
    for name in ("fast fp32", "onnxruntime fp32", "openvino fp32", "fast bf16", "openvino bf16"):
        backend = CANDIDATES[name][0]
        precision = "bf16" if name.endswith("bf16") else "fast-fp32"
        path = prepare_inference(
            model, ev.preprocess(ev.images[:8]), precision, backend=backend, engines=engines
        )
        assert path.name == name, path.describe()
        got = compute_logits(path.model, ev.images, ev.preprocess, 64)
        agree = float((got.argmax(1) == exact.argmax(1)).float().mean())
        if name.endswith("fp32"):
            assert float((got - exact).abs().max()) <= tol, name
            assert agree == 1.0, name
        else:
            assert agree >= 0.99, (name, agree)


class _Const(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.engine_name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], 3)


def test_auto_keeps_the_fastest_candidate_and_never_a_slower_one_than_exact():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(4, 3, 8, 8)
    model(x)
    engines = {n: (lambda n=n: _Const(n)) for n in ("onnxruntime fp32", "openvino bf16")}
    for times in (
        {"fp32 (exact)": 9.0, "fast fp32": 5.0, "fast bf16": 4.0, "onnxruntime fp32": 3.0,
         "openvino fp32": 8.0, "openvino bf16": 1.0},
        {"fp32 (exact)": 1.0, "fast fp32": 5.0, "fast bf16": 4.0, "onnxruntime fp32": 3.0,
         "openvino fp32": 8.0, "openvino bf16": 2.0},
    ):  # fmt: skip
        path = prepare_inference(
            model, x, "auto", engines=engines, timer=lambda name, _m, _x, t=times: t[name]
        )
        assert path.timings_ms[path.name] == min(path.timings_ms.values())
        assert path.timings_ms[path.name] <= path.timings_ms["fp32 (exact)"]
        assert path.name == min(path.timings_ms, key=path.timings_ms.get)
    assert path.name == "fp32 (exact)" and path.model is model
    # a clear loser (over 3x the best) is not timed again after the first round
    calls = []
    name, best = fastest(
        {"a": nn.Identity(), "b": nn.Identity()},
        x,
        timer=lambda n, _m, _x: calls.append(n) or {"a": 1.0, "b": 10.0}[n],
    )
    assert name == "a" and calls.count("b") == 1 and calls.count("a") >= 3
    # a backend keeps its own candidates only; precision picks the kind
    path = prepare_inference(model, x, "bf16", backend="openvino", engines=engines)
    assert path.name == "openvino bf16"
    with pytest.raises(CnnzooError, match="no engine here runs"):
        prepare_inference(model, x, "bf16", backend="onnxruntime", engines=engines)


def test_auto_exports_once_into_the_run_and_says_which_ran(run, capsys):
    root, out = run
    samples = str(root / "samples")
    capsys.readouterr()
    assert main(["predict", str(out), samples, "--json"]) == 0
    captured = capsys.readouterr()
    first = json.loads(captured.out)
    chosen = first["inference"].split(" (fastest measured")[0]
    assert chosen in CANDIDATES and "openvino bf16" in first["inference"]  # AMX CPU
    cached = sorted((out / "engines").glob("*/model.*"))
    assert [p.name for p in cached] == ["model.bin", "model.onnx", "model.xml"]
    stamps = [p.stat().st_mtime_ns for p in cached]
    for backend in ("pytorch", "onnxruntime", "openvino"):
        assert main(["predict", str(out), samples, "--json", "--backend", backend]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["inference"].split(" ")[0] in (backend, "fp32", "fast")
        for a, b in zip(first["results"], again["results"], strict=True):
            assert a["predictions"][0]["class"] == b["predictions"][0]["class"]
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # reused, not rewritten


CLIENT = r"""
import json, sys
import numpy as np, openvino as ov
from PIL import Image
xml, files = sys.argv[1], sys.argv[2:]
model = ov.Core().read_model(xml)
meta = {k: model.get_rt_info(["cnnzoo", k]).astype(str) for k in model.get_rt_info()["cnnzoo"]}
size, resize = int(meta["crop"]), int(meta["resize"])
mean, std = np.array(json.loads(meta["mean"])), np.array(json.loads(meta["std"]))
batch = []
for f in files:
    im = Image.open(f).convert("RGB")
    w, h = im.size
    s = resize / min(w, h)
    if (w, h) != (round(w * s), round(h * s)):
        im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    a = np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255
    batch.append(((a - mean) / std).transpose(2, 0, 1))
compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
logits = compiled(np.stack(batch).astype(np.float32))[0]
p = np.exp(logits - logits.max(1, keepdims=True))
p /= p.sum(1, keepdims=True)
assert "torch" not in sys.modules and "cnnzoo" not in sys.modules
print(json.dumps({"classes": json.loads(meta["classes"]), "probs": p.tolist()}))
"""


def test_a_client_with_only_openvino_pillow_numpy_reproduces_predict(run, tmp_path, capsys):
    root, out = run
    xml = tmp_path / "model.xml"
    assert main(["export", "-c", str(out), "-f", "openvino", "-o", str(xml), "--dynamic-batch",
                 "--no-progress"]) == 0  # fmt: skip
    files = sorted(str(p) for p in (root / "samples").rglob("*.png"))
    client = subprocess.run(
        [sys.executable, "-c", CLIENT, str(xml), *files], capture_output=True, text=True
    )
    assert client.returncode == 0, client.stderr
    theirs = json.loads(client.stdout)
    predictor = open_predictor(xml, "openvino", precision="fp32")
    ours = predictor.probabilities(files)
    assert theirs["classes"] == predictor.classes
    assert torch.allclose(torch.tensor(theirs["probs"]), ours, atol=1e-5)
    assert predictor.path.name == "openvino fp32"


def test_missing_engine_and_damaged_ir_are_one_line(run, tmp_path, capsys, monkeypatch):
    root, out = run
    samples = str(root / "samples")
    xml = tmp_path / "m.xml"
    assert main(["export", "-c", str(out), "-f", "openvino", "-o", str(xml), "--no-progress"]) == 0
    bad_bin = tmp_path / "cut.xml"
    bad_bin.write_bytes(xml.read_bytes())
    bad_bin.with_suffix(".bin").write_bytes(xml.with_suffix(".bin").read_bytes()[:100])
    bad_xml = tmp_path / "bad.xml"
    bad_xml.write_text("<net><layers>")
    bad_xml.with_suffix(".bin").write_bytes(b"")
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(xml.read_bytes())
    cases = [
        ["predict", str(bad_bin), samples],
        ["predict", str(bad_xml), samples],
        ["predict", str(lonely), samples],
        ["predict", "--backend", "onnxruntime", str(xml), samples],
        ["export", "-c", str(out), "-f", "openvino", "-o", str(tmp_path / "x.onnx")],
    ]
    for args in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cnnzoo {args[0]}: error:") and "\n" not in err, err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.bin").exists()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a)
    )
    capsys.readouterr()
    assert main(["predict", "--backend", "openvino", str(out), samples]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'cnnzoo[openvino]'" in err and "\n" not in err
    assert main(["export", "-c", str(out), "-f", "openvino", "-o", str(tmp_path / "y.xml")]) == 2
    assert "pip install 'cnnzoo[openvino]'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("y", ".y"))) == []
    assert Path(out).is_dir()


def test_int8_is_scored_recorded_and_refused_beyond_max_drop(run, tmp_path, capsys, monkeypatch):
    import nncf
    import openvino as ov

    _, out = run
    xml = tmp_path / "q.xml"
    capsys.readouterr()
    assert main(["export", "-c", str(out), "--quantize", "int8", "-o", str(xml),
                 "--calibration-images", "64", "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "openvino int8" in printed and "held-out images of digits" in printed
    model = ov.Core().read_model(str(xml))
    record = json.loads(model.get_rt_info(["cnnzoo", "quantization"]).astype(str))
    assert record["calibration"]["images"] == 64 and len(record["calibration"]["sha256"]) == 64
    assert record["drop"] == pytest.approx(record["top1_fp32"] - record["top1_int8"])
    assert record["drop"] <= 1.0 and record["agreement"] >= 95
    assert any("FakeQuantize" in op.get_type_name() for op in model.get_ops())
    # the file runs at the drop it recorded: scored again through predict's engine
    model32, meta, _, _ = open_model(out, "pytorch", "cpu")
    ev = prepare_evaluation(str(out), loaded=(model32, meta), precision="fp32", progress=False)
    int8 = open_predictor(xml, "openvino", precision="fp32")
    got = compute_logits(
        prepare_inference(int8.model, ev.preprocess(ev.images[:8])).model,
        ev.images,
        ev.preprocess,
    )
    top1 = 100 * float((got.argmax(1) == ev.labels).float().mean())
    assert top1 == pytest.approx(record["top1_int8"], abs=1.0)
    # serve's model card shows the calibration and the drop
    from cnnzoo.serve.card import model_card

    card = model_card(int8.meta, xml, "openvino")
    assert card["export"]["quantization"] == record and card["export"]["precision"] == "int8"
    # a quantization that loses too much: one line, exit 2, nothing under the name
    monkeypatch.setattr(nncf, "quantize", lambda *a, **k: _untrained_ov(tmp_path))
    bad = tmp_path / "bad.xml"
    capsys.readouterr()
    assert main(["export", "-c", str(out), "--quantize", "int8", "-o", str(bad), "--max-drop",
                 "0.5", "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "points below fp32" in err and "--accuracy-control" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if "bad" in p.name) == []


def _untrained_ov(folder: Path):
    """An untrained resnet20 for digits, standing in for a quantization that went wrong."""
    import openvino as ov

    import cnnzoo
    from cnnzoo.export.writers import write_onnx

    path = folder / "untrained.onnx"
    model = cnnzoo.create_model("resnet20", num_classes=10).eval()
    write_onnx(model, path, torch.zeros(1, 3, 8, 8), {}, dynamic_batch=True)
    return ov.convert_model(str(path))


def test_without_bf16_hardware_auto_is_never_slower_than_fast_fp32(monkeypatch):
    """On a CPU without AMX / AVX512-BF16 there is no bf16 candidate, and fast fp32 is always
    one: whatever the engines measure, auto keeps a candidate at least as fast as it."""
    import cnnzoo.infer.fast as fast

    monkeypatch.setattr(fast, "bf16_is_native", lambda _device: False)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(3))
    x = torch.randn(4, 3, 8, 8)
    model(x)
    engines = {"onnxruntime fp32": lambda: _Const("onnxruntime fp32")}
    for ort_ms in (1.0, 6.0):
        times = {"fp32 (exact)": 9.0, "fast fp32": 5.0, "onnxruntime fp32": ort_ms}
        path = prepare_inference(
            model, x, "auto", engines=engines, timer=lambda n, _m, _x, t=times: t[n]
        )
        assert "fast bf16" not in path.timings_ms
        assert path.timings_ms[path.name] <= path.timings_ms["fast fp32"]
