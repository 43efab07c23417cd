"""`cnnzoo models` and `cnnzoo summary` from the command line."""

from __future__ import annotations

import subprocess
import sys

from cnnzoo.cli.main import main


def test_summary_command(capsys):
    assert main(["summary", "resnext50_32x4d", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "2048x7x7" in out and "25,028,904" in out and "4.230 G" in out


def test_models_command(capsys):
    assert main(["models", "resnet5*"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "25,557,032" in out and "80.86" in out
    assert "resnet56" in out and "853,018" in out


def test_user_errors_are_one_line_exit_2(capsys):
    assert main(["summary", "resnet05"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean" in err
    assert main(["models", "nothing*"]) == 2
    assert main(["summary", "resnet18", "--depth", "0"]) == 2


def test_console_script_runs():
    r = subprocess.run(
        [sys.executable, "-m", "cnnzoo.cli.main", "summary", "resnet20"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "269,722" in r.stdout
