"""`load_data`: one entry point from a dataset name or folder to a decoded DataBundle."""

from __future__ import annotations

from pathlib import Path

from cnnzoo.cfg import Size, size_hw, size_text
from cnnzoo.data.cifar import load_cifar
from cnnzoo.data.digits import load_digits
from cnnzoo.data.folders import load_folder
from cnnzoo.data.imagenette import imagenette_folder, readable_class_names
from cnnzoo.data.sources import DATASETS, default_data_dir
from cnnzoo.data.types import DataBundle
from cnnzoo.errors import CnnzooError


def load_data(
    source: str,
    *,
    data_dir: str | None = None,
    image_size: Size | None = None,
    val_split: float = 0.1,
    seed: int = 0,
    download: bool = False,
    progress: bool = True,
    max_unreadable: float = 0.5,
    cache: str = "auto",
    cache_dir: str | None = None,
    ram_share: float = 0.5,
    aspect: Size | None = None,
) -> DataBundle:
    """Decode a dataset once into uint8 tensors of equal squares.

    source: "digits", "cifar10", "cifar100", "imagenette", or a folder (ROOT/CLASS/IMAGE,
    or ROOT/train/CLASS/IMAGE with ROOT/val (valid, validation) and / or ROOT/test beside it;
    write ./digits for a folder that has a dataset's name). A folder's test/ becomes
    `bundle.test`, scored at the end of training and never used to pick a checkpoint.
    image_size: side of the stored squares, or (H, W) of rectangles. Folders: resized to
    cover it (aspect kept), then the centre crop; unset, 256 px (what 224-px training
    needs), or the sources' median shorter side when that is smaller (no upscaling of small
    images). digits stay 8 px, CIFAR 32 px, Imagenette 160 px unless it is given.
    aspect: a folder's (and Imagenette's) images are stored with this (H, W)'s aspect, their
    shorter side `image_size` (an int) or the default side: what a rectangular training
    input needs. digits and CIFAR stay square (the transforms crop them to the aspect).
    val_split: share of each class held out for validation when the source has no val
    split of its own (digits, folders without val/, also when they have test/); CIFAR's val
    is its test set.
    Mean / std: measured on train for digits and CIFAR (trained from scratch); ImageNet's for
    folders and Imagenette (usually fine-tuned from ImageNet weights).
    max_unreadable: folders with a larger share of unreadable image files are refused.
    cache, cache_dir, ram_share: where a folder's decoded images live (`load_folder`); the
    disk cache defaults to DATA_DIR/cache.
    """
    if not 0.0 <= val_split < 1.0:
        raise CnnzooError(f"--val-split must be in [0, 1), got {val_split}")
    if image_size is not None and min(size_hw(image_size)) < 1:
        raise CnnzooError(f"--image-size must be positive, got {size_text(image_size)}")
    if source in DATASETS and Path(source).is_dir():
        raise CnnzooError(
            f"--data {source} names the built-in dataset, but there is also a folder "
            f"./{source} here; write --data ./{source} to train on the folder, or run from "
            "another directory to use the built-in one"
        )
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    if source == "digits":
        return load_digits(image_size=image_size, val_split=val_split, seed=seed)
    if source in ("cifar10", "cifar100"):
        return load_cifar(
            source, data_dir=root, image_size=image_size, download=download, progress=progress
        )

    if source == "imagenette":
        folder = imagenette_folder(root, image_size, download, progress)
        image_size = image_size or 160  # also when the copy found is the 320 px one
    else:
        folder = Path(source).expanduser()
    bundle = load_folder(
        folder,
        image_size=image_size,
        val_split=val_split,
        seed=seed,
        progress=progress,
        max_unreadable=max_unreadable,
        cache=cache,
        cache_dir=cache_dir or (str(root / "cache") if data_dir else None),
        ram_share=ram_share,
        aspect=aspect,
    )
    bundle.classes = readable_class_names(bundle.classes)
    if source == "imagenette":
        bundle.name = "imagenette"
    return bundle
