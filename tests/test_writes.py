"""The one file writer: every output refuses a device, FIFO, socket or folder, a run's own
checkpoint and state files and a suffix that does not fit its format; stale temp files of its
own pattern are removed; a failed write (full disk) is one line with nothing left behind."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from cnnzoo.artifacts import files
from cnnzoo.artifacts.sidecar import (
    BEST_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    LAST_FILE,
    METRICS_CSV,
    METRICS_JSONL,
    SKIPPED_FILE,
    STATE_FILE,
)
from cnnzoo.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("writes")
    out = root / "run"
    args = ["train", "--model", "resnet20", "--data", "digits", "--out", str(out),
            "--epochs", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return root, out


def snapshot(folder):
    return {p.name: (p.stat().st_size, p.read_bytes()) for p in folder.iterdir() if p.is_file()}


def test_run_file_names_match_the_sidecar_names():
    names = {BEST_FILE, LAST_FILE, STATE_FILE, CONFIG_FILE, METRICS_CSV, METRICS_JSONL,
             CURVES_FILE, SKIPPED_FILE, files.previous_path(files.Path(STATE_FILE)).name}  # fmt: skip
    assert names <= files.RUN_FILE_NAMES


def test_targets_that_are_not_regular_files_are_refused(tmp_path):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    folder = tmp_path / "dir.onnx"
    folder.mkdir()
    link = tmp_path / "null.onnx"
    link.symlink_to("/dev/null")
    for target, kind in ((fifo, "pipe"), (folder, "folder"), (link, "device"),
                         ("/dev/null", "device")):  # fmt: skip
        assert kind in files.target_problem(target)
        with pytest.raises(files.CnnzooError, match="choose a new file name"):
            files.write_output(target, b"x")
        with pytest.raises(files.WriteError):
            files.atomic_write_bytes(files.Path(target), b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and folder.is_dir()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.onnx", "null.onnx", "pipe.onnx"]
    assert files.output_problem(tmp_path / "new.onnx", (".onnx",)) is None
    assert "does not end in .onnx" in files.output_problem(tmp_path / "m.pt", (".onnx",))


def test_a_failed_write_is_one_line_with_nothing_left(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_fsync_file", full)
    with pytest.raises(files.WriteError, match="the disk is full .the previous one is intact"):
        files.write_output(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / ".m.onnx.tmp999999999"  # a pid no process has
    dead.write_bytes(b"torn")
    alive = tmp_path / f".m.onnx.tmp{os.getppid()}"  # a writer that is still running
    alive.write_bytes(b"busy")
    other = tmp_path / ".notes.tmp1x"
    other.write_bytes(b"not ours")
    files.write_output(tmp_path / "m.onnx", b"model", (".onnx",))
    assert not dead.exists() and alive.exists() and other.exists()
    assert files.remove_temp_files(tmp_path) == []  # the living writer's temp file stays


def test_json_is_always_valid(tmp_path):
    files.write_json(tmp_path / "r.json", {"acc": float("nan"), "x": [float("inf"), 1.5]})
    assert (tmp_path / "r.json").read_text().split() == ["{", '"acc":', "null,", '"x":', "[",
                                                          "null,", "1.5", "]", "}"]  # fmt: skip


def test_export_never_clobbers(run, tmp_path, capsys):
    root, out = run
    before = snapshot(out)
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    cases = [
        ("/dev/null", "it is a device"),
        (str(fifo), "it is a pipe"),
        (str(out / BEST_FILE), "does not end in .onnx"),
        (str(tmp_path), "it is a folder"),
    ]
    for target, why in cases:
        capsys.readouterr()
        assert main(["export", "-c", str(out), "-o", target, "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1, err
    ts = ["export", "-c", str(out), "-f", "torchscript", "-o", str(out / STATE_FILE)]
    assert main(ts) == 2 and "does not end in" in capsys.readouterr().err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert snapshot(out) == before


def test_torchscript_export_onto_a_full_disk_is_one_line(run, tmp_path, capsys, monkeypatch):
    root, out = run
    import builtins

    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        if "w" in mode and str(path).endswith(".pt.tmp" + str(os.getpid())):

            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")

            f.write = write
        return f

    monkeypatch.setattr(builtins, "open", full_open)
    target = tmp_path / "m.pt"
    args = ["export", "-c", str(out), "-f", "torchscript", "-o", str(target), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_eval_and_grid_refuse_device_paths(run, capsys):
    root, out = run
    assert main(["eval", str(out), "--out", "/dev/null", "--no-progress"]) == 2
    assert "it is a device" in capsys.readouterr().err
    assert main(["data", "digits", "--grid", "/dev/null"]) == 2
    assert "it is a device" in capsys.readouterr().err
    assert [n for n in os.listdir("/dev") if n.startswith("null")] == ["null"]
