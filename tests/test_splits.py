"""Splits mean what users think (issue 26): val/ (or valid/, validation/) picks the best
checkpoint; test/ is scored once, at the end, with the picked checkpoint, and never used for
selection; with train/ and test/ only, --val-split of train is held out and said so. On a
small folder of real photos (CIFAR-10 JPEGs)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import DATASETS, missing
from helpers import cifar_jpegs

from cnnzoo.cli.main import main

CLASSES = ("airplane", "automobile", "frog")
COMMON = ["--model", "resnet20", "--image-size", "32", "--epochs", "3", "--batch-size", "16",
          "--lr", "0.05", "--device", "cpu", "--threads", "1", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    archive = DATASETS / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        missing(f"{archive} not found (set CNNZOO_DATASETS)")
    root = tmp_path_factory.mktemp("splits")
    cifar_jpegs(archive, root / "tt", CLASSES, {"train": ("train", 0, 40), "test": ("test", 0, 15)})
    cifar_jpegs(archive, root / "kaggle", CLASSES, {
        "train": ("train", 0, 40), "valid": ("test", 20, 10), "test": ("test", 0, 15),
    })  # fmt: skip
    return root


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_and_test_hold_out_val_and_score_test_once(photos, tmp_path, caplog, capsys):
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="cnnzoo"):
        code = main(["train", "--data", str(photos / "tt"), "--val-split", "0.2",
                     "--out", str(run), *COMMON])  # fmt: skip
    assert code == 0
    header = next(r.message for r in caplog.records if r.message.startswith("training "))
    assert "96 train images, 24 held-out 20% of train (--val-split) to pick" in header
    assert "45 test scored once at the end" in header
    rows = _rows(run)
    # every epoch is validated on the held-out part; only the end knows the test score
    assert all(r["val_acc"] is not None for r in rows)
    assert all("test_acc" not in r for r in rows[:-1])
    last = rows[-1]
    assert last["test_images"] == 45 and 0 <= last["test_acc"] <= 100
    picked = max(rows, key=lambda r: r["val_acc"])["epoch"]  # the first of equal bests
    assert last["test_epoch"] == picked
    sidecar = json.loads((run / "best.json").read_text())
    assert sidecar["test"]["test_acc"] == last["test_acc"] and sidecar["epoch"] == picked
    assert sidecar["data"]["val_name"] == "held-out 20% of train"
    assert f"test acc {last['test_acc']:.2f}% (45 images" in capsys.readouterr().out

    # eval: --split test scores test/, the default the held-out part, as the run did
    assert main(["eval", str(run), "--split", "test", "--no-progress", "--precision", "fp32"]) == 0
    report = json.loads((run / "eval-tt-test.json").read_text())
    assert report["n"] == 45 and abs(report["top1"] - last["test_acc"]) < 1e-6
    assert main(["eval", str(run), "--no-progress", "--precision", "fp32"]) == 0
    report = json.loads((run / "eval-tt-val.json").read_text())
    assert report["n"] == 24 and report["split_name"] == "held-out 20% of train"


def test_a_valid_folder_picks_the_checkpoint(photos, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="cnnzoo"):
        assert main(["train", "--data", str(photos / "kaggle"), "--out", str(run), *COMMON]) == 0
    header = next(r.message for r in caplog.records if r.message.startswith("training "))
    assert "120 train images, 30 valid to pick the best epoch, 45 test" in header
    last = _rows(run)[-1]
    assert last["test_images"] == 45
    assert json.loads((run / "best.json").read_text())["data"]["val_name"] == "valid"
