"""First use, the small things: a TorchScript file given to predict / eval / serve is refused in
one line naming what they read; serve answers the good files of a mixed upload and names the
bad ones; a mistyped option is one line and exit 2; progress bars only on a terminal."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.cli.main import main
from cnnzoo.export import model_meta
from cnnzoo.infer.predict import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = ["cat", "dog", "fish"]


def _one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{command}: error: "), lines[0]
    return lines[0]


class _no_warning:
    """No warning (torch's TorchScript-archive one came first before) may escape."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [str(w.message) for w in self.caught], [str(w.message) for w in self.caught]
        return False


def test_torchscript_file_is_refused_in_one_line(tmp_path, capsys):
    model = cnnzoo.create_model("resnet20", num_classes=2).eval()
    ts = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(model, torch.randn(1, 3, 8, 8)), str(ts))
    image = tmp_path / "a.png"
    Image.new("RGB", (12, 12)).save(image)
    for args in (["predict", str(ts), str(image)], ["predict", "-c", str(ts), str(image)],
                 ["eval", "-c", str(ts)], ["serve", "-c", str(ts)]):  # fmt: skip
        with _no_warning():
            assert main(args) == 2
        line = _one_error_line(capsys.readouterr().err, f"cnnzoo {args[0]}")
        assert "is a TorchScript file" in line and ".safetensors" in line and ".onnx" in line


def test_argparse_mistakes_are_one_line_with_exit_2(capsys):
    for args, words in ((["train", "--model", "resnet20", "--epochs", "x"], "invalid int"),
                        (["trian"], "invalid choice"),
                        (["predict"], "required"),
                        (["models", "--names", "--frobnicate"], "unrecognized")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and words in err and "--help" in err, err
        assert "usage:" not in err


def test_progress_bars_only_on_a_terminal(tmp_path):
    """stderr to a file or pipe: no bar (carriage returns, rates), the epoch lines stay."""
    cmd = [sys.executable, "-m", "cnnzoo", "train", "--model", "resnet20", "--data", "digits",
           "--epochs", "1", "--out", str(tmp_path / "run"), "--threads", "1"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr and "it/s" not in p.stderr, p.stderr[-500:]
    assert "epoch 1/1" in p.stdout + p.stderr


# ---------------------------------------------------------------- serve
httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
from cnnzoo.serve import build_app, model_card, serving  # noqa: E402


def test_serve_answers_the_good_files_of_a_mixed_upload(tmp_path):
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=len(CLASSES))
    predictor = Predictor(model, model_meta("resnet20", 3, CLASSES), precision="fp32")
    good = tmp_path / "good.png"
    Image.effect_noise((40, 30), 60).convert("RGB").save(good)
    (expected,), _ = predictor.predict_files([str(good)], topk=3)
    app = build_app(predictor, model_card(predictor.meta, "resnet20.safetensors", "pytorch"))
    upload = [("file", ("broken.jpg", b"not an image", "image/jpeg")),
              ("file", ("good.png", good.read_bytes(), "image/png")),
              ("file", ("empty.png", b"", "image/png"))]  # fmt: skip
    with serving(app) as url, httpx.Client(base_url=url) as client:
        r = client.post("/predict?topk=3", files=upload)
        assert r.status_code == 200, r.text
        out = r.json()
        assert [x["file"] for x in out["results"]] == ["good.png"]
        got = [p["prob"] for p in out["results"][0]["predictions"]]
        assert got == pytest.approx([p for _, _, p in expected.top], abs=1e-6)
        assert [(e["file"], e["reason"]) for e in out["errors"]] == [
            ("broken.jpg", "not a readable image (unknown format or corrupt header)"),
            ("empty.png", "empty upload"),
        ]
        r = client.post("/predict", files=[upload[0], upload[2]])  # nothing good: a 4xx
        assert r.status_code == 400
        error = r.json()["error"]
        assert "broken.jpg" in error and "empty.png" in error and "\n" not in error
