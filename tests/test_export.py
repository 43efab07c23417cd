"""`cnnzoo export` on a real run (resnet20, one epoch on digits): the file carries the
preprocessing, parity is checked on the run's held-out images before anything is written,
and predict / eval from the ONNX file alone give what the PyTorch checkpoint gives."""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.cli.main import main
from cnnzoo.export import ParityError, export_model
from cnnzoo.infer.load import load_checkpoint
from cnnzoo.infer.runtime import load_torchscript

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    out = root / "run"
    args = ["train", "--model", "resnet20", "--data", "digits", "--out", str(out),
            "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert main(["data", "digits", "--export", str(root / "samples"), "--per-class", "1"]) == 0
    return root, out


def props_of(path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_onnx_file_carries_preprocessing_and_passed_parity(run, capsys):
    root, out = run
    path = root / "model.onnx"
    capsys.readouterr()
    assert main(["export", "-c", str(out), "-o", str(path), "--dynamic-batch"]) == 0
    printed = capsys.readouterr().out
    assert "parity on 64 held-out images of digits" in printed
    assert "top-1 agreement 100.00% (64/64" in printed
    side = json.loads((out / "best.json").read_text())
    props = props_of(path)
    assert json.loads(props["classes"]) == side["classes"]
    assert json.loads(props["input_size"]) == side["input_size"] == json.loads(props["crop"])
    assert json.loads(props["mean"]) == pytest.approx(side["mean"])
    assert json.loads(props["std"]) == pytest.approx(side["std"])
    assert json.loads(props["crop_pct"]) == side["crop_pct"]
    assert json.loads(props["resize"]) == int(side["input_size"] / side["crop_pct"] + 1e-6)
    assert json.loads(props["interpolation"]) == side.get("interpolation", "bilinear")
    assert json.loads(props["preprocessing"])["resize"]["antialias"] is True
    assert json.loads(props["cnnzoo"])["recipe"] == side["recipe"]  # the whole sidecar
    shape = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param == "batch" and [d.dim_value for d in shape[1:]] == [3, 8, 8]
    # nothing left behind but the file itself
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


def test_predict_and_eval_from_onnx_match_pytorch(run, capsys):
    root, out = run
    path = root / "model.onnx"
    if not path.exists():
        assert main(["export", "-c", str(out), "-o", str(path)]) == 0
    samples = str(root / "samples")
    capsys.readouterr()
    # the exact PyTorch model (not the default fast path) is what the export must match
    args = ["predict", "-c", str(out), samples, "--json", "--topk", "3", "--precision", "fp32"]
    assert main(args) == 0
    torch_out = json.loads(capsys.readouterr().out)["results"]
    assert main(["predict", "--backend", "onnxruntime", str(path), samples, "--json"]) == 0
    onnx_out = json.loads(capsys.readouterr().out)["results"]
    onnx_out = [{**r, "predictions": r["predictions"][:3]} for r in onnx_out]
    assert len(onnx_out) == len(torch_out) == 10
    for a, b in zip(torch_out, onnx_out, strict=True):
        assert a["file"] == b["file"]
        assert [p["class"] for p in a["predictions"]] == [p["class"] for p in b["predictions"]]
        for p, q in zip(a["predictions"], b["predictions"], strict=True):
            assert p["prob"] == pytest.approx(q["prob"], abs=1e-5)
    # eval from the file alone scores the run's own held-out split, as the checkpoint does
    reports = []
    for ckpt in (str(out), str(path)):
        args = ["eval", "-c", ckpt, "--out", f"{root / 'ev'}/", "--no-progress"]
        assert main([*args, "--precision", "fp32"]) == 0
        reports.append(json.loads((root / "ev" / "eval-digits-val.json").read_text()))
    assert reports[0]["n"] == reports[1]["n"] > 100
    assert reports[0]["top1"] == reports[1]["top1"]
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], abs=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load, read as a user would
def test_torchscript_carries_the_sidecar(run, capsys):
    root, out = run
    path = root / "model.pt"
    assert main(["export", "-c", str(out), "--format", "torchscript", "-o", str(path)]) == 0
    module, meta = load_torchscript(path)
    side = json.loads((out / "best.json").read_text())
    assert meta["classes"] == side["classes"] and meta["input_size"] == side["input_size"]
    extra = {"preprocessing.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    facts = json.loads(extra["preprocessing.json"])
    assert facts["mean"] == pytest.approx(side["mean"]) and facts["crop"] == 8  # typed
    x = torch.randn(5, 3, 8, 8)
    ref = load_checkpoint(out)[0](x)
    assert torch.allclose(module(x), ref, atol=1e-5)  # traced at batch 1, run at 5


def test_batchnorm_is_folded_unless_no_fold(run, capsys):
    """The file carries the fast form's BatchNorm folding (TorchScript would otherwise run every
    norm as its own pass); --no-fold keeps the norms; both compute what the checkpoint does."""
    root, out = run
    ref_model = load_checkpoint(out)[0]
    norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in ref_model.modules())
    x = torch.randn(4, 3, 8, 8)
    kept = {}
    for flag in ([], ["--no-fold"]):
        path = root / f"fold{len(flag)}.pt"
        assert main(["export", "-c", str(out), "-f", "torchscript", "-o", str(path), *flag]) == 0
        printed = capsys.readouterr().out
        module, meta = load_torchscript(path)
        kept[bool(flag)] = sum(m.original_name == "BatchNorm2d" for m in module.modules())
        assert meta["export"]["batchnorm_folded"] == (0 if flag else norms)
        assert torch.allclose(module(x), ref_model(x), atol=1e-5)
        assert (f"{norms} BatchNorm folded" in printed) == (not flag)
    assert norms > 0 and kept == {False: 0, True: norms}


def test_fp16_is_judged_on_agreement(run, capsys):
    root, out = run
    path = root / "half.onnx"
    capsys.readouterr()
    assert main(["export", "-c", str(out), "-o", str(path), "--precision", "fp16"]) == 0
    printed = capsys.readouterr().out
    assert "fp16: not limited" in printed and "agreement 100.00%" in printed
    g = onnx.load(str(path)).graph
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 in and out
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in g.initializer)
    assert json.loads(props_of(path)["precision"]) == "fp16"


