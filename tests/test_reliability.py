"""Never losing work, in one process: a stop signal mid-epoch resumes bit-exactly, damaged
checkpoints are named and the previous state is used, a full disk or a read-only run folder is
one line with the previous state intact, and NaN/inf (loss, weights, BatchNorm statistics) stops
the run without saving anything non-finite. (Real kills of real processes: test_kills.py.)"""

from __future__ import annotations

import errno
import math
import os
import signal
from pathlib import Path

import pytest
import torch
from helpers import assert_same_run, cfg, make_bundle
from safetensors.torch import load_file

from cnnzoo.artifacts import files
from cnnzoo.artifacts import sidecar as ck_sidecar
from cnnzoo.artifacts import tensors as ck
from cnnzoo.cli.main import main
from cnnzoo.errors import CnnzooError
from cnnzoo.train import DivergedError, TrainConfig, Trainer, train

pytestmark = pytest.mark.usefixtures("one_thread")

# EMA, mixup, cutmix, label smoothing, AdamW and augmentation on, so all their state is covered
OPTS = dict(ema=0.9, mixup=0.2, cutmix=1.0, label_smoothing=0.1, opt="adamw", lr=2e-3)


@pytest.fixture(scope="module")
def bundle():
    return make_bundle(20, size=8)  # 48 training images: 8 steps of 6 per epoch


@pytest.fixture(scope="module")
def straight(bundle, tmp_path_factory):
    """An uninterrupted 2-epoch run (8 steps per epoch) to compare resumed runs with."""
    tmp = tmp_path_factory.mktemp("straight")
    return train(cfg(tmp, "run", batch_size=6, **OPTS), bundle, progress=False).run_dir


def signal_at(monkeypatch, step: int, signum=signal.SIGTERM) -> None:
    """Send `signum` to this process right after optimiser step `step`."""
    original = Trainer._train_step

    def step_then_signal(self, *a, **kw):
        stop = original(self, *a, **kw)
        if self.loop.step == step:
            os.kill(os.getpid(), signum)
        return stop

    monkeypatch.setattr(Trainer, "_train_step", step_then_signal)


def test_stop_signal_mid_epoch_saves_and_resumes_bit_identically(
    straight, bundle, tmp_path, monkeypatch
):
    run = cfg(tmp_path, "run", batch_size=6, **OPTS)
    for signum, at in ((signal.SIGTERM, 3), (signal.SIGHUP, 12)):
        signal_at(monkeypatch, at, signum)
        r = (train(run, bundle, progress=False) if at == 3
             else train(resume=tmp_path / "run", bundle=bundle, progress=False))  # fmt: skip
        monkeypatch.undo()
        assert r.interrupted == signal.Signals(signum).name
        # the handler runs between two bytecodes: the step in progress ends, then it saves
        meta = ck.read_tensors(tmp_path / "run" / "state.safetensors")[1]
        assert meta["step"] in (at, at + 1) and meta["batch"] == meta["step"] % 8 > 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers given back
    done = train(resume=tmp_path / "run", bundle=bundle, progress=False)
    assert done.interrupted is None and done.epochs_done == 2
    assert_same_run(straight, tmp_path / "run")


