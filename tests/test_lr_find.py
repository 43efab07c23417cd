"""The learning-rate range test: on digits its suggestion trains faster than 100x less and
does not blow up like 100x more; it leaves the model, optimiser and generators as they were;
`train --lr auto` uses it and records it; `cnnzoo lr-find` plots it."""

from __future__ import annotations

import json
import math
import shlex

import pytest
import torch
from conftest import DATASETS, missing
from helpers import cifar_jpegs

from cnnzoo.cli.main import main
from cnnzoo.errors import CnnzooError
from cnnzoo.train import TrainConfig, Trainer
from cnnzoo.train.lr_find import find_lr

pytestmark = pytest.mark.usefixtures("one_thread")


def digits_cfg(tmp_path, name, **kw) -> TrainConfig:
    base = dict(model="resnet20", data="digits", out=str(tmp_path / name), epochs=1,
                device="cpu", seed=0)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def first_epoch_loss(tmp_path, name: str, lr: float) -> float:
    """Mean training loss over one epoch of digits at a constant lr (no warm-up)."""
    cfg = digits_cfg(tmp_path, name, lr=lr, sched="constant", warmup_epochs=0)
    try:
        return Trainer(cfg, progress=False).train_one_epoch()["train_loss"]
    except CnnzooError:  # the trainer refuses a loss that became inf / nan
        return math.inf


@pytest.fixture(scope="module")
def suggestion(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lrfind")
    trainer = Trainer(digits_cfg(tmp, "find"), progress=False)
    return find_lr(trainer, steps=100).suggestion


def test_the_suggestion_trains_faster_than_less_and_is_stable_unlike_more(tmp_path, suggestion):
    assert 1e-4 < suggestion < 2
    at = first_epoch_loss(tmp_path, "at", suggestion)
    less = first_epoch_loss(tmp_path, "less", suggestion / 100)
    more = first_epoch_loss(tmp_path, "more", suggestion * 100)
    assert at < 0.75 * less, (at, less)  # learns: 100x less barely moves from ln(10) = 2.30
    print(f"suggestion {suggestion:.3g}: loss {at:.3f}; 100x less {less:.3f}; 100x more {more:.3f}")
    assert not math.isfinite(more) or more > max(1.5 * at, math.log(10) * 0.9), (at, more)


def test_the_range_test_changes_nothing(tmp_path):
    trainer = Trainer(digits_cfg(tmp_path, "keep", epochs=2), progress=False)
    trainer.train_one_epoch()  # momentum buffers and BN statistics that are not the initial ones
    model = {k: v.clone() for k, v in trainer.setup.model.state_dict().items()}
    opt = trainer.optimizer.state_dict()
    momentum = {i: s["momentum_buffer"].clone() for i, s in opt["state"].items()}
    lrs = [g["lr"] for g in trainer.optimizer.param_groups]
    gens = (trainer.gen.get_state(), trainer.aug_gen.get_state(), torch.get_rng_state())
    result = find_lr(trainer, steps=30, end_lr=100.0)
    assert len(result.lrs) >= 5
    for k, v in trainer.setup.model.state_dict().items():
        assert torch.equal(v, model[k]), k
    after = trainer.optimizer.state_dict()["state"]
    assert after.keys() == momentum.keys()
    assert all(torch.equal(after[i]["momentum_buffer"], m) for i, m in momentum.items())
    assert [g["lr"] for g in trainer.optimizer.param_groups] == lrs
    now = (trainer.gen.get_state(), trainer.aug_gen.get_state(), torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(gens, now, strict=True))


def test_lr_auto_trains_with_the_suggestion_and_records_it(tmp_path, monkeypatch):
    from helpers import cfg, make_bundle

    from cnnzoo.train import lr_find

    monkeypatch.setattr(lr_find, "AUTO_STEPS", 40)
    trainer = Trainer(cfg(tmp_path, "auto", lr="auto", epochs=1), make_bundle(20), progress=False)
    assert isinstance(trainer.cfg.lr, float) and trainer.cfg.lr == trainer.lr_find["suggestion"]
    assert trainer.lr_find["steps"] <= 40
    trainer.fit()
    sidecar = json.loads((tmp_path / "auto" / "best.json").read_text())
    assert sidecar["recipe"]["lr"] == trainer.cfg.lr
    assert sidecar["lr_find"]["suggestion"] == trainer.cfg.lr
    assert (tmp_path / "auto" / "lr_find.png").is_file()


def test_lr_find_command_prints_and_plots(tmp_path, capsys):
    out = tmp_path / "lr.png"
    args = ["lr-find", "--model", "resnet20", "--data", "digits", "--steps", "40",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    suggested = float(printed.split("suggested lr: ")[1].split()[0])
    saved = json.loads(out.with_suffix(".json").read_text())
    assert math.isclose(saved["suggestion"], suggested, rel_tol=1e-2)
    assert out.stat().st_size > 10_000
    assert main(["lr-find", "--model", "resnet20", "--data", "digits", "--out", "x.txt"]) == 2


def test_lr_find_is_bounded_by_the_data_and_its_hint_keeps_every_option(tmp_path, capsys):
    """On a small folder of real photos (CIFAR-10 JPEGs; 8 steps an epoch) the test runs 100
    steps, not 200; its `next:` line repeats the options it measured with (spelt as given,
    its own left out) and runs as it is."""
    archive = DATASETS / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        missing(f"{archive} not found (set CNNZOO_DATASETS)")
    photos = cifar_jpegs(archive, tmp_path / "photos", ("airplane", "frog"),
                         {"train": ("train", 0, 40), "val": ("test", 0, 10)})  # fmt: skip
    out = tmp_path / "lr.png"
    args = ["lr-find", "--model", "resnet20", "--data", str(photos), "--image-size", "24",
            "--batch-size", "10", "--opt", "adamw", "--start-lr=1e-6", "--out", str(out),
            "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("100 steps") or "diverged" in printed.splitlines()[0]
    assert len(json.loads(out.with_suffix(".json").read_text())["lrs"]) <= 100
    hint = next(x for x in printed.splitlines() if x.startswith("next: "))[len("next: ") :]
    words = shlex.split(hint)
    assert words[:2] == ["cnnzoo", "train"] and words[-2] == "--lr"
    for option in ("--image-size 24", "--batch-size 10", "--opt adamw", "--threads 1",
                   f"--data {photos}"):  # fmt: skip
        assert option in hint, option
    assert not any(w.startswith(("--out", "--start-lr", "--no-progress", "--steps")) for w in words)
    run = tmp_path / "run"
    assert main([*words[1:], "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    sidecar = json.loads((run / "best.json").read_text())
    assert sidecar["input_size"] == 24 and sidecar["recipe"]["batch_size"] == 10
    assert math.isclose(sidecar["recipe"]["lr"], float(words[-1]))