class _EagerOnly(torch.nn.Module):
    """Differs from its own trace: adds `shift` to the logits, or reverses them, when not
    tracing, so the exported graph and the PyTorch model disagree by a known amount."""

    def __init__(self, model, shift: float = 0.0, reverse: bool = False):
        super().__init__()
        self.model, self.shift, self.reverse = model, shift, reverse

    def forward(self, x):
        y = self.model(x)
        if torch.jit.is_tracing():
            return y
        return (-y if self.reverse else y) + self.shift


@pytest.mark.parametrize("shift,reverse,figure", [(1e-2, False, "1.00e-02"), (0, True, "0.00%")])
def test_parity_failure_names_the_figures_and_writes_nothing(run, tmp_path, shift, reverse, figure):
    _, out = run
    model, meta = load_checkpoint(out)
    path = tmp_path / "bad.onnx"
    with pytest.raises(ParityError) as err:
        export_model(_EagerOnly(model, shift, reverse), meta, path, progress=False)
    assert figure in str(err.value) and "was not written" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert not err.value.report.ok


def test_model_with_check_images_and_class_names(run, tmp_path, capsys):
    root, _ = run
    names = tmp_path / "names.txt"
    names.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    path = tmp_path / "r20.onnx"
    args = ["export", "--model", "resnet20", "--num-classes", "10", "--classes", str(names),
            "--check-images", str(root / "samples"), "-o", str(path)]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    assert "parity on 10 images from" in capsys.readouterr().out
    props = props_of(path)
    assert json.loads(props["classes"])[3] == "digit 3" and json.loads(props["input_size"]) == 32


def test_bad_input_is_one_line_and_exit_2(run, tmp_path, capsys):
    root, out = run
    cases = [
        ["export", "-c", str(out), "-o", str(tmp_path / "a.onnx"), "--check-images", "/nope"],
        ["export", "-c", str(out), "--weights", "x.pth"],
        ["predict", "--backend", "onnxruntime", str(root / "samples")],
    ]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    cases.append(["predict", str(bad), str(root / "samples")])
    # an ONNX file is no PyTorch model
    cases.append(["predict", "--backend", "pytorch", str(bad), str(root / "samples")])
    for args in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"cnnzoo {args[0]}: error:") and "\n" not in err, err
    assert not (tmp_path / "a.onnx").exists()
