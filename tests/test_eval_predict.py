"""Eval and predict through the CLI, on a run trained here from a folder of generated PNGs:
predict finds the classes of new images from the checkpoint alone; eval agrees with the
validation the trainer did; outputs (table, JSON, CSV, pictures, report, confusion PNG)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import CLASSES, write_folder
from PIL import Image

from cnnzoo.cli.main import main
from cnnzoo.infer.engines import CANDIDATES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalpredict")
    write_folder(root / "data", 40, seed=0)
    run = root / "run"
    args = ["train", "--model", "resnet20", "--data", str(root / "data"), "--out", str(run),
            "--epochs", "4", "--batch-size", "16", "--lr", "0.05", "--warmup-epochs", "1",
            "--no-progress"]  # fmt: skip
    assert main(args) == 0
    queries = write_folder(root / "query", 4, seed=1)
    return root, run, queries


def test_predict_finds_the_trained_classes(trained, capsys):
    root, run, queries = trained
    # the checkpoint alone: a copy of best.safetensors without its run folder or sidecar
    lone = root / "lone" / "model.safetensors"
    lone.parent.mkdir(exist_ok=True)
    shutil.copy(run / "best.safetensors", lone)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(lone), str(root / "query"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    truth = {str(p): c for p, c in queries}
    assert len(out["results"]) == len(queries) and out["errors"] == []
    right = sum(r["predictions"][0]["class"] == truth[r["file"]] for r in out["results"])
    assert right >= 0.9 * len(queries), out["results"]
    for r in out["results"]:
        probs = [p["prob"] for p in r["predictions"]]
        assert len(probs) == 3  # --topk 5 capped at the 3 classes
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)


def test_sidecar_holds_what_inference_needs(trained):
    _, run, _ = trained
    side = json.loads((run / "best.json").read_text())
    for key in ("model", "model_overrides", "num_classes", "classes", "input_size", "mean",
                "std", "crop_pct", "recipe", "metrics", "epoch"):  # fmt: skip
        assert key in side, key
    assert (
        side["classes"] == sorted(CLASSES) and side["num_classes"] == 3 and side["input_size"] == 16
    )


def test_predict_table_csv_vis_and_bad_files(trained, capsys, tmp_path):
    root, run, queries = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    files = [str(queries[0][0]), str(queries[-1][0]), str(bad)]
    vis = tmp_path / "vis"
    capsys.readouterr()
    rc = main(["predict", "-c", str(run), *files, "--topk", "2", "--save-vis", str(vis)])
    cap = capsys.readouterr()
    assert rc == 0
    lines = cap.out.strip().splitlines()
    assert lines[0].split() == ["file", "top-1", "top-2"] and len(lines) == 3
    assert "broken.jpg" in cap.err and "skipped" in cap.err
    pngs = sorted(vis.glob("*.png"))
    assert len(pngs) == 2 and min(Image.open(pngs[0]).size) >= 160

    assert main(["predict", "-c", str(run), *files[:2], "--csv", "--topk", "1"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0] == "file,rank,class,index,prob" and len(rows) == 3

    assert main(["predict", "-c", str(run), str(bad)]) == 2  # nothing readable


def test_eval_matches_training_validation(trained, capsys):
    root, run, _ = trained
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--no-progress", "--precision", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "inference path: fp32 (exact)" in out
    report_path = Path(out.split("report: ")[1].splitlines()[0])
    report = json.loads(report_path.read_text())
    assert Path(report["files"]["confusion"]).is_file()
    side = json.loads((run / "best.json").read_text())
    # same split, same preprocessing: the same accuracy the trainer measured
    assert report["top1"] == pytest.approx(side["metrics"]["val_acc"], abs=1e-6)
    assert report["n"] == sum(map(sum, report["confusion"]))
    # three classes: top-5 would always be 100%, so it is left out
    assert set(report["per_class"]) == set(CLASSES) and report["top5"] is None


def test_eval_refuses_other_classes(trained, capsys, tmp_path):
    _, run, _ = trained
    other = tmp_path / "other"
    for name in ("cats", "dogs"):
        (other / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(other / name / f"{i}.png")
    capsys.readouterr()
    assert main(["eval", "-c", str(run), "--data", str(other), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "do not match" in err[-1] and "cats" in err[-1]


def test_predict_through_a_subprocess(trained):
    _, run, queries = trained
    cmd = [sys.executable, "-m", "cnnzoo.cli.main", "predict", "-c", str(run),
           str(queries[0][0]), "--json", "--topk", "1"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["results"][0]["predictions"][0]["class"] in CLASSES


def test_sidecar_as_checkpoint_and_skipped_file_named_once(trained, capsys, tmp_path):
    _, run, queries = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["predict", "-c", str(run / "best.json"), str(queries[0][0]), str(bad)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cnnzoo predict: inference path: ")
    assert len(err) == 2 and err[0].count("broken.jpg") == 1, err


def test_a_relative_data_folder_is_recorded_absolute(tmp_path, monkeypatch):
    from cnnzoo.train import TrainConfig, Trainer

    write_folder(tmp_path / "pics", 3, seed=2)
    monkeypatch.chdir(tmp_path)
    t = Trainer(TrainConfig(model="resnet20", data="pics", out="run", epochs=1, device="cpu"),
                progress=False)  # fmt: skip
    # eval and --resume run from other folders must still find the data
    assert t.cfg.data == str((tmp_path / "pics").resolve())
    assert t.checkpoint_info({"epoch": 1}, "model")["data"]["source"] == t.cfg.data


def test_flip_tta_is_mirror_invariant_and_scored(trained, capsys, tmp_path):
    root, run, queries = trained
    from cnnzoo.data import load_image
    from cnnzoo.infer.predict import Predictor

    image = load_image(str(queries[0][0]))
    mirror = image.flip(-1)
    plain = Predictor.from_checkpoint(run, precision="fp32")
    tta = Predictor.from_checkpoint(run, tta=True, precision="fp32")
    p = plain.probabilities([image, mirror])
    q = tta.probabilities([image, mirror])
    assert not torch.allclose(p[0], p[1], atol=1e-4)  # the model alone is not mirror-symmetric
    assert torch.allclose(q[0], q[1], atol=1e-5)  # image and mirror average to the same
    assert torch.allclose(q[0], (p[0].log() + p[1].log()).div(2).softmax(0), atol=1e-4)
    capsys.readouterr()
    assert main(["eval", "-c", str(run), "--tta", "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report = json.loads(Path(out.split("report: ")[1].splitlines()[0]).read_text())
    assert report["tta"] == "flip" and "(flip TTA)" in out
    # eval's default path: the fastest of the float32 engines (the fast form and the
    # installed engines, infer/engines.py: each within 1e-4 of the exact logits), timed
    chosen = report["inference_path"]
    assert chosen in CANDIDATES and "bf16" not in chosen
    timed = report["inference"].split("(fastest measured: ")[1]
    assert report["inference"].startswith(chosen) and "bf16" not in timed
    assert f"inference path: {report['inference']}" in out


def test_flip_tta_refused_for_a_model_trained_without_flips(trained, capsys, tmp_path):
    _, run, queries = trained
    side = json.loads((run / "best.json").read_text())
    side["recipe"]["hflip"] = False
    shutil.copy(run / "best.safetensors", tmp_path / "noflip.safetensors")
    (tmp_path / "noflip.json").write_text(json.dumps(side))
    ckpt = str(tmp_path / "noflip.safetensors")
    for cmd in (
        ["eval", "-c", ckpt, "--tta"],
        ["predict", "-c", ckpt, "--tta", str(queries[0][0])],
    ):
        capsys.readouterr()
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "without horizontal flips" in err[0], err


def test_eval_scores_the_model_by_default_and_says_what_bf16_costs(trained, capsys):
    """By default eval runs a float32 engine only (the trained model's own score, as the
    trainer measured it); bf16, when asked for, is printed beside the exact model's score."""
    from cnnzoo.infer.machine import bf16_is_native

    root, run, _ = trained
    side = json.loads((run / "best.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(run), "--no-progress", "--out", str(root / "default.json")]) == 0
    out = capsys.readouterr().out
    path = out.split("inference path: ")[1].splitlines()[0]
    assert "bf16" not in path.split(" (")[0] and "exact fp32 model" not in out
    report = json.loads(Path(out.split("report: ")[1].splitlines()[0]).read_text())
    assert report["top1"] == pytest.approx(side["metrics"]["val_acc"], abs=1e-6)
    if not bf16_is_native(torch.device("cpu")):
        pytest.skip("this CPU has no bf16 path (AMX / AVX512-BF16) to compare")
    assert main(["eval", str(run), "--no-progress", "--precision", "bf16", "--backend",
                 "pytorch", "--out", str(root / "bf16.json")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("the exact fp32 model"))
    assert f"top-1 {side['metrics']['val_acc']:.2f}%" in line and "predictions agree" in line
