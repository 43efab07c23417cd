"""Seed 001's transfer learning through the command line, end to end: `cnnzoo train
--pretrained` (with --freeze backbone, --freeze-epochs, --backbone-lr-scale) and `cnnzoo lr-find
--pretrained` on a small folder of real photos (CIFAR-10 JPEGs), the published file fetched
from a loopback mirror: a real-format torchvision `.pth` and a timm `.safetensors` made from the
zoo's own resnet18, the table's entry pointing at them with their SHA-256."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shlex
import tarfile
from pathlib import Path

import pytest
import torch
import weights_mirror
from conftest import DATASETS, missing
from safetensors.torch import load_file, save_file

from cnnzoo import create_model
from cnnzoo.cli.main import main
from cnnzoo.hub import PUBLISHED, cache_dir

server = weights_mirror.server  # the loopback mirror, a fixture

CLASSES = ("airplane", "automobile", "bird")
PER_CLASS = 10
COMMON = ["--image-size", "32", "--batch-size", "8", "--val-split", "0.2", "--device", "cpu",
          "--threads", "1", "--no-progress"]  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """ROOT/CLASS/IMAGE.jpg: the first PER_CLASS training images of three CIFAR-10 classes."""
    archive = DATASETS / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        missing(f"{archive} not found (set CNNZOO_DATASETS)")
    root = tmp_path_factory.mktemp("photos")
    want = {c: 0 for c in CLASSES}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != "train" or not member.isfile():
                continue
            cls = parts[1]
            if cls not in want:
                if all(n == PER_CLASS for n in want.values()):
                    break  # the classes come in order: nothing more to take
                continue
            if want[cls] < PER_CLASS:
                (root / cls).mkdir(exist_ok=True)
                (root / cls / parts[2]).write_bytes(tar.extractfile(member).read())
                want[cls] += 1
    assert all(n == PER_CLASS for n in want.values()), want
    return root


@pytest.fixture
def home(tmp_path, monkeypatch, server):
    monkeypatch.setenv("CNNZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNZOO_WEIGHTS_URL", server.url)
    return tmp_path / "home"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _publish(server, monkeypatch, tmp_path, tag: str = "IMAGENET1K_V1") -> dict:
    """Serve a fresh resnet18's weights as resnet18's published `tag`: torchvision's `.pth`
    (named with the start of its SHA-256) or, for a timm tag, its Hugging Face
    `.safetensors` (pinned by its full SHA-256); the table's entry patched to fit."""
    torch.manual_seed(7)
    sd = create_model("resnet18").state_dict()
    rows = list(PUBLISHED["resnet18"])
    i = next(i for i, r in enumerate(rows) if r.tag == tag)
    path = tmp_path / f"source-{tag}"
    if rows[i].source == "torchvision":
        torch.save(sd, path)
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    data = path.read_bytes()
    if rows[i].source == "torchvision":
        name, sha = f"resnet18-{_sha(data)[:8]}.pth", _sha(data)[:8]
    else:
        name, sha = f"resnet18.{tag}.safetensors", _sha(data)
    server.files[name] = data
    rows[i] = dataclasses.replace(rows[i], url=f"https://example.invalid/{name}", file=name,
                                  sha256=sha)  # fmt: skip
    monkeypatch.setitem(PUBLISHED, "resnet18", rows)
    return sd


def _weights(run: Path, name: str = "best") -> tuple[dict[str, torch.Tensor], dict]:
    return load_file(str(run / f"{name}.safetensors")), json.loads(
        (run / f"{name}.json").read_text()
    )


