"""A run folder has one owner: the second of two concurrent resumes is refused in one line
naming the first one's pid, with nothing in the folder changed, and the first ends
bit-identical to a run that was never stopped; a holder killed with SIGKILL frees the folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_same_run

from cnnzoo.artifacts.lock import FolderBusy, hold_folder, holder_pid, release_folder
from cnnzoo.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--model", "resnet20", "--data", "digits", "--epochs", "2", "--no-progress"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


def wait_for_holder(folder: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    end = time.monotonic() + limit
    while holder_pid(folder) != proc.pid:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the first resume never took the folder"
        time.sleep(0.05)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_in_process_holds_are_reentrant_and_another_process_is_refused(tmp_path):
    hold_folder(tmp_path)
    hold_folder(tmp_path)  # the same process again (a run resumed in-process)
    code = f"from cnnzoo.artifacts.lock import hold_folder; hold_folder({str(tmp_path)!r})"
    out = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True)
    assert out.returncode == 1 and f"(pid {os.getpid()})" in out.stderr
    release_folder(tmp_path)
    release_folder(tmp_path)
    assert subprocess.run([sys.executable, "-c", code], env=env()).returncode == 0
    assert list(tmp_path.iterdir()) == []  # taking the lock writes nothing


def test_two_concurrent_resumes_one_refused_the_other_bit_identical(tmp_path, capsys):
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert main([*TRAIN, "--out", str(straight)]) == 0
    assert main([*TRAIN, "--out", str(run), "--stop-after", "1"]) == 0
    first = subprocess.Popen(  # pauses 0.5 s in each checkpoint write: it holds the folder
        [sys.executable, str(ROOT / "tests" / "slow_write.py"), "0.5", "train", "--resume",
         str(run), "--no-progress"],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_holder(run, first)
        before = files_of(run)
        capsys.readouterr()
        assert main(["train", "--resume", str(run), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"in use by another cnnzoo process (pid {first.pid})" in err, err
        assert len(err.splitlines()) == 1
        assert files_of(run) == before  # the refused one touched nothing
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert_same_run(straight, run)


def test_a_killed_holder_frees_the_folder(tmp_path):
    code = (
        f"import time; from cnnzoo.artifacts.lock import hold_folder; "
        f"hold_folder({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], env=env(), stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(FolderBusy, match=f"pid {holder.pid}"):
            hold_folder(tmp_path)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        hold_folder(tmp_path)  # the kernel released it
        release_folder(tmp_path)
    finally:
        if holder.poll() is None:
            holder.kill()
