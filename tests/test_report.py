"""The eval error report: per-class precision / recall / F1 agree with scikit-learn, confused
pairs and top losses are the right ones, `cnnzoo eval` writes them with a self-contained page
that headless Chromium renders with every picture (the screenshot is kept in artifacts/)."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support
from test_train import CLASSES, make_images

from cnnzoo.cli.main import main
from cnnzoo.insight.report import class_metrics, confused_pairs, top_losses

pytestmark = pytest.mark.usefixtures("one_thread")

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def test_class_metrics_agree_with_scikit_learn():
    g = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 4, (300,), generator=g)
    guess = torch.where(torch.rand(300, generator=g) < 0.6, truth, torch.randint(0, 4, (300,)))
    guess[guess == 3] = 2  # class 3 is never predicted: its precision is undefined
    conf = torch.bincount(truth * 4 + guess, minlength=16).view(4, 4).tolist()
    names = list("abcd")
    ours = class_metrics(conf, names)
    p, r, f, n = precision_recall_fscore_support(truth, guess, labels=range(4), zero_division=0)
    for i, name in enumerate(names):
        assert ours[name]["support"] == n[i]
        assert ours[name]["recall"] == pytest.approx(100 * r[i])
        if i == 3:
            assert math.isnan(ours[name]["precision"]) and ours[name]["f1"] != ours[name]["f1"]
        else:
            assert ours[name]["precision"] == pytest.approx(100 * p[i])
            assert ours[name]["f1"] == pytest.approx(100 * f[i])


def test_confused_pairs_and_top_losses():
    conf = [[50, 7, 0], [1, 40, 12], [0, 3, 30]]
    pairs = confused_pairs(conf, ["x", "y", "z"], k=3)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        ("y", "z", 12), ("x", "y", 7), ("z", "y", 3)
    ]  # fmt: skip
    assert pairs[0]["share"] == pytest.approx(100 * 12 / 53)
    logits = torch.tensor([[4.0, 0, 0], [0, 5.0, 0], [0, 0, 1.0], [3.0, 0, 0]])
    labels = torch.tensor([0, 0, 2, 1])
    worst = top_losses(logits, labels, k=2)
    assert [t.index for t in worst] == [1, 3]  # most confident mistakes first
    assert worst[0].predicted == 1 and worst[0].true == 0 and worst[0].prob > 0.9


@pytest.fixture(scope="module")
def run_with_test_folder(tmp_path_factory):
    """A model trained 2 epochs on a folder with train/ and test/ (the classes are patterns)."""
    root = tmp_path_factory.mktemp("report")
    for split, n, seed in (("train", 40, 0), ("test", 12, 1)):
        x, y = make_images(n, 16, seed)
        for i, (img, label) in enumerate(zip(x, y.tolist(), strict=True)):
            path = root / "data" / split / CLASSES[label] / f"{i:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    run = root / "run"
    args = ["train", "--model", "resnet20", "--data", str(root / "data"), "--out", str(run),
            "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return root, run


def test_eval_writes_the_error_report(run_with_test_folder, capsys):
    root, run = run_with_test_folder
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "test", "--no-progress", "--top-losses", "6"]) == 0
    printed = capsys.readouterr().out
    assert "top-5" not in printed  # three classes: top-5 says nothing
    report = json.loads((run / "eval-data-test.json").read_text())
    assert report["split_name"] == "test" and report["n"] == 36 and report["top5"] is None
    assert set(report["class_metrics"]) == {*CLASSES, "macro avg"}
    assert len(report["top_losses"]) == 6
    losses = [t["loss"] for t in report["top_losses"]]
    assert losses == sorted(losses, reverse=True)
    assert all(t["file"] and Path(t["file"]).is_file() for t in report["top_losses"])
    for key in ("confusion", "confusion_counts", "top_losses", "html"):
        assert Path(report["files"][key]).is_file(), key
    page = Path(report["files"]["html"]).read_text()
    # self-contained: every picture is embedded, nothing is fetched
    sources = re.findall(r"<img[^>]* src='([^']*)'", page)
    assert len(sources) >= 3 + 3 * 6 and all(
        s.startswith("data:image/png;base64,") for s in sources
    )
    assert "http" not in page.replace("http-equiv", "")

    # flip TTA writes its own report beside the plain one, which stays as it was
    before = (run / "eval-data-test.json").read_bytes()
    assert (
        main(["eval", "--checkpoint", str(run), "--split", "test", "--tta", "--no-progress"]) == 0
    )
    assert (run / "eval-data-test-tta.json").is_file() and (
        run / "eval-data-test-tta.html"
    ).is_file()
    assert (run / "eval-data-test.json").read_bytes() == before

    # a folder without test/: one line saying so
    assert main(["eval", str(run), "--data", str(root / "data" / "train"), "--split", "test"]) == 2
    assert "no test/ folder" in capsys.readouterr().err


def test_the_page_renders_in_headless_chromium(run_with_test_folder):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    root, run = run_with_test_folder
    html = run / "eval-data-val.html"
    if not html.is_file():
        assert main(["eval", str(run), "--no-progress"]) == 0
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    # the page's script counts the pictures that decoded into its title
    dom = subprocess.run([*flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    loaded = re.search(r"\[(\d+)/(\d+) images\]", dom)
    assert loaded, dom[:500]
    assert loaded.group(1) == loaded.group(2) and int(loaded.group(2)) >= 10
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "eval-report-chromium.png"
    shot.unlink(missing_ok=True)
    subprocess.run([*flags, "--window-size=1280,2400", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    with Image.open(shot) as im:
        pixels = torch.from_numpy(np.array(im.convert("L"))).float()
    assert pixels.shape == (2400, 1280)
    # not a blank page: dark text and coloured pictures on white
    assert pixels.std() > 20 and (pixels < 100).float().mean() > 0.01