def _backbone(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The parameters outside the classifier (running statistics move in any training)."""
    return {k: v for k, v in sd.items() if not k.startswith("fc.") and "running" not in k
            and "num_batches" not in k}  # fmt: skip


def test_readme_transfer_command_trains_only_the_head(photos, home, server, monkeypatch, tmp_path):
    """The README's command, `--pretrained --freeze backbone`: the published file is fetched
    once and checked, the backbone keeps its weights exactly, the new 3-class head learns."""
    source = _publish(server, monkeypatch, tmp_path)
    run = tmp_path / "run"
    code = main(["train", "--model", "resnet18", "--data", str(photos), "--pretrained",
                 "--freeze", "backbone", "--epochs", "2", "--out", str(run), *COMMON])  # fmt: skip
    assert code == 0
    assert len(server.requests) == 1 and any(cache_dir().iterdir())
    sd, meta = _weights(run)
    assert meta["recipe"]["recipe"] == "finetune" and meta["recipe"]["pretrained"] is True
    assert meta["classes"] == list(CLASSES) and sd["fc.weight"].shape == (3, 512)
    assert tuple(meta["mean"]) == (0.485, 0.456, 0.406)  # the published weights' normalisation
    assert all(torch.equal(sd[k], v) for k, v in _backbone(source).items())
    assert meta["interpolation"] == "bilinear"


def test_freeze_epochs_then_whole_network_at_a_slower_backbone(
    photos, home, server, monkeypatch, tmp_path
):
    """`--freeze-epochs 1 --backbone-lr-scale 0.1`: after the first epoch the backbone is still
    the published one; after the second it has moved, less than at the full lr."""
    source = _publish(server, monkeypatch, tmp_path)
    moved = {}
    for scale in ("0.1", "1"):
        run = tmp_path / f"run-{scale}"
        args = ["train", "--model", "resnet18", "--data", str(photos), "--pretrained",
                "--freeze-epochs", "1", "--backbone-lr-scale", scale, "--epochs", "2",
                "--out", str(run), *COMMON]  # fmt: skip
        if scale == "1":
            assert main(args) == 0
        else:  # stopped after the first epoch: the backbone has not moved yet
            assert main([*args, "--stop-after", "1"]) == 0
            first, _ = _weights(run, "last")
            assert all(torch.equal(first[k], v) for k, v in _backbone(source).items())
            assert main(["train", "--resume", str(run), "--no-progress"]) == 0
        last, meta = _weights(run, "last")
        assert meta["recipe"]["backbone_lr_scale"] == float(scale)
        moved[scale] = sum(float((last[k] - v).abs().sum()) for k, v in _backbone(source).items())
    assert 0 < moved["0.1"] < moved["1"]


def test_timm_tag_from_safetensors_lr_find_and_train(photos, home, server, monkeypatch, tmp_path):
    """`cnnzoo lr-find --pretrained a1_in1k --freeze backbone` runs the range test from timm's
    safetensors (checked against its full SHA-256); `cnnzoo train --pretrained a1_in1k` records
    the tag's eval transform (bicubic, where torchvision's sets are bilinear) in the sidecar."""
    source = _publish(server, monkeypatch, tmp_path, "a1_in1k")
    out = tmp_path / "lr.png"
    code = main(["lr-find", "--model", "resnet18", "--data", str(photos), "--pretrained",
                 "a1_in1k", "--freeze", "backbone", "--steps", "12", "--out", str(out),
                 *COMMON])  # fmt: skip
    assert code == 0 and out.is_file()
    assert json.loads(out.with_suffix(".json").read_text())["suggestion"] > 0
    assert [p for p, _ in server.requests] == ["/resnet18.a1_in1k.safetensors"]

    run = tmp_path / "run"
    code = main(["train", "--model", "resnet18", "--data", str(photos), "--pretrained",
                 "a1_in1k", "--freeze", "backbone", "--epochs", "1", "--out", str(run),
                 *COMMON])  # fmt: skip
    assert code == 0 and len(server.requests) == 1  # the cached file, checked once
    sd, meta = _weights(run)
    assert meta["recipe"]["pretrained"] == "a1_in1k" and meta["interpolation"] == "bicubic"
    assert all(torch.equal(sd[k], v) for k, v in _backbone(source).items())


def _readme_commands() -> list[list[str]]:
    """The commands of the README's first `bash` block under "The job, from the command
    line", in order, as argument lists (continuation lines joined, comments dropped)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## The job, from the command line", 1)[1].split("```bash", 1)[1]
    block = block.split("```", 1)[0].replace("\\\n", " ")
    return [shlex.split(line.split("#", 1)[0])[1:] for line in block.splitlines() if line.strip()]


def test_the_readmes_commands_in_order_on_a_small_real_folder(
    photos, home, server, monkeypatch, tmp_path, capsys
):
    """Every command of the README's block, in its order, on a folder of real photos: the
    same subcommands and options, with what cannot run here made small (a 3-class folder for
    ./flowers and for CIFAR-10, which needs a download; resnet18 for the big models; one
    epoch; a few lr-find steps and bench iterations). Each must exit 0 and do its job."""
    _publish(server, monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    small = {"resnext50_32x4d": "resnet18", "./flowers": str(photos),
             "cifar10": str(photos), "photos/": str(photos), "cat.jpg": str(next(photos.rglob("*.jpg")))}  # fmt: skip
    runs: list[Path] = []
    commands = _readme_commands()
    assert [c[0] for c in commands] == ["data", "train", "train", "lr-find", "eval", "predict",
                                        "explain", "models", "models", "summary", "bench"]  # fmt: skip
    for args in commands:
        args = [small.get(a, a) for a in args]
        cmd = args[0]
        if "--data-dir" in args:  # a folder needs no download folder
            i = args.index("--data-dir")
            del args[i : i + 2]
        args = [a for a in args if a != "--download"]
        if cmd == "train":
            run = tmp_path / f"run{len(runs)}"
            args = [a for a in args if a not in ("--epochs", "5")]
            args += ["--epochs", "1", "--out", str(run), *COMMON]
            runs.append(run)
        elif cmd == "lr-find":
            args += ["--steps", "10", *COMMON, "--out", str(tmp_path / "lr.png")]
        elif cmd in ("eval", "predict", "explain"):
            args = [str(runs[-1]) if a == "runs/RUN" else a for a in args]
            args += ["--no-progress"] if cmd != "predict" else []
        elif cmd == "bench":
            args = ["resnet18" if a == "resnet50" else a for a in args]
            args = [a for a in args if a not in ("--batch", "16")] + [
                "--batch",
                "2",
                "--iters",
                "2",
                "--warmup",
                "1",
            ]
        capsys.readouterr()
        assert main(args) == 0, (args, capsys.readouterr().err[-800:])
        out = capsys.readouterr().out
        if cmd == "data":
            assert (tmp_path / "flowers.png").is_file()
        elif cmd == "train":
            assert (runs[-1] / "best.safetensors").is_file()
        elif cmd == "lr-find":
            assert (tmp_path / "lr.png").is_file() and "next:" in out
        elif cmd == "eval":
            assert "top-1" in out and list(runs[-1].glob("eval-*-tta.html"))
        elif cmd == "predict":
            assert any(c in out for c in CLASSES) and any((tmp_path / "vis").iterdir())
        elif cmd == "explain":
            assert any((tmp_path / "cams").iterdir())
        elif cmd == "models":
            assert "efficientnet_b0" in out or "resnet50.a1_in1k" in out, out[:300]
        elif cmd == "summary":
            assert "Conv2d" in out, out[:300]
    assert json.loads((runs[0] / "best.json").read_text())["recipe"]["pretrained"] is True
