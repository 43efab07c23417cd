"""Image folders: ROOT/CLASS/IMAGE, or ROOT/train/CLASS/IMAGE with ROOT/val (or test) beside it.

All files are decoded once, in a thread pool (Pillow releases the GIL while decoding), into
one preallocated uint8 tensor of equal squares; unreadable files are skipped and named.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..errors import CnnzooError
from .images import IMAGE_EXTENSIONS, ImageReadError, decode_square, is_image_file
from .split import held_out_name, stratified_split
from .transforms import IMAGENET_MEAN, IMAGENET_STD
from .types import DataBundle, ImageTensors

log = logging.getLogger("cnnzoo")

# Stored side when --image-size is not given: enough for 224-px training (random-resized crops,
# resize-256 / crop-224 evaluation), but never more than the sources' typical shorter side, so
# a folder of 32-px images stays 32 px instead of being blown up 64-fold in memory.
DEFAULT_FOLDER_SIZE = 256

_CHUNK = 256  # files per thread-pool task: few enough tasks, smooth enough progress
_SPLIT_NAMES = ("train", "val", "test")


@dataclass
class FolderListing:
    classes: list[str]
    train: list[tuple[str, int]]  # (file, label)
    val: list[tuple[str, int]] | None  # None: no val/ or test/ folder
    val_name: str | None  # "val" or "test"


def _subdirs(path: Path) -> dict[str, Path]:
    with os.scandir(path) as it:
        dirs = [Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".")]
    return {d.name: d for d in sorted(dirs, key=lambda d: d.name)}


def _image_files(class_dir: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [
            os.path.join(dirpath, f)
            for f in filenames
            if not f.startswith(".") and is_image_file(f)
        ]
    return sorted(found)


def _list_classes(
    folder: Path, classes: list[str] | None
) -> tuple[list[str], list[tuple[str, int]]]:
    subs = _subdirs(folder)
    if not subs:
        with os.scandir(folder) as it:
            loose = any(e.is_file() and is_image_file(e.name) for e in it)
        if loose:
            raise CnnzooError(
                f"{folder} holds images but no class folders; move them into "
                f"{folder}/CLASS_NAME/ folders, one per class"
            )
        raise CnnzooError(
            f"no class folders in {folder}; expected {folder}/CLASS_NAME/IMAGE.jpg "
            f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    if classes is None:
        classes = list(subs)
    else:
        unknown = [name for name in subs if name not in classes]
        if unknown:
            raise CnnzooError(
                f"{folder / unknown[0]} is not a class of the train folder; "
                "val/test class folders must use the train class names"
            )
    index = {c: i for i, c in enumerate(classes)}
    items: list[tuple[str, int]] = []
    for name, d in subs.items():
        files = _image_files(d)
        if not files:
            raise CnnzooError(
                f"class folder {d} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "add images or remove the folder"
            )
        items += [(f, index[name]) for f in files]
    return classes, items


def list_folder(root: Path) -> FolderListing:
    """The classes and files of an image folder, with its split folders when it has them."""
    if not root.exists():
        raise CnnzooError(
            f"dataset folder not found: {root}; give an existing folder of class subfolders "
            "or one of digits, cifar10, cifar100, imagenette"
        )
    if not root.is_dir():
        raise CnnzooError(
            f"{root} is a file, not a folder; give a folder of class subfolders "
            "(extract archives first)"
        )
    subs = {name.lower(): path for name, path in _subdirs(root).items()}
    if "train" in subs:
        classes, train = _list_classes(subs["train"], None)
        for name in ("val", "test"):  # val is preferred: test is kept for the final word
            if name in subs:
                _, val = _list_classes(subs[name], classes)
                return FolderListing(classes, train, val, name)
        return FolderListing(classes, train, None, None)
    if subs and set(subs) <= set(_SPLIT_NAMES):
        only = sorted(subs)[0]
        raise CnnzooError(
            f"{root} has {only}/ but no train/ folder; add {root}/train/ or point at "
            f"{root / only} to use it as a plain class folder"
        )
    classes, train = _list_classes(root, None)
    return FolderListing(classes, train, None, None)


def default_size(files: list[str], samples: int = 64) -> int:
    """DEFAULT_FOLDER_SIZE, or the median shorter side of a sample of files when smaller."""
    step = max(1, len(files) // samples)
    sides = []
    for f in files[::step][:samples]:
        try:
            with Image.open(f) as im:  # reads the header only
                sides.append(min(im.size))
        except Exception:  # broken files are reported when they are decoded
            continue
    if not sides:
        return DEFAULT_FOLDER_SIZE
    return max(1, min(DEFAULT_FOLDER_SIZE, int(statistics.median(sides))))


def _check_memory(n: int, size: int) -> None:
    need = n * 3 * size * size
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * total:
        raise CnnzooError(
            f"{n:,} images at {size}x{size} need {need / 1e9:.1f} GB of memory, more than "
            f"this machine's {total / 1e9:.0f} GB allows; store them smaller (train: --load-size, "
            "data: --image-size)"
        )
    if need > 2e9:
        log.info("storing %d images at %dx%d: %.1f GB", n, size, size, need / 1e9)


def decode_files(
    files: list[str], size: int, *, progress: bool = True, desc: str = "decoding"
) -> tuple[torch.Tensor, np.ndarray, list[tuple[str, str]], Counter]:
    """Decode `files` into uint8 [N, 3, size, size]. Returns (images, ok mask, skipped
    (file, reason) sorted by file, Counter of source (width, height, mode)). Rows of
    skipped files are left uninitialised."""
    n = len(files)
    images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    rows = images.numpy()
    ok = np.zeros(n, dtype=bool)

    def work(start: int, stop: int) -> tuple[int, list[tuple[str, str]], Counter]:
        failed, formats = [], Counter()
        for i in range(start, stop):
            try:
                rows[i], info = decode_square(files[i], size)
            except ImageReadError as e:
                failed.append((files[i], e.reason))
                continue
            ok[i] = True
            formats[info] += 1
        return stop - start, failed, formats

    skipped: list[tuple[str, str]] = []
    formats: Counter = Counter()
    workers = max(1, min(8, os.cpu_count() or 1))
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, file=sys.stderr)
    with bar, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(work, s, min(s + _CHUNK, n)) for s in range(0, n, _CHUNK)]
        try:
            for fut in as_completed(futures):
                done, failed, fmts = fut.result()
                bar.update(done)
                skipped += failed
                formats.update(fmts)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return images, ok, sorted(skipped), formats


def _compact(images: torch.Tensor, ok: np.ndarray) -> torch.Tensor:
    """Move the rows that decoded to the front, in order, without a second copy of the set."""
    keep = np.flatnonzero(ok)
    rows = images.numpy()
    for j, i in enumerate(keep):
        if i != j:
            rows[j] = rows[i]
    return images[: len(keep)]


def warn_skipped(skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    shown = ", ".join(f"{f} ({why})" for f, why in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    log.warning("skipped %d unreadable image file(s): %s%s", len(skipped), shown, more)


def load_folder(
    root: str | Path,
    *,
    image_size: int | None = None,
    val_split: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> DataBundle:
    """Decode an image folder into a DataBundle (ImageNet mean / std, for fine-tuning)."""
    root = Path(root).expanduser()
    listing = list_folder(root)
    train_items, val_items = listing.train, listing.val
    val_name = listing.val_name
    if val_items is None:
        labels = torch.tensor([lab for _, lab in train_items], dtype=torch.long)
        tr, va = stratified_split(labels, val_split, seed)
        val_items = [train_items[i] for i in va.tolist()]
        train_items = [train_items[i] for i in tr.tolist()]
        val_name = held_out_name(val_split)

    size = image_size or default_size([f for f, _ in train_items])
    items = train_items + val_items
    _check_memory(len(items), size)
    files = [f for f, _ in items]
    images, ok, skipped, formats = decode_files(
        files, size, progress=progress, desc=f"decoding {root.name or root}"
    )
    labels = torch.tensor([lab for _, lab in items], dtype=torch.long)
    n_train = len(train_items)
    if skipped:
        images = _compact(images, ok)
        keep = torch.from_numpy(ok)
        labels = labels[keep]
        files = [f for f, good in zip(files, ok, strict=True) if good]
        n_train = int(ok[:n_train].sum())
        warn_skipped(skipped)

    # train and val are two views of the one decoded tensor: no copy of the set
    train = ImageTensors(images[:n_train], labels[:n_train], files[:n_train])
    val = ImageTensors(images[n_train:], labels[n_train:], files[n_train:])
    counts = torch.bincount(train.labels, minlength=len(listing.classes))
    empty = [c for c, k in zip(listing.classes, counts.tolist(), strict=True) if k == 0]
    if empty:
        raise CnnzooError(
            f"class {empty[0]!r} in {root} has no readable training images; "
            "replace its files or remove the folder"
        )
    return DataBundle(
        name=str(root),
        classes=list(listing.classes),
        train=train,
        val=val,
        val_name=val_name,
        image_size=size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        skipped=skipped,
        source_formats=dict(formats),
    )
