"""Fast-training rules: recipes scale with the run, a run stuck at chance says so, the thread
rule (one per idle core) lives in the engine for the CLI and Python alike, and --amp measures
before it picks bf16 and records its choice."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from helpers import cfg, make_bundle

from cnnzoo.cli.main import build_parser
from cnnzoo.errors import CnnzooError
from cnnzoo.train import TrainConfig, Trainer, resolve_config, train
from cnnzoo.train import precision as prec
from cnnzoo.train import threads as th
from cnnzoo.train.config import progressive_size

pytestmark = pytest.mark.usefixtures("one_thread")


def test_warmup_is_a_share_of_the_run():
    def warmup(**kw):
        return resolve_config(TrainConfig(model="resnet18", data="x", **kw), 160).warmup_epochs

    assert warmup() == 2.0  # large recipe, 40 epochs: as before
    assert warmup(epochs=5) == 0.25  # not 2 of 5 (40% of a short run)
    assert warmup(epochs=3, warmup_epochs=1.5) == 1.5  # asked for: kept
    small = resolve_config(TrainConfig(model="resnet20", data="x", epochs=3), 32)
    assert small.warmup_epochs == 0.1


def test_a_run_at_chance_says_so_and_a_learning_run_does_not(tmp_path, caplog):
    bundle = make_bundle()
    shuffled = torch.randperm(len(bundle.train.labels), generator=torch.Generator().manual_seed(1))
    bundle.train.labels = bundle.train.labels[shuffled]  # labels that cannot be learnt
    with caplog.at_level(logging.WARNING, logger="cnnzoo"):
        train(cfg(tmp_path, "stuck", lr=1e-7, epochs=2), bundle, progress=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "chance level (ln 3" in warnings[0], warnings

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cnnzoo"):
        r = train(cfg(tmp_path, "learns", epochs=3, batch_size=16), make_bundle(), progress=False)
    assert r.history[-1]["val_loss"] < 0.9 * math.log(3)
    assert not [r for r in caplog.records if "chance" in r.getMessage()]


def test_threads_follow_the_idle_cores():
    assert th.pick_threads(2, 1.9) == 2  # alone: one per core
    assert th.pick_threads(2, 1.0) == 1  # one core busy elsewhere
    assert th.pick_threads(2, 0.0) == 1  # never fewer than one
    assert th.pick_threads(4, 7.0) == 4  # never more than the usable cores
    assert th.pick_threads(3, None) == 3  # load unknown: all of them


def test_idle_cores_reads_the_cpu_counters(monkeypatch):
    import cnnzoo.infer.machine as machine  # the rule's home: engines and training share it

    readings = iter([(100.0, 400.0), (150.0, 600.0)])  # 50 of 200 jiffies idle
    monkeypatch.setattr(machine, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 4)
    assert th.idle_cores(sample_s=0) == pytest.approx(1.0)


def test_thread_policy_is_the_engines_for_cli_and_python(tmp_path, monkeypatch):
    """`--threads` is the TrainConfig field; a run from Python picks its threads by the same
    rule at each epoch and leaves torch's thread count as it found it."""
    args = build_parser().parse_args(["train", "--model", "m", "--data", "d", "--threads", "3"])
    assert args.threads == 3
    seen = []
    monkeypatch.setattr(th, "idle_cores", lambda sample_s=th.SAMPLE_S: 0.4)  # the others busy
    monkeypatch.setattr(th, "usable_cpus", lambda: 2)
    real_set = torch.set_num_threads
    monkeypatch.setattr(th.torch, "set_num_threads", lambda n: (seen.append(n), real_set(n)))
    before = torch.get_num_threads()
    train(cfg(tmp_path, threads=None, epochs=2), make_bundle(n_per_class=14), progress=False)
    assert seen == [1, 1, before] and torch.get_num_threads() == before  # per epoch, restored
    with pytest.raises(CnnzooError, match="--threads must be at least 1"):
        train(cfg(tmp_path, "bad", threads=0), make_bundle(n_per_class=4), progress=False)


def test_amp_choice_is_measured_on_the_cpu(monkeypatch):
    x = torch.randn(2, 3, 8, 8)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3)
    )
    model(x)
    fp32, bf16 = prec.measure_bf16_gain(model, x, 3, rounds=1)  # the real timing runs
    assert fp32 > 0 and bf16 > 0
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: False)
    assert prec.choose_precision(model, x, 3)[0] == "fp32"
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(prec, "measure_bf16_gain", lambda *a: (1.0, 0.4))
    choice, why = prec.choose_precision(model, x, 3)
    assert choice == "bf16" and "2.5x" in why
    monkeypatch.setattr(prec, "measure_bf16_gain", lambda *a: (1.0, 0.95))
    assert prec.choose_precision(model, x, 3)[0] == "fp32"


