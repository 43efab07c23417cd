"""Real kills of real `cnnzoo train` processes: SIGTERM, SIGKILL at random moments and SIGKILL
while a checkpoint is half-written, each followed by `--resume`, end with weights bit-identical
to a run that was never stopped; the same for a 2-process (gloo, CPU) DistributedDataParallel
run, which also matches one process with the same global batch.

CNNZOO_KILLS=N raises the number of random SIGKILLs (1 by default; docs/reliability.md quotes a
longer run)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from safetensors import safe_open
from safetensors.torch import load_file

from cnnzoo.artifacts.tensors import read_tensors
from cnnzoo.cli.main import main
from cnnzoo.train.distributed import descendants

pytestmark = pytest.mark.usefixtures("one_thread")

KILLS = int(os.environ.get("CNNZOO_KILLS", "1"))
# 2 epochs of 25 steps (batch 64 of 1,618 digits); flips, pad-crop and EMA put state in the
# augmentation RNG and the EMA weights too
RUN = ["--model", "resnet20", "--data", "digits", "--epochs", "2", "--batch-size", "64",
       "--augment", "light", "--ema", "0.9", "--no-progress"]  # fmt: skip


def cnnzoo(*args: str, env: dict | None = None, slow_write: float = 0) -> subprocess.Popen:
    """`python -m cnnzoo ARGS` from this checkout's source, one thread, in its own session
    (so a kill reaches torchrun's workers too); `slow_write`: seconds each checkpoint write
    pauses half-way (tests/slow_write.py patches the writer)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "slow_write.py"), str(slow_write), *args]
        if slow_write
        else [sys.executable, "-m", "cnnzoo", *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def saved_step(run: Path) -> int:
    """The step of the state on disk (-1 when there is none yet)."""
    try:
        with safe_open(str(run / "state.safetensors"), "pt") as f:
            return int(json.loads(f.metadata()["cnnzoo"])["step"])
    except Exception:  # not written yet, or replaced while reading
        return -1


def wait_for(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before the kill:\n{err[-2000:]}")
        assert time.monotonic() < end, "timed out waiting for the run"
        time.sleep(0.02)


def kill(proc: subprocess.Popen, signum=signal.SIGKILL) -> tuple[int, str, str]:
    """`signum` to the process; a SIGKILL also to every process it started, as when the
    machine goes down."""
    targets = descendants(proc.pid) if signum == signal.SIGKILL else []
    os.killpg(proc.pid, signum)
    for pid in targets:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


def weights(run: Path) -> dict[str, torch.Tensor]:
    out = {f"last/{k}": v for k, v in load_file(run / "last.safetensors").items()}
    out.update({f"state/{k}": v for k, v in load_file(run / "state.safetensors").items()})
    return out


def differing_bytes(a: Path, b: Path) -> tuple[int, int]:
    """Bytes of weights, optimiser and EMA state, RNG states... that differ between two runs,
    and how many were compared."""
    ta, tb = weights(a), weights(b)
    assert ta.keys() == tb.keys()
    differ = compared = 0
    for k in ta:
        x, y = ta[k].reshape(-1).view(torch.uint8), tb[k].reshape(-1).view(torch.uint8)
        differ += int((x != y).sum()) if x.shape == y.shape else max(x.numel(), y.numel())
        compared += x.numel()
    return differ, compared


def history(run: Path) -> list[dict]:
    skip = {"images_per_s", "epoch_time"}
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("straight") / "run"
    assert main(["train", *RUN, "--out", str(run)]) == 0
    return run


def test_killed_at_random_moments_resumes_bit_identically(straight, tmp_path):
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    run = tmp_path / "run"
    log = []
    # 1. SIGKILL at a random step, then at random moments after more progress
    first = rng.randint(2, 20)
    proc = cnnzoo("train", *RUN, "--out", str(run), "--checkpoint-every", "1")
    wait_for(proc, lambda: saved_step(run) >= first)
    for i in range(KILLS):
        if i:
            proc = cnnzoo("train", "--resume", str(run))
            last = saved_step(run)
            wait_for(proc, lambda last=last: saved_step(run) > last)
        time.sleep(rng.uniform(0, 0.4))
        kill(proc)
        log.append(("SIGKILL", saved_step(run)))
    # 2. SIGKILL while the state is half-written (the test hook pauses mid-write)
    proc = cnnzoo("train", "--resume", str(run), slow_write=5)
    before = saved_step(run)
    torn = run / f".state.safetensors.tmp{proc.pid}"  # (a random kill may have left others)
    wait_for(proc, torn.exists)
    kill(proc)
    # the torn copy is a temp file, half of a state; the state itself is whole
    assert 0 < torn.stat().st_size < (run / "state.safetensors").stat().st_size
    assert saved_step(run) == before
    log.append(("SIGKILL mid-write", before))
    out = finish(cnnzoo("train", "--resume", str(run)))
    assert "done:" in out
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]  # torn files cleaned up
    differ, compared = differing_bytes(straight, run)
    assert differ == 0, (seed, log)
    assert history(straight) == history(run), (seed, log)
    print(f"kills survived (seed {seed}): {log}; {compared:,} bytes compared, {differ} differ")


def torchrun_env_ranks(world: int, *args: str) -> list[subprocess.Popen]:
    """`world` processes of `python -m cnnzoo ARGS` with the environment torchrun gives its
    workers (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}  # fmt: skip
    return [cnnzoo(*args, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(world)]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """An uninterrupted 2-process run, launched with --nproc (torchrun), SyncBatchNorm on."""
    run = tmp_path_factory.mktemp("ddp") / "run"
    out = finish(cnnzoo("train", *DDP_RUN, "--out", str(run), "--nproc", "2"))
    assert "done:" in out
    return run


# 12 steps of 128 images: 64 per process
DDP_RUN = ["--model", "resnet20", "--data", "digits", "--epochs", "2", "--batch-size", "128",
           "--no-progress", "--sync-bn", "--checkpoint-every", "2"]  # fmt: skip


def test_two_processes_give_the_weights_of_one(two_processes, tmp_path):
    one = tmp_path / "one"
    single = [a for a in DDP_RUN if a != "--sync-bn"]
    assert main(["train", *single, "--out", str(one)]) == 0
    a, b = load_file(one / "last.safetensors"), load_file(two_processes / "last.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())
    assert worst < 1e-4, worst
    h1, h2 = history(one), history(two_processes)
    # the same images right (one of the 179 is 0.56%)
    assert [r["val_acc"] for r in h1] == pytest.approx([r["val_acc"] for r in h2], abs=1e-4)
    assert [r["train_loss"] for r in h1] == pytest.approx([r["train_loss"] for r in h2], 1e-5)
    meta = read_tensors(two_processes / "state.safetensors")[1]
    assert meta["world_size"] == 2 and meta["config"]["sync_bn"]


def test_two_processes_killed_and_resumed_end_like_uninterrupted(two_processes, tmp_path):
    """SIGKILL to torchrun and both workers, as when the machine goes down, then a resume
    started the way torchrun starts its workers (its environment variables)."""
    run = tmp_path / "run"
    proc = cnnzoo("train", *DDP_RUN, "--out", str(run), "--nproc", "2")
    wait_for(proc, lambda: saved_step(run) >= 4)  # mid-epoch 1 of 2 (12 steps each)
    kill(proc)
    assert 4 <= saved_step(run) < 24
    ranks = torchrun_env_ranks(2, "train", "--resume", str(run))
    assert "done:" in finish(ranks[0]) and finish(ranks[1]) == ""  # rank 0 speaks
    assert differing_bytes(two_processes, run)[0] == 0
    assert history(two_processes) == history(run)


def test_the_launcher_hands_stop_signals_to_the_workers(tmp_path):
    """`cnnzoo train --nproc` runs torchrun in its own session and gives SIGTERM to the
    workers, not to torchrun (which answers with a traceback): here a stand-in for torchrun
    starts one worker in a session of its own, as torchrun does, and reports what it got."""
    worker = (
        "import signal, sys, time, pathlib\n"
        f"out = pathlib.Path({str(tmp_path / 'got')!r})\n"
        "signal.signal(signal.SIGTERM, lambda *a: (out.write_text('SIGTERM'), sys.exit(0)))\n"
        f"pathlib.Path({str(tmp_path / 'ready')!r}).touch()\n"
        "time.sleep(60)\n"
    )
    launcher = (
        "import subprocess, sys\n"
        f"sys.exit(subprocess.call([sys.executable, '-c', {worker!r}], start_new_session=True))"
    )
    import threading

    from cnnzoo.train.distributed import run_forwarding_signals

    def send_when_ready():
        end = time.monotonic() + 30
        while not (tmp_path / "ready").exists() and time.monotonic() < end:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send_when_ready, daemon=True).start()
    code = run_forwarding_signals([sys.executable, "-c", launcher])
    assert code == 128 + signal.SIGTERM
    assert (tmp_path / "got").read_text() == "SIGTERM"