def test_stop_signal_from_the_command_line_prints_the_resume_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    signal_at(monkeypatch, 4, signal.SIGINT)
    code = main(["train", "--model", "resnet20", "--data", "digits", "--batch-size", "256",
                 "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 128 + signal.SIGINT
    printed = capsys.readouterr().out
    assert "stopped by SIGINT at step 5 (epoch 1/10)" in printed, printed
    assert f"continue with: cnnzoo train --resume {out}" in printed
    assert ck.read_tensors(out / "state.safetensors")[1]["step"] == 5


def test_checkpoint_every_n_steps_and_previous_state_kept(bundle, tmp_path):
    train(cfg(tmp_path, epochs=1, batch_size=6, checkpoint_every=3), bundle, stop_after=1,
          progress=False)  # fmt: skip
    state = ck.read_tensors(tmp_path / "run" / "state.safetensors")[1]
    prev = ck.read_tensors(tmp_path / "run" / "state.prev.safetensors")[1]
    # steps 3, 6 mid-epoch, then the end of the epoch (8); the one before is kept
    assert (state["step"], state["batch"]) == (8, 0) and (prev["step"], prev["batch"]) == (6, 6)


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_damaged_state_is_named_and_the_previous_one_used(straight, bundle, tmp_path, caplog):
    run = cfg(tmp_path, "run", batch_size=6, **OPTS)
    train(run, bundle, progress=False, stop_after=1)
    train(resume=tmp_path / "run", bundle=bundle, progress=False)  # epoch 2: prev = epoch 1
    state = tmp_path / "run" / "state.safetensors"
    size = state.stat().st_size
    flip_byte(state, size - 1000)  # inside a tensor: only the checksum can tell
    with pytest.raises(ck.CorruptCheckpointError, match="checksum"):
        ck.read_tensors(state)
    t = Trainer.resume(tmp_path / "run", bundle, progress=False)
    assert "state.safetensors: damaged" in caplog.text and "state.prev" in caplog.text
    assert t.loop.epoch == 1  # from the previous state: epoch 2 is trained again, exactly
    t.fit()
    assert_same_run(straight, tmp_path / "run")
    # a torn file (cut short) and a changed header are named too
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CorruptCheckpointError, match="state.safetensors"):
        ck.read_tensors(state)
    header = data.replace(b'\\"epoch\\": 2', b'\\"epoch\\": 7')
    assert header != data
    state.write_bytes(header)
    with pytest.raises(ck.CorruptCheckpointError, match="checksum"):
        ck.read_tensors(state)
    (tmp_path / "run" / "state.prev.safetensors").write_bytes(b"junk")
    with pytest.raises(CnnzooError, match="state.safetensors"):
        Trainer.resume(tmp_path / "run", bundle, progress=False)


def test_damaged_best_checkpoint_falls_back_to_last(straight, tmp_path, caplog):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(straight, run)
    flip_byte(run / "best.safetensors", (run / "best.safetensors").stat().st_size - 100)
    tensors, meta = ck_sidecar.read_checkpoint(run)
    assert "best.safetensors: damaged" in caplog.text and meta["model"] == "resnet20"
    with pytest.raises(ck.CorruptCheckpointError):
        ck_sidecar.read_checkpoint(
            run / "best.safetensors"
        )  # a file asked for by name: no guessing


def no_space(real):
    def write_half_then_fail(f, data, path):
        f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    return write_half_then_fail


def test_full_disk_is_one_line_and_the_previous_state_survives(bundle, tmp_path, monkeypatch):
    train(cfg(tmp_path, batch_size=6), bundle, stop_after=1, progress=False)
    state = tmp_path / "run" / "state.safetensors"
    before = state.read_bytes()
    monkeypatch.setattr(files, "write_bytes_to", no_space(files.write_bytes_to))
    with pytest.raises(files.WriteError) as e:
        train(resume=tmp_path / "run", bundle=bundle, progress=False)
    assert "disk is full" in str(e.value) and "intact" in str(e.value)
    assert "\n" not in str(e.value)
    assert state.read_bytes() == before
    assert [p.name for p in (tmp_path / "run").iterdir() if ".tmp" in p.name] == []


def test_full_disk_from_the_command_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    base = ["train", "--model", "resnet20", "--data", "digits", "--batch-size", "256",
            "--epochs", "2", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main([*base, "--stop-after", "1"]) == 0
    before = (out / "state.safetensors").read_bytes()
    monkeypatch.setattr(files, "write_bytes_to", no_space(files.write_bytes_to))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "disk is full" in err[0], err
    assert (out / "state.safetensors").read_bytes() == before


def test_read_only_run_folder_is_one_line(bundle, tmp_path):
    import shutil
    import tempfile

    root = os.geteuid() == 0  # root writes anywhere: the write runs as nobody
    if root:  # in a folder nobody can reach (pytest's tmp_path is private to root)
        tmp_path = Path(tempfile.mkdtemp())
        os.chmod(tmp_path, 0o755)
    train(cfg(tmp_path, batch_size=6), bundle, stop_after=1, progress=False)
    run = tmp_path / "run"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    trainer = Trainer.resume(run, bundle, progress=False)
    os.chmod(run, 0o555)
    try:
        if root:
            os.seteuid(65534)
        with pytest.raises(files.WriteError, match="read-only") as e:
            trainer.fit()
    finally:
        if root:
            os.seteuid(0)
        os.chmod(run, 0o755)
    assert "\n" not in str(e.value) and "intact" in str(e.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    if root:
        shutil.rmtree(tmp_path)


def nan_loss_at(monkeypatch, steps: set[int]) -> None:
    original = Trainer.loss

    def loss(self, *a):
        out = original(self, *a)
        return out * math.nan if self.loop.step + 1 in steps else out

    monkeypatch.setattr(Trainer, "loss", loss)


def finite(path: Path) -> bool:
    return all(torch.isfinite(v).all() for v in load_file(path).values() if v.is_floating_point())


def test_nan_loss_stops_keeps_the_last_good_state_and_resumes_with_lower_lr(
    bundle, tmp_path, monkeypatch
):
    run = cfg(tmp_path, batch_size=6, checkpoint_every=5)
    nan_loss_at(monkeypatch, {12})
    with pytest.raises(DivergedError) as e:
        train(run, bundle, progress=False)
    msg = str(e.value)
    assert "at step 12" in msg and "lr " in msg and "nan" in msg and "--resume" in msg, msg
    state = ck.read_tensors(tmp_path / "run" / "state.safetensors")[1]
    assert state["step"] == 10 and "last good state (step 10)" in msg
    assert finite(tmp_path / "run" / "state.safetensors")
    assert finite(tmp_path / "run" / "last.safetensors")
    monkeypatch.undo()
    r = train(TrainConfig(lr=0.01), resume=tmp_path / "run", bundle=bundle, progress=False)
    assert r.epochs_done == 2
    assert ck.read_tensors(tmp_path / "run" / "state.safetensors")[1]["config"]["lr"] == 0.01


def test_skip_nonfinite_tolerates_n_bad_steps(bundle, tmp_path, monkeypatch):
    nan_loss_at(monkeypatch, {3, 9})
    r = train(cfg(tmp_path, "two", batch_size=6, skip_nonfinite=2), bundle, progress=False)
    assert r.epochs_done == 2 and r.history[-1]["skipped_nonfinite"] == 2
    with pytest.raises(DivergedError, match="at step 9"):
        train(cfg(tmp_path, "one", batch_size=6, skip_nonfinite=1), bundle, progress=False)


def test_non_finite_batchnorm_statistics_are_never_saved(bundle, tmp_path, monkeypatch):
    train(cfg(tmp_path, batch_size=6), bundle, stop_after=1, progress=False)
    last = (tmp_path / "run" / "last.safetensors").read_bytes()
    original = Trainer._train_step

    def poison(self, *a):
        stop = original(self, *a)
        if self.loop.step == 10:  # what lr 5-200 did: loss finite, running_var inf
            self.setup.model.bn1.running_var.fill_(math.inf)
        return stop

    monkeypatch.setattr(Trainer, "_train_step", poison)
    with pytest.raises(DivergedError, match="BatchNorm running statistics"):
        train(resume=tmp_path / "run", bundle=bundle, progress=False)
    assert (tmp_path / "run" / "last.safetensors").read_bytes() == last
    assert finite(tmp_path / "run" / "best.safetensors")


def test_a_diverging_run_does_not_report_success(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "resnet20", "--data", "digits", "--batch-size", "256",
                 "--epochs", "2", "--lr", "500", "--out", str(out), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2 and "diverged" in captured.err and "done" not in captured.out
    for name in ("state.safetensors", "last.safetensors", "best.safetensors"):
        assert not (out / name).exists() or finite(out / name)


def test_temp_files_of_killed_writes_are_removed_on_start(bundle, tmp_path):
    train(cfg(tmp_path, batch_size=6), bundle, stop_after=1, progress=False)
    torn = tmp_path / "run" / ".state.safetensors.tmp99999"
    torn.write_bytes(b"half a file")
    keep = tmp_path / "run" / "notes.tmp1"  # not ours: left alone
    keep.write_text("mine")
    Trainer.resume(tmp_path / "run", bundle, progress=False)
    assert not torn.exists() and keep.exists()


def test_accumulated_micro_batches_give_the_same_step(bundle, tmp_path):
    """--accum-steps 3 splits each batch of 6 into 3 micro-batches: with BatchNorm frozen (the
    one thing that sees the batch as a whole; backbone lr 0 freezes it, and only the head
    learns) the weights equal those of whole batches."""
    opts = dict(batch_size=6, epochs=1, backbone_lr_scale=0.0, augment="none", hflip=False)
    whole = train(cfg(tmp_path, "whole", **opts), bundle, progress=False)
    parts = train(cfg(tmp_path, "parts", accum_steps=3, **opts), bundle, progress=False)
    a = load_file(whole.run_dir / "last.safetensors")
    b = load_file(parts.run_dir / "last.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()) < 1e-5
    assert whole.history[0]["train_loss"] == pytest.approx(parts.history[0]["train_loss"], 1e-5)
    with pytest.raises(CnnzooError, match="multiple of 4"):
        train(cfg(tmp_path, "odd", batch_size=6, accum_steps=4), bundle, progress=False)