def test_amp_choice_is_said_recorded_and_kept_on_resume(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(prec, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(prec, "measure_bf16_gain", lambda *a: (2.0, 1.0))
    bundle = make_bundle(n_per_class=14)
    with caplog.at_level(logging.INFO, logger="cnnzoo"):
        r = train(cfg(tmp_path, amp=True), bundle, stop_after=1, progress=False)
    assert any("--amp: bf16 autocast" in rec.getMessage() for rec in caplog.records)
    assert json.loads((r.run_dir / "config.json").read_text())["precision"] == "bf16"
    assert json.loads((r.run_dir / "last.json").read_text())["recipe"]["precision"] == "bf16"

    def no_second_measurement(*a):
        raise AssertionError("a resumed run keeps its recorded precision")

    monkeypatch.setattr(prec, "measure_bf16_gain", no_second_measurement)
    resumed = Trainer.resume(r.run_dir, bundle, progress=False)
    assert resumed.amp_dtype == torch.bfloat16
    plain = Trainer(cfg(tmp_path, "plain"), bundle, progress=False)
    assert plain.cfg.precision == "fp32" and plain.amp_dtype is None
    with pytest.raises(CnnzooError, match="fp16 needs a CUDA GPU"):
        Trainer(cfg(tmp_path, "fp16", precision="fp16"), bundle, progress=False)


def test_crop_scale_sets_the_smallest_random_resized_crop(tmp_path):
    args = build_parser().parse_args(
        ["train", "--model", "m", "--data", "d", "--crop-scale", ".35"]
    )
    assert args.crop_scale == 0.35
    bundle = make_bundle(n_per_class=14)  # every class needs a held-out image
    t = Trainer(cfg(tmp_path, augment="standard", crop_scale=0.35), bundle, progress=False)
    assert t.setup.aug.crop == "random-resized" and t.setup.aug.scale == (0.35, 1.0)
    default = Trainer(cfg(tmp_path, "default", augment="standard"), bundle, progress=False)
    assert default.setup.aug.scale == (0.08, 1.0)
    with pytest.raises(CnnzooError, match="--crop-scale"):
        Trainer(cfg(tmp_path, "bad", crop_scale=0.0), bundle, progress=False)


def test_progressive_size_grows_linearly_in_multiples_of_8():
    assert [progressive_size(e, 5, 96, 128) for e in range(5)] == [96, 104, 112, 120, 128]
    assert [progressive_size(e, 3, 64, 64) for e in range(3)] == [64, 64, 64]
    assert progressive_size(0, 1, 96, 128) == 128  # a one-epoch run trains at full size


def _record_input_sides(trainer: Trainer) -> list[tuple[bool, int]]:
    seen: list[tuple[bool, int]] = []
    trainer.setup.model.register_forward_pre_hook(
        lambda m, args: seen.append((m.training, args[0].shape[-1]))
    )
    return seen


def test_progressive_resizing_trains_small_first_and_resumes_exactly(tmp_path):
    bundle = make_bundle(n_per_class=14, size=32)
    run = dict(augment="standard", progressive=16, epochs=3, batch_size=16)
    whole = Trainer(cfg(tmp_path, "whole", **run), bundle, progress=False)
    seen = _record_input_sides(whole)
    result = whole.fit()
    train_sides = [side for training, side in seen if training]
    steps = whole.steps_per_epoch
    assert train_sides == [16] * steps + [24] * steps + [32] * steps
    assert {side for training, side in seen if not training} == {32}  # validation at full size
    assert [h["train_size"] for h in result.history] == [16, 24, 32]
    # stopped after epoch 1 and resumed: the sizes follow the epoch, the weights are the same
    first = train(cfg(tmp_path, "split", **run), bundle, stop_after=1, progress=False)
    resumed = Trainer.resume(first.run_dir, bundle, progress=False)
    seen = _record_input_sides(resumed)
    resumed.fit()
    assert [side for training, side in seen if training] == [24] * steps + [32] * steps
    resumed_state = resumed.setup.model.state_dict()
    for name, a in whole.setup.model.state_dict().items():
        assert torch.equal(a, resumed_state[name]), name


def test_progressive_needs_random_resized_crops_and_a_smaller_start(tmp_path):
    bundle = make_bundle(n_per_class=14, size=32)
    with pytest.raises(CnnzooError, match="--progressive needs random-resized crops"):
        Trainer(cfg(tmp_path, "light", progressive=16), bundle, progress=False)
    with pytest.raises(CnnzooError, match="--progressive 48 is above --image-size 32"):
        Trainer(cfg(tmp_path, "big", augment="standard", progressive=48), bundle, progress=False)
