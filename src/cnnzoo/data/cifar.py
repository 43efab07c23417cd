"""CIFAR-10 / CIFAR-100 from the official "python version" pickle files.

The files are read with `safe_pickle` (plain data and numeric arrays only), so a tampered
file cannot run code. With download=True a missing set is fetched from the official site and
checked against its published MD5.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnzoo.cfg import Size, size_hw, size_value
from cnnzoo.data import safe_pickle
from cnnzoo.data.archives import obtain
from cnnzoo.data.stats import channel_stats
from cnnzoo.data.transforms import resize_uint8
from cnnzoo.data.types import DataBundle, ImageTensors
from cnnzoo.errors import CnnzooError


@dataclass(frozen=True)
class CifarSpec:
    title: str
    folder: str  # what the archive extracts to
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str


SPECS = {
    "cifar10": CifarSpec(
        "CIFAR-10",
        "cifar-10-batches-py",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": CifarSpec(
        "CIFAR-100",
        "cifar-100-python",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
        ("train",),
        ("test",),
        "meta",
        "fine_labels",
        "fine_label_names",
    ),
}


def read_pickle(path: Path) -> dict:
    """A CIFAR pickle file as a dict, through the restricted unpickler."""
    try:
        obj = safe_pickle.loads(path.read_bytes())
    except pickle.UnpicklingError as e:
        raise CnnzooError(
            f"refused to load {path}: {e}; an official CIFAR file never holds this, "
            "so replace it with a fresh download"
        ) from None
    except OSError as e:
        raise CnnzooError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # truncated or garbled pickles fail in many ways
        raise CnnzooError(
            f"{path} is not a readable CIFAR pickle ({type(e).__name__}); replace it"
        ) from None
    if not isinstance(obj, dict):
        raise CnnzooError(f"{path} is not a CIFAR file (holds {type(obj).__name__}, not a dict)")
    return obj


def _read_batch(path: Path, label_key: str, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = read_pickle(path)
    data, labels = d.get("data"), d.get(label_key)
    if not isinstance(data, np.ndarray) or labels is None:
        raise CnnzooError(f"{path} is not a CIFAR batch (no 'data' and '{label_key}')")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CnnzooError(
            f"{path}: 'data' should be uint8 [N, 3072], found {data.dtype} {list(data.shape)}"
        )
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if labels.shape != (data.shape[0],):
        raise CnnzooError(f"{path}: {labels.numel()} labels for {data.shape[0]} images")
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise CnnzooError(f"{path}: labels outside 0..{n_classes - 1}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32))  # rows are R plane, G, B
    return images, labels


def _missing(folder: Path, spec: CifarSpec) -> list[str]:
    names = (*spec.train_files, *spec.test_files, spec.meta_file)
    return [n for n in names if not (folder / n).is_file()]


def cifar_folder(name: str, data_dir: Path, download: bool, progress: bool) -> Path:
    """The extracted folder of `name` under data_dir, downloaded first when allowed."""
    spec = SPECS[name]
    folder = data_dir / spec.folder
    if not _missing(folder, spec):
        return folder
    obtain(
        spec.url,
        spec.md5,
        data_dir,
        spec.folder,
        title=spec.title,
        size_mb=170,
        download=download,
        progress=progress,
    )
    missing = _missing(folder, spec)
    if missing:
        raise CnnzooError(
            f"{spec.url.rsplit('/', 1)[-1]} did not provide {folder / missing[0]}; delete it and retry"
        )
    return folder


def load_cifar(
    name: str,
    *,
    data_dir: Path,
    image_size: Size | None = None,
    download: bool = False,
    progress: bool = True,
) -> DataBundle:
    """CIFAR-10 or -100: train = the 50,000 training images, val = the 10,000 test images;
    mean / std measured on train."""
    spec = SPECS[name]
    folder = cifar_folder(name, data_dir, download, progress)
    names = read_pickle(folder / spec.meta_file).get(spec.names_key)
    if not isinstance(names, list) or not names:
        raise CnnzooError(f"{folder / spec.meta_file} has no '{spec.names_key}' list")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    def part(files: tuple[str, ...]) -> ImageTensors:
        batches = [_read_batch(folder / f, spec.label_key, len(classes)) for f in files]
        images = torch.cat([b[0] for b in batches])
        if image_size and size_hw(image_size) != (32, 32):
            images = resize_uint8(images, image_size)
        return ImageTensors(images, torch.cat([b[1] for b in batches]))

    train, test = part(spec.train_files), part(spec.test_files)
    mean, std = channel_stats(train.images)
    return DataBundle(
        name=name,
        classes=classes,
        train=train,
        val=test,
        val_name="test",
        image_size=size_value(tuple(train.images.shape[-2:])),
        mean=mean,
        std=std,
    )
