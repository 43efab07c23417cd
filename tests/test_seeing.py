"""What a person sees: cnnzoo --version, the data's own mean / std and the imbalance warning in
`cnnzoo data`, predict with the checkpoint first and labelled pictures (true class green or
red, small images enlarged without blur), curves and confusion figures that say what they
show, and the per-epoch line printed by `engine.train` from Python."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from helpers import CLASSES, make_images
from PIL import Image

from cnnzoo import __version__
from cnnzoo.cli.main import main
from cnnzoo.data.stats import channel_stats
from cnnzoo.insight.annotate import GREEN, RED
from cnnzoo.insight.plots import confusion_figure, curves_figure

pytestmark = pytest.mark.usefixtures("one_thread")


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"cnnzoo {__version__}"


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory):
    """A folder of 16 px pattern images: 36 horizontal, 6 vertical, 6 checker (6:1)."""
    root = tmp_path_factory.mktemp("lopsided") / "data"
    x, y = make_images(36, 16, seed=3)
    kept = {0: 36, 1: 6, 2: 6}
    seen = dict.fromkeys(kept, 0)
    for i, (img, label) in enumerate(zip(x, y.tolist(), strict=True)):
        if seen[label] < kept[label]:
            seen[label] += 1
            path = root / CLASSES[label] / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    return root


def test_data_prints_its_own_statistics_and_warns_on_imbalance(lopsided, capsys):
    from cnnzoo.data import load_data

    assert main(["data", str(lopsided), "--val-split", "0"]) == 0
    out = capsys.readouterr().out
    mean, std = channel_stats(load_data(str(lopsided), val_split=0.0, progress=False).train.images)
    assert "mean      " + " ".join(f"{m:.4f}" for m in mean) in out
    assert "std       " + " ".join(f"{s:.4f}" for s in std) in out
    assert "0.4850 0.4560 0.4060" in out  # ImageNet's, said to be what training uses
    assert re.search(r"warning: imbalanced classes: horizontal has 36 .* checker 6 \(6\.0x\)", out)


def test_predict_takes_the_checkpoint_first_and_labels_pictures(lopsided, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--model", "resnet20", "--data", str(lopsided), "--out", str(run),
            "--epochs", "1", "--batch-size", "16", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    vis = tmp_path / "vis"
    query = str(lopsided / "horizontal")
    capsys.readouterr()
    assert main(["predict", str(run), query, "--save-vis", str(vis), "--topk", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["file", "top-1", "top-2"] and len(table) == 37
    files = sorted(Path(query).iterdir())
    for line, pic in zip(table[1:], sorted(vis.iterdir()), strict=True):
        right = line.split()[1] == "horizontal"
        with Image.open(pic) as im:
            arr = np.asarray(im.convert("RGB"))
        assert arr.shape[:2] == (224, 224)  # 16 px x 14: readable, a whole factor
        colours = {tuple(c) for c in arr[: arr.shape[0] // 3].reshape(-1, 3)}
        assert (GREEN if right else RED) in colours and (RED if right else GREEN) not in colours
        # no blur: away from the text, each source pixel is a flat 14 x 14 block
        src = np.asarray(Image.open(files[int(pic.name[:5])]).convert("RGB"))
        assert np.array_equal(arr[14 * 12 :: 14, 14 * 12 :: 14], src[12:, 12:])
    # --checkpoint still works, and a first path that is no checkpoint says what is missing
    assert main(["predict", "--checkpoint", str(run), str(files[0])]) == 0
    assert main(["predict", str(files[0])]) == 2
    assert "which checkpoint" in capsys.readouterr().err


def test_curves_say_what_they_show():
    history = [
        {"epoch": e, "lr": 0.1 / e, "train_loss": 2 / e, "train_acc": 30 + 10 * e,
         "val_loss": 2.2 / e, "val_acc": 25 + 12 * e, "is_best": True}
        for e in range(1, 4)
    ]  # fmt: skip
    fig = curves_figure(history, "resnet20 on digits: best val acc 61.00% (epoch 3)")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [
        "loss",
        "top-1 accuracy",
        "learning rate (last step)",
    ]
    assert "best val acc 61.00%" in fig._suptitle.get_text()
    for ax in axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert list(axes[2].lines[0].get_ydata()) == [r["lr"] for r in history]


def test_curves_name_the_training_crop_where_it_changes():
    sizes = [64, 64, 96, 128]  # --progressive: the side may stay for several epochs
    history = [
        {"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_acc": 20.0 + e, "train_size": size}
        for e, size in enumerate(sizes, 1)
    ]
    acc = curves_figure(history).axes[1]
    assert list(acc.get_xticks()) == [1, 3, 4]
    assert [t.get_text() for t in acc.get_xticklabels()] == ["1\n64px", "3\n96px", "4\n128px"]
    plain = [{k: v for k, v in r.items() if k != "train_size"} for r in history]
    assert all("px" not in t.get_text() for t in curves_figure(plain).axes[1].get_xticklabels())


def test_confusion_figures_are_titled_and_their_colour_bar_labelled():
    conf = [[8, 2], [1, 9]]
    norm = confusion_figure(conf, ["a", "b"], "resnet20 on x val: top-1 85.00%", normalise=True)
    raw = confusion_figure(conf, ["a", "b"], "t", normalise=False)
    assert norm.axes[0].get_title() == "resnet20 on x val: top-1 85.00%"
    assert "fraction" in norm.axes[1].get_ylabel() and raw.axes[1].get_ylabel() == "images"
    assert {t.get_text() for t in norm.axes[0].texts} == {"0.80", "0.20", "0.10", "0.90"}
    assert {t.get_text() for t in raw.axes[0].texts} == {"8", "2", "1", "9"}


def test_engine_train_prints_the_epoch_line_from_python(tmp_path, monkeypatch, capsys):
    import logging

    from helpers import cfg, make_bundle

    from cnnzoo.train import train

    # as in a plain Python session: no handler anywhere (pytest's own are set aside)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    log = logging.getLogger("cnnzoo")
    monkeypatch.setattr(log, "handlers", [])
    level = log.level
    try:
        train(cfg(tmp_path, epochs=1), make_bundle(14), progress=False)
    finally:
        log.setLevel(level)
    err = capsys.readouterr().err
    assert re.search(r"^training resnet20 on patterns", err, re.M), err
    assert re.search(r"^epoch 1/1  lr \S+  train loss [\d.]+ acc [\d.]+%  val loss .*$", err, re.M)
