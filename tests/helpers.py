"""Helpers several test files share: small synthetic datasets (stripes and checkerboards, as
tensors or as a folder of PNGs), a training config for them, weights files, one model per
family, BatchNorm statistics far from the identity, a PNG that lies about its size, and small
folders of real photos cut from the CIFAR-10 JPEG archive."""

from __future__ import annotations

import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from cnnzoo import create_model
from cnnzoo.data import DataBundle, ImageTensors
from cnnzoo.train import TrainConfig
from cnnzoo.zoo_table import ZOO_TABLE

CLASSES = ["horizontal", "vertical", "checker"]


def make_images(n_per_class: int, size: int = 16, seed: int = 0):
    """uint8 [N, 3, size, size] images whose class is a pattern (horizontal stripes, vertical
    stripes, checkerboard) with a random phase, colour and noise; and int64 labels."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, labels = [], []
    for c in range(len(CLASSES)):
        for _ in range(n_per_class):
            phase = int(torch.randint(0, 4, (1,), generator=g))
            pattern = [
                (yy + phase) // 2 % 2,
                (xx + phase) // 2 % 2,
                ((yy + phase) // 2 + (xx + phase) // 2) % 2,
            ][c]
            colour = 0.5 + 0.5 * torch.rand(3, 1, 1, generator=g)
            img = pattern.float() * colour * 200 + 25 + 20 * torch.randn(3, size, size, generator=g)
            images.append(img.clamp(0, 255).to(torch.uint8))
            labels.append(c)
    return torch.stack(images), torch.tensor(labels)


def make_bundle(n_per_class: int = 40, size: int = 16, seed: int = 0) -> DataBundle:
    x, y = make_images(n_per_class, size, seed)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    nv = len(y) // 5
    mean, std = (0.4, 0.4, 0.4), (0.3, 0.3, 0.3)
    return DataBundle(
        "patterns",
        list(CLASSES),
        ImageTensors(x[nv:], y[nv:]),
        ImageTensors(x[:nv], y[:nv]),
        "held-out 20%",
        size,
        mean,
        std,
    )


def cfg(tmp_path: Path, name: str = "run", **kw) -> TrainConfig:
    base = dict(
        model="resnet20",
        data="patterns",
        out=str(tmp_path / name),
        epochs=2,
        batch_size=32,
        lr=0.05,
        device="cpu",
        augment="light",
        threads=1,  # bit-identical resumes need the same thread count throughout
    )
    base.update(kw)
    return TrainConfig(**base)


def saved_weights(tmp_path, model: str) -> str:
    """A weights file to freeze a backbone from (freezing needs pretrained weights)."""
    path = tmp_path / f"{model}-init.safetensors"
    save_file(create_model(model, num_classes=3).state_dict(), str(path))
    return str(path)


def write_folder(root: Path, n_per_class: int, seed: int) -> list[tuple[Path, str]]:
    x, y = make_images(n_per_class, 16, seed)
    out = []
    for i, (img, label) in enumerate(zip(x, y.tolist(), strict=True)):
        path = root / CLASSES[label] / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
        out.append((path, CLASSES[label]))
    return out


def cifar_jpegs(archive: Path, root: Path, classes: tuple[str, ...], per_split: dict) -> Path:
    """ROOT/SPLIT/CLASS/IMAGE.jpg from the CIFAR-10 JPEG archive (`train/` and `test/` in it):
    `per_split` maps a folder to (archive split, first image, count), e.g. {"train": ("train",
    0, 40), "valid": ("test", 0, 10), "test": ("test", 10, 15)}; one pass over the archive."""
    wanted: dict[tuple[str, str, str], str] = {}  # (archive split, class, file) -> folder
    for folder, (split, first, count) in per_split.items():
        for cls in classes:
            for i in range(first, first + count):
                wanted[(split, cls, f"{i:04d}.jpg")] = folder
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            parts = tuple(member.name.split("/"))
            folder = wanted.pop(parts, None) if len(parts) == 3 else None
            if folder is not None:
                (root / folder / parts[1]).mkdir(parents=True, exist_ok=True)
                (root / folder / parts[1] / parts[2]).write_bytes(tar.extractfile(member).read())
    assert not wanted, f"{len(wanted)} images not in {archive}"
    return root


def smallest_per_family() -> list[str]:
    best: dict[str, str] = {}
    for name, (family, _, params, _) in ZOO_TABLE.items():
        if family not in best or params < ZOO_TABLE[best[family]][2]:
            best[family] = name
    return sorted(best.values())


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm statistics and affine weights far from the identity, as training
    would, so that folding them is tested for real."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model.eval()


def png_claiming(w: int, h: int) -> bytes:
    """A PNG whose header (with a correct CRC) claims w x h pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


ON = ["train", "--model", "resnet20", "--no-progress", "--data"]  # + a folder


def write_png(path: Path, colour: int, size: tuple[int, int] = (8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(colour)
    pixels = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8) + colour
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def make_folder(root: Path, per_class: int = 6, classes=("cat", "dog")) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_png(root / name / f"{i:03d}.png", 40 + 120 * c + i)
    return root


def run_files(run_dir: Path) -> dict[str, torch.Tensor]:
    out = {f"last/{k}": v for k, v in load_file(run_dir / "last.safetensors").items()}
    out.update({f"state/{k}": v for k, v in load_file(run_dir / "state.safetensors").items()})
    return out


def assert_same_run(a: Path, b: Path) -> None:
    ta, tb = run_files(a), run_files(b)
    assert ta.keys() == tb.keys()
    assert [k for k in ta if not torch.equal(ta[k], tb[k])] == []
    skip = {"images_per_s", "epoch_time"}
    rows = [
        [{k: v for k, v in json.loads(line).items() if k not in skip} for line in lines]
        for lines in ((a / "metrics.jsonl").read_text().splitlines(),
                      (b / "metrics.jsonl").read_text().splitlines())
    ]  # fmt: skip
    assert rows[0] == rows[1]
