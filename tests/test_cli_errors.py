"""Mistakes a user makes on the command line: one line on stderr saying what is wrong, exit 2,
and nothing loaded or trained first."""

from __future__ import annotations

import os

import pytest
import torch

from cnnzoo.cli.main import main

pytestmark = pytest.mark.usefixtures("one_thread")


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


TRAIN = ["train", "--model", "resnet20", "--data", "digits", "--no-progress"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--model", "resnet2O", "--data", "digits"], "did you mean"),
        (["train", "--model", "resnet20", "--data", "/no/such/folder"], "/no/such/folder"),
        ([*TRAIN, "--epochs", "0"], "--epochs must be in [1, 100,000] (got 0)"),
        ([*TRAIN, "--lr", "-0.1"], "--lr must be in (0, 1000] (got -0.1)"),
        ([*TRAIN, "--ema", "1.5"], "--ema"),
        ([*TRAIN, "--val-split", "1.5"], "--val-split"),
        ([*TRAIN, "--model-opt", "nonsense"], "KEY=VALUE"),
        ([*TRAIN, "--weights", "/no/such/file.pth"], "not found"),
        (["train", "--data", "digits"], "--model and --data are required"),
        (["train", "--resume", "/no/such/run"], "nothing to resume"),
        (["predict", "-c", "/no/such/ckpt.safetensors", "x.png"], "checkpoint not found"),
        (["eval", "-c", "/no/such/run_dir"], "checkpoint not found"),
        # a builder's own ValueError (unknown stem) and impossible sizes: one line, not a trace
        ([*TRAIN, "--stem", "bad"], "unknown stem"),
        (["summary", "resnet20", "--stem", "bad"], "unknown stem"),
        (["summary", "resnet20", "--num-classes", "-1"], "--num-classes must be in [1, 1,000,000]"),
        (["summary", "resnet20", "--input-size", "0"], "--input-size"),  # was silently 32
    ],
)
def test_bad_options_exit_2_with_one_line(args, expected, capsys):
    assert main(args) == 2
    line = error_line(capsys)
    assert line.startswith(f"cnnzoo {args[0]}: error:") and expected in line, line


class _Payload:
    """Pickles to a call of os.mkdir: proof that loading it would have run code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_pickle_checkpoint_with_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Payload(str(marker))}, ckpt)
    (tmp_path / "evil.json").write_text('{"model": "resnet20"}')
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    for cmd in (["predict", "-c", str(ckpt), str(img)], ["eval", "-c", str(ckpt)]):
        assert main(cmd) == 2
        line = error_line(capsys)
        assert "refused" in line, line
    assert not marker.exists()


def test_checkpoint_without_sidecar_facts(tmp_path, capsys):
    from safetensors.torch import save_file

    path = tmp_path / "raw.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    assert main(["predict", "-c", str(path), str(path)]) == 2
    assert "sidecar" in error_line(capsys)


def test_resume_needs_epochs_not_below_done(tmp_path, capsys):
    from helpers import cfg, make_bundle

    from cnnzoo.train import train

    train(cfg(tmp_path, epochs=2), make_bundle(14), stop_after=1, progress=False)
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "0"]) == 2
    assert "--epochs" in error_line(capsys)


def test_a_file_that_is_no_checkpoint_is_not_called_unsafe(tmp_path, capsys):
    not_ckpt = tmp_path / "notes.pth"
    not_ckpt.write_text('{"model": "resnet20"}')
    img = tmp_path / "a.png"
    img.write_bytes(b"")
    assert main(["train", "--model", "resnet20", "--data", "digits", "--weights",
                 str(not_ckpt)]) == 2  # fmt: skip
    line = error_line(capsys)
    assert "not a PyTorch checkpoint" in line and "refused" not in line, line
    # a JSON file with no weights beside it, given as the checkpoint
    lone = tmp_path / "lone.json"
    lone.write_text("{}")
    assert main(["predict", "-c", str(lone), str(img)]) == 2
    assert "JSON file" in error_line(capsys)
