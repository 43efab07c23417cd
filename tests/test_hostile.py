"""Hostile and broken input: every case of the probe that found tracebacks, hangs, silent
nonsense or runaway memory, each made here from a file the test writes. Each ends with one
line and exit 2 (or the bad file named and skipped), nothing written outside the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ON, make_folder, write_png
from PIL import Image
from safetensors.torch import save_file

from cnnzoo.cli.main import main
from cnnzoo.data import load_data
from cnnzoo.errors import CnnzooError

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--model", "resnet20", "--data", "digits", "--no-progress"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------ options, before any work
@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--model-opt", "drop_rate=abc"], "drop_rate must be a number"),
        (["--model-opt", "drop_rate=1.5"], "drop_rate must be in [0, 1)"),
        (["--seed", str(2**70)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--image-size", "100000"], "--image-size must be in [8, 4096] (got 100,000)"),
        (["--image-size", "1"], "--image-size must be in [8, 4096] (got 1)"),
        (["--image-size", "0"], "--image-size must be in [8, 4096] (got 0)"),
        (["--crop-pad", "1000", "--image-size", "32"], "--crop-pad 1000"),
        (["--freeze", "backbone"], "--weights"),
        (["--lr", "inf"], "finite"),
        (["--lr", "nan"], "finite"),
        (["--batch-size", "0"], "--batch-size"),
        (["--epochs", "-3"], "--epochs"),
        (["--wd", "nan"], "finite"),
    ],
)
def test_nonsense_options_are_refused_before_any_work(extra, expected, capsys, tmp_path):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), *extra]) == 2
    line = error_line(capsys)
    assert line.startswith("cnnzoo train: error:") and expected in line, line
    assert not out.exists()  # refused before the run folder was made


def test_debug_shows_the_traceback(tmp_path):
    args = [*TRAIN, "--out", str(tmp_path / "r"), "--epochs", "0"]
    with pytest.raises(CnnzooError, match="--epochs"):
        main(["--debug", *args])
    with pytest.raises(CnnzooError):  # also after the command name
        main([*args, "--debug"])


def test_unexpected_errors_are_one_line_with_exit_1(monkeypatch, capsys):
    import cnnzoo.cli.models as models_cli

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(models_cli, "run", boom)
    assert main(["models"]) == 1
    line = error_line(capsys)
    assert "internal error: ZeroDivisionError: a bug" in line and "--debug" in line


# ------------------------------------------------------------------ data that cannot train
def test_data_that_cannot_train_a_classifier_is_refused(tmp_path, capsys):
    one = make_folder(tmp_path / "one", classes=("cat",))
    assert main([*ON, str(one), "--out", str(tmp_path / "r1")]) == 2
    assert "one class" in error_line(capsys)
    assert not (tmp_path / "r1").exists()

    make_folder(tmp_path / "split" / "train")
    make_folder(tmp_path / "split" / "val", per_class=2, classes=("cat",))
    assert main([*ON, str(tmp_path / "split"), "--out", str(tmp_path / "r2")]) == 2
    assert "class 'dog' has no val image" in error_line(capsys)

    two = make_folder(tmp_path / "two")
    assert main([*ON, str(two), "--image-size", "64", "--out", str(tmp_path / "r3")]) == 2
    line = error_line(capsys)
    assert "more than 4x the 8 px" in line and "--load-size" in line


def test_an_input_the_model_cannot_take_is_refused_naming_the_smallest():
    from cnnzoo.train.checks import check_model_input
    from cnnzoo.train.config import TrainConfig

    cfg = TrainConfig(model="inception_v3", data="x", image_size=32)
    with pytest.raises(CnnzooError, match=r"inception_v3 needs inputs of at least (\d+) px") as e:
        check_model_input(cfg, 3, 10)
    smallest = int(e.value.args[0].split("at least ")[1].split(" ")[0])
    assert 32 < smallest < 299
    check_model_input(TrainConfig(model="inception_v3", data="x", image_size=smallest), 3, 10)


def test_builtin_dataset_name_beside_a_folder_of_that_name(tmp_path, monkeypatch, capsys):
    make_folder(tmp_path / "cifar10")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CnnzooError, match=r"write --data ./cifar10"):
        load_data("cifar10", progress=False)
    assert len(load_data("./cifar10", progress=False, val_split=0.5).classes) == 2


# ------------------------------------------------------------------ folders that trap a walker
def test_fifo_loops_and_links_are_skipped_and_named(tmp_path):
    root = make_folder(tmp_path / "pets", per_class=8)
    os.mkfifo(root / "cat" / "fifo.jpg")  # opening it would block forever
    os.symlink(".", root / "cat" / "loop")  # repeats the class ~40 times when followed
    os.symlink(root / "dog" / "000.png", root / "cat" / "stolen.png")  # a dog labelled cat
    os.symlink(root / "dog", root / "cat" / "all_dogs")
    os.link(root / "cat" / "001.png", root / "dog" / "hard.png")  # one file, two classes
    os.mkdir(root / "dog" / "folder.jpg")  # a folder named like an image
    b = load_data(str(root), val_split=0.25, progress=False)
    reasons = dict(b.skipped)
    assert "not a regular file" in reasons[str(root / "cat" / "fifo.jpg")]
    assert "loop" in reasons[str(root / "cat" / "loop")]
    assert "class dog" in reasons[str(root / "cat" / "stolen.png")]
    assert all("class dog" in reasons[str(root / "cat" / "all_dogs" / f"{i:03d}.png")]
               for i in range(8))  # fmt: skip
    assert "label unclear" in reasons[str(root / "dog" / "hard.png")]
    assert "label unclear" in reasons[str(root / "cat" / "001.png")]
    # what is left: each real file once, under its own class, none in both splits
    files = (b.train.paths or []) + (b.val.paths or [])
    assert len(files) == len(set(files)) == 15
    assert {os.stat(f).st_ino for f in b.train.paths}.isdisjoint(
        {os.stat(f).st_ino for f in b.val.paths}
    )


def test_val_folder_sharing_files_with_train_does_not_leak(tmp_path):
    make_folder(tmp_path / "d" / "train", per_class=4)
    make_folder(tmp_path / "d" / "val", per_class=2)
    os.symlink(
        tmp_path / "d" / "train" / "cat" / "003.png", tmp_path / "d" / "val" / "cat" / "x.png"
    )
    b = load_data(str(tmp_path / "d"), progress=False)
    assert dict(b.skipped)[str(tmp_path / "d" / "val" / "cat" / "x.png")].startswith("also in")
    assert len(b.val) == 4


def test_mostly_unreadable_folder_is_refused_and_all_skipped_are_listed(tmp_path, capsys):
    root = make_folder(tmp_path / "bad", per_class=10)
    for i in range(14):  # 14 of 20 files broken: 70%
        (root / ("cat" if i < 7 else "dog") / f"{i % 7:03d}.png").write_bytes(b"not an image")
    assert main([*ON, str(root), "--out", str(tmp_path / "r")]) == 2
    line = error_line(capsys)
    assert "14 of 20 image files" in line and "cnnzoo data" in line
    # `cnnzoo data` shows the folder in full, every skipped file named
    assert main(["data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "skipped 14 unreadable" in out and out.count("bad/cat/") == 7


def test_training_names_every_skipped_file_in_the_run_folder(tmp_path):
    root = make_folder(tmp_path / "some", per_class=12)
    for i in range(5):
        (root / "cat" / f"{i:03d}.png").write_bytes(b"")
    run = tmp_path / "run"
    args = [*ON, str(root), "--out", str(run), "--epochs", "1"]
    assert main([*args, "--val-split", "0.3"]) == 0
    lines = (run / "skipped.tsv").read_text().splitlines()
    assert len(lines) == 6 and all("\t" in line for line in lines[1:])


# ------------------------------------------------------------------ checkpoints from elsewhere
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hostile-run")
    root = make_folder(tmp / "pets", per_class=6)
    run = tmp / "run"
    rc = main([*ON, str(root), "--out", str(run), "--epochs", "1",
               "--val-split", "0.34"])  # fmt: skip
    assert rc == 0
    return run


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


SIDECAR_LIES = {
    "shorter class list": lambda m: {**m, "classes": m["classes"][:1]},
    "longer class list": lambda m: {**m, "classes": [*m["classes"], "x"]},
    "input size 0": lambda m: {**m, "input_size": 0},
    "input size -32": lambda m: {**m, "input_size": -32},
    "input size text": lambda m: {**m, "input_size": "32px"},
    "input size nan": lambda m: {**m, "input_size": float("nan")},
    "num_classes text": lambda m: {**m, "num_classes": "three"},
    "just a number": lambda m: 5,
    "nested": lambda m: "deep",  # written below as 100,000 nested lists
    "nan mean": lambda m: {**m, "mean": [float("nan")] * 3},
    "zero std": lambda m: {**m, "std": [0.0, 1.0, 1.0]},
    "weights override": lambda m: {**m, "model_overrides": {"weights": "/etc/passwd"}},
    "path in class": lambda m: {**m, "classes": ["../../x", "dog"]},
    "other model": lambda m: {**m, "model": "resnet110"},
    "unknown model": lambda m: {**m, "model": "os.system"},
    "crop 5": lambda m: {**m, "crop_pct": 5},
}


@pytest.mark.parametrize("lie", list(SIDECAR_LIES))
def test_lying_sidecars_are_one_line_errors(lie, trained_run, tmp_path, capsys):
    run = _copy_run(trained_run, tmp_path / "run")
    image = write_png(tmp_path / "x.png", 50)
    sidecar = run / "best.json"
    meta = SIDECAR_LIES[lie](json.loads(sidecar.read_text()))
    text = "[" * 100_000 + "]" * 100_000 if meta == "deep" else json.dumps(meta)
    sidecar.write_text(text)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["predict", "-c", str(run), str(image)]) == 2
    assert "error:" in error_line(capsys)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def _state_edits() -> dict:
    def meta_edit(fn):
        return ("meta", fn)

    return {
        "negative step": meta_edit(lambda m: {**m, "step": -5}),
        "text epoch": meta_edit(lambda m: {**m, "epoch": "2"}),
        "no config": meta_edit(lambda m: {k: v for k, v in m.items() if k != "config"}),
        "config lies": meta_edit(lambda m: {**m, "config": {**m["config"], "batch_size": "8"}}),
        "config nan lr": meta_edit(lambda m: {**m, "config": {**m["config"], "lr": float("nan")}}),
        "other model": meta_edit(lambda m: {**m, "config": {**m["config"], "model": "resnet32"}}),
        "class count": ("tensor", "model/fc.weight"),
        "no rng": ("drop", "rng/data"),
        "truncated": ("truncate", 1000),
        "bad header": ("header", b"\xff" * 16),
    }


@pytest.mark.parametrize("edit", list(_state_edits()))
def test_tampered_state_is_refused_on_resume(edit, trained_run, tmp_path, capsys):
    from safetensors import safe_open

    from cnnzoo.artifacts.tensors import META_KEY

    run = _copy_run(trained_run, tmp_path / "run")
    path = run / "state.safetensors"
    kind, what = _state_edits()[edit]
    if kind == "truncate":
        path.write_bytes(path.read_bytes()[:what])
    elif kind == "header":
        data = path.read_bytes()
        path.write_bytes(data[:8] + what + data[8 + len(what) :])
    else:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()[META_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        if kind == "meta":
            meta = what(meta)
        elif kind == "tensor":
            tensors[what] = torch.zeros(7, *tensors[what].shape[1:])
        else:
            del tensors[what]
        save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta)})
    before = {p: p.stat().st_mtime_ns for p in run.iterdir()}
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 2
    line = error_line(capsys)
    assert "state" in line or "safetensors" in line or "option" in line, line
    assert {p: p.stat().st_mtime_ns for p in run.iterdir()} == before  # nothing rewritten


@pytest.mark.parametrize(
    "damage",
    ["truncated", "random bytes", "empty", "bad safetensors header", "huge header length", "json"],
)
def test_corrupted_weights_files_are_one_line_errors(damage, trained_run, tmp_path, capsys):
    good = (trained_run / "last.safetensors").read_bytes()
    suffix = ".pth" if damage in ("random bytes", "empty") else ".safetensors"
    path = tmp_path / f"w{suffix}"
    data = {
        "truncated": good[: len(good) // 2],
        "random bytes": np.random.default_rng(0).bytes(5000),
        "empty": b"",
        "bad safetensors header": good[:8] + b"{not json" + good[17:],
        "huge header length": (2**62).to_bytes(8, "little") + good[8:],
        "json": b'{"a": 1}',
    }[damage]
    path.write_bytes(data)
    args = [*TRAIN, "--out", str(tmp_path / "r"), "--weights", str(path), "--epochs", "1"]
    assert main(args) == 2
    assert "error:" in error_line(capsys)


# ------------------------------------------------------------------ predict and huge strips
def test_predict_on_huge_strips_is_bounded_and_keeps_the_good_images(trained_run, tmp_path):
    """A 1 x 1,000,000 strip once took 14 GB, a 1 x 50,000,000 one aborted the whole call:
    strips are classified from their centre, pictures above the pixel or side limit are
    named and skipped, and the good images are still classified."""
    Image.new("L", (1, 1_000_000), 128).save(tmp_path / "strip.png")
    Image.new("RGB", (1_000_000, 2), (10, 200, 30)).save(tmp_path / "wide.png")
    big = tmp_path / "bomb.png"  # 400 M pixels in 50 KB
    Image.new("1", (20_000, 20_000)).save(big)
    from helpers import png_claiming

    long = tmp_path / "long.png"  # the probe's 1 x 50,000,000 strip (its header is enough)
    long.write_bytes(png_claiming(1, 50_000_000))
    good = [write_png(tmp_path / f"good{i}.png", 30 * i) for i in range(3)]
    # the peak of this process's own memory (VmHWM, in kB): ru_maxrss would carry the
    # forking pytest process's high-water mark across exec on Linux
    code = (
        "import re, sys; from cnnzoo.cli.main import main; rc = main(sys.argv[1:]); "
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
        "print('MAXRSS', hwm, file=sys.stderr); sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    files = [str(tmp_path / "strip.png"), str(tmp_path / "wide.png"), str(big), str(long)]
    files += [str(g) for g in good]
    res = subprocess.run(
        [sys.executable, "-c", code, "predict", "-c", str(trained_run), *files, "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [r["file"] for r in out["results"]] == [files[0], files[1], *map(str, good)]
    assert [e["file"] for e in out["errors"]] == [str(big), str(long)]
    assert "above the 89,478,485 limit" in out["errors"][0]["reason"]
    assert "a side above the 1,048,576 limit" in out["errors"][1]["reason"]
    maxrss_mb = int(res.stderr.split("MAXRSS")[1].split()[0]) / 1024
    assert maxrss_mb < 1500, maxrss_mb  # python + torch + the model: ~0.5 GB


def test_predict_names_a_fifo_and_non_utf8_names(trained_run, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.jpg")
    odd = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    write_png(tmp_path / odd, 90)
    assert main(["predict", "-c", str(trained_run), str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "caf\\xe9.png" in captured.out
    assert "pipe.jpg: cannot read image" not in captured.err  # said once, without repeating
    assert "pipe.jpg: not a regular file" in captured.err
