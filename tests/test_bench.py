"""`cnnzoo bench`: one JSON object with the figures and every setting; the zoo table and its
accuracy-against-speed plot; one-line errors for bad options."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cnnzoo.benchmark import BenchSettings, benchmark
from cnnzoo.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_json_holds_the_figures_and_every_setting(capsys):
    args = ["bench", "--model", "resnet20", "--batch", "2", "--warmup", "1", "--iters", "3",
            "--optimize", "--dtype", "bf16", "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images_per_s"] > 0 and out["ms_per_batch"] > 0
    assert out["images_per_s"] == pytest.approx(1000 * 2 / out["ms_per_batch"])
    assert out["ms_min"] <= out["ms_per_batch"] <= out["ms_max"]
    for key, value in {"model": "resnet20", "batch": 2, "mode": "infer", "dtype": "bf16",
                       "optimize": True, "channels_last": False, "compile": False,
                       "device": "cpu", "iters": 3, "warmup": 1}.items():  # fmt: skip
        assert out[key] == value, key
    assert out["input_size"] == 32 and out["machine"]["threads"] == 1
    assert out["machine"]["cpu"] and isinstance(out["machine"]["cpu_features"], list)


def test_onnxruntime_backend_times_the_exported_model(capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra")
    args = ["bench", "--model", "resnet20", "--batch", "2", "--warmup", "1", "--iters", "2",
            "--backend", "onnxruntime", "--json"]  # fmt: skip
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["backend"] == "onnxruntime" and out["images_per_s"] > 0
    assert main(["bench", "--model", "resnet20", "--backend", "onnxruntime", "--optimize"]) == 2


def test_a_training_step_runs():
    r = benchmark(BenchSettings("resnet20", batch=4, mode="train", warmup=0, iters=2))
    assert r.images_per_s > 0 and r.settings.mode == "train"


def test_all_prints_a_table_and_plots(capsys, tmp_path):
    png = tmp_path / "zoo.png"
    args = ["bench", "--all", "--model", "shufflenet_v2_x0_5", "--input-size", "64",
            "--warmup", "0", "--iters", "1", "--plot", str(png)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("shufflenet_v2_x0_5"))
    assert float(row.split()[2]) > 0 and row.split()[-1] == "60.55"  # images/s, top-1
    assert Image.open(png).size[0] > 500


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet20", "--batch", "0"], "--batch must be in [1, "),
        (["--model", "nope"], "unknown model"),
        (["--model", "resnet20", "--optimize", "--mode", "train"], "inference form"),
        (["--model", "resnet20", "--plot", "x.png"], "add --all"),
        ([], "--model is needed"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, capsys):
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
