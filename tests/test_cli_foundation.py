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


def test_models_plot_draws_every_model_with_a_published_top1(capsys, tmp_path):
    """`models --plot`: a PNG of published top-1 against GMACs, one bubble per model that has a
    published top-1 (the CIFAR ResNets, LeNet-5 and ShuffleNet V1 have none), named."""
    from PIL import Image

    from cnnzoo.cli.models import cost_points
    from cnnzoo.insight.plots import accuracy_cost_figure, pyplot
    from cnnzoo.zoo_facts import PUBLISHED_TOP1
    from cnnzoo.zoo_table import ZOO_TABLE

    png = tmp_path / "zoo.png"
    assert main(["models", "--plot", str(png)]) == 0
    assert Image.open(png).size[0] > 1000
    want = {n for n in ZOO_TABLE if n in PUBLISHED_TOP1}
    assert f"({len(want)} models with a published top-1)" in capsys.readouterr().out
    points = cost_points(sorted(ZOO_TABLE))
    assert {p[0] for p in points} == want and "resnet20" not in want and "alexnet" in want
    fig = accuracy_cost_figure(points)
    ax = fig.axes[0]
    drawn = sorted(tuple(xy) for c in ax.collections for xy in c.get_offsets().tolist())
    assert drawn == sorted((ZOO_TABLE[n][3] / 1e9, PUBLISHED_TOP1[n]) for n in want)
    assert sorted(t.get_text() for t in ax.texts) == sorted(want)
    assert ax.get_xscale() == "log"
    pyplot().close(fig)
    # a pattern draws its own models; one without a published top-1 has nothing to draw
    assert main(["models", "resnet1*", "--plot", str(tmp_path / "r.png")]) == 0
    assert "(6 models with a published top-1)" in capsys.readouterr().out
    assert main(["models", "resnet20", "--plot", str(tmp_path / "n.png")]) == 2
    assert main(["models", "--plot", str(tmp_path / "x.jpg")]) == 2
    assert main(["models", "--pretrained", "--plot", str(png)]) == 2


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
