"""A rectangular input and a chosen normalisation through the whole command line, on a small
folder of real photos (CIFAR-10 JPEGs): `cnnzoo train --image-size 24 40 --mean ... --std ...`,
then eval, predict, explain and export (parity on the run's held-out images), and the
standalone ONNX client (onnxruntime, Pillow, numpy) reproducing predict's probabilities. The
recorded mean / std are the ones used: predictions equal a normalisation done by hand and
differ from the default one's. Bad values end in one line and exit code 2."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATASETS, missing
from PIL import Image

from cnnzoo.cli.main import main
from cnnzoo.data import load_image
from cnnzoo.data.transforms import center_crop, resize_cover
from cnnzoo.infer.predict import Predictor

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ("airplane", "automobile", "bird")
PER_CLASS = 8
MEAN, STD = [0.2, 0.7, 0.4], [0.5, 0.1, 0.3]  # far from ImageNet's: the choice must matter
CLIENT = Path(__file__).with_name("onnx_client.py")
GUARD = (  # the client runs where torch and cnnzoo cannot be imported
    "import runpy, sys\n"
    "sys.modules['torch'] = None\n"
    "sys.modules['cnnzoo'] = None\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """ROOT/CLASS/IMAGE.jpg: the first PER_CLASS training images of three CIFAR-10 classes."""
    archive = DATASETS / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        missing(f"{archive} not found (set CNNZOO_DATASETS)")
    root = tmp_path_factory.mktemp("photos")
    want = dict.fromkeys(CLASSES, 0)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != "train" or not member.isfile():
                continue
            if parts[1] not in want:
                if all(n == PER_CLASS for n in want.values()):
                    break
                continue
            if want[parts[1]] < PER_CLASS:
                (root / parts[1]).mkdir(exist_ok=True)
                (root / parts[1] / parts[2]).write_bytes(tar.extractfile(member).read())
                want[parts[1]] += 1
    assert all(n == PER_CLASS for n in want.values()), want
    return root


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "rect"
    code = main(["train", "--model", "resnet20", "--data", str(photos), "--image-size", "24",
                 "40", "--mean", *map(str, MEAN), "--std", *map(str, STD), "--epochs", "2",
                 "--batch-size", "8", "--val-split", "0.25", "--threads", "1", "--device", "cpu",
                 "--no-progress", "--out", str(out)])  # fmt: skip
    assert code == 0
    return out


def _probs(out: str) -> dict[str, list[float]]:
    """file -> probabilities in class order, from `predict --json`."""
    got = {}
    for r in json.loads(out)["results"]:
        p = [0.0] * len(CLASSES)
        for e in r["predictions"]:
            p[e["index"]] = e["prob"]
        got[str(Path(r["file"]).resolve())] = p
    return got


def test_run_records_the_rectangle_and_normalisation(run):
    meta = json.loads((run / "best.json").read_text())
    assert meta["input_size"] == [24, 40] and meta["recipe"]["image_size"] == [24, 40]
    assert meta["mean"] == MEAN and meta["std"] == STD
    assert meta["data"]["load_size"] == [32, 53]  # stored with the input's aspect


def test_eval_predict_explain_run_at_h_by_w(run, photos, tmp_path, capsys):
    assert main(["eval", str(run), "--out", str(tmp_path), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert f": {len(CLASSES) * PER_CLASS // 4} images" in said and "top-1" in said, said
    assert next(tmp_path.glob("eval-*.html")).stat().st_size > 0  # the report page, CAMs too
    files = sorted((photos / "bird").glob("*.jpg"))[:3]
    assert main(["predict", str(run), *map(str, files), "--json", "--topk", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    cams = tmp_path / "cams"
    assert main(["explain", str(run), *map(str, files), "--out", str(cams)]) == 0
    w, h = Image.open(next(cams.glob("*.png"))).size
    assert abs(w / h - 40 / 24) < 0.05  # drawn over the image as the model saw it


def test_mean_std_are_the_ones_used(run, photos):
    """Predictor probabilities == the model on a hand-made input (cover 24 x 40, centre crop,
    (x / 255 - MEAN) / STD); with the default normalisation they differ."""
    pred = Predictor.from_checkpoint(str(run), device="cpu", precision="fp32")
    files = sorted((photos / "airplane").glob("*.jpg"))[:4]
    ours = pred.probabilities([str(f) for f in files])
    x = torch.stack([load_image(f) for f in files]).float()
    x = center_crop(resize_cover(x, (24, 40)), (24, 40))
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        manual = torch.softmax(pred.model((x / 255 - m) / s), dim=1)
    torch.testing.assert_close(ours, manual, atol=1e-5, rtol=0)
    default = dataclasses.replace(pred.preprocess, mean=(0.485, 0.456, 0.406),
                                  std=(0.229, 0.224, 0.225))  # fmt: skip
    pred.preprocess = default
    assert (pred.probabilities([str(f) for f in files]) - ours).abs().max() > 1e-3


def test_export_parity_and_the_standalone_client(run, photos, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    onnx_file = tmp_path / "rect.onnx"
    assert main(["export", "-c", str(run), "-o", str(onnx_file), "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "24x40 px" in said and "held-out images" in said, said
    files = [*sorted((photos / "bird").glob("*.jpg"))[:3],
             *sorted((photos / "automobile").glob("*.jpg"))[:3]]  # fmt: skip
    assert main(["predict", str(run), *map(str, files), "--json", "--topk", "3",
                 "--precision", "fp32"]) == 0  # fmt: skip
    ours = _probs(capsys.readouterr().out)
    cmd = [sys.executable, "-c", GUARD, str(CLIENT), str(onnx_file), *map(str, files)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": ""})
    assert p.returncode == 0, p.stderr
    theirs = [json.loads(line) for line in p.stdout.splitlines()]
    for f, b in zip(files, theirs, strict=True):
        assert np.abs(np.array(ours[str(f.resolve())]) - np.array(b)).max() <= 1e-4, f


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--std", "0.2", "0", "0.2"], "--std must be in (0, 255] (got 0)"),
        (["--mean", "0.5", "nan", "0.5"], "--mean must be a finite number"),
        (["--mean", "0.5", "0.5"], "--mean takes three numbers"),
        (["--image-size", "24", "40", "8"], "--image-size takes one number"),
        (["--image-size", "4", "40"], "--image-size must be in [8, 4096] (got 4)"),
        (["--mean", "0.5", "--stats"], "not both"),
        (["--mean", "0.5"], "--mean has 1 value(s) but the images have 3 channel(s)"),
    ],
)
def test_bad_values_refused_in_one_line(extra, words, tmp_path, capsys):
    args = ["train", "--model", "resnet20", "--data", "digits", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "r"), *extra]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "r").exists()  # refused before a run folder was left behind


def test_serve_card_and_answers_for_the_rectangle(run, tmp_path):
    """GET /model says H x W and the normalisation; POST /predict answers what predict does,
    also for a 16 x 56 model on a strip wider than 2:1 (the long-strip cut keeps 3.5:1)."""
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("starlette")
    from cnnzoo.serve import build_app, model_card, serving

    pred = Predictor.from_checkpoint(str(run), device="cpu", precision="fp32")
    card = model_card(pred.meta, "best.safetensors", "pytorch")
    rng = np.random.default_rng(0)
    strip = tmp_path / "strip.png"
    Image.fromarray(rng.integers(0, 256, (20, 90, 3), dtype=np.uint8)).save(strip)
    (want,), _ = pred.predict_files([str(strip)], topk=3)
    with serving(build_app(pred, card)) as url, httpx.Client(base_url=url) as client:
        got = client.get("/model").json()["preprocessing"]
        assert got["crop"] == [24, 40] and got["resize"] == [24, 40]
        assert got["mean"] == MEAN and got["std"] == STD
        r = client.post("/predict?topk=3", content=strip.read_bytes())
        assert r.status_code == 200, r.text
        probs = [p["prob"] for p in r.json()["results"][0]["predictions"]]
    assert probs == pytest.approx([p["prob"] for p in want.to_dict()["predictions"]], abs=1e-6)
    wide = Predictor(pred.model, {**pred.meta, "input_size": [16, 56]}, precision="fp32")
    (want,), _ = wide.predict_files([str(strip)], topk=3)
    card = model_card(wide.meta, "wide.safetensors", "pytorch")
    with serving(build_app(wide, card)) as url, httpx.Client(base_url=url) as client:
        r = client.post("/predict?topk=3", content=strip.read_bytes())
        probs = [p["prob"] for p in r.json()["results"][0]["predictions"]]
    assert probs == pytest.approx([p["prob"] for p in want.to_dict()["predictions"]], abs=1e-6)
