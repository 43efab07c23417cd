"""Image folders: ROOT/CLASS/IMAGE, or ROOT/train/CLASS/IMAGE with ROOT/val (or valid/,
validation/: the Kaggle and Roboflow names) and ROOT/test beside it. val picks the best
checkpoint; test is kept apart, scored once at the end of training; without a val folder a
seeded, stratified share of train (--val-split) is held out instead.

All files are decoded once, in a thread pool (Pillow releases the GIL while decoding), into
one preallocated uint8 tensor of equal squares; unreadable files are skipped and named.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import statistics
import sys
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cnnzoo.cfg import Size, scaled_size, size_hw, size_text, size_value
from cnnzoo.data.cache import DEFAULT_RAM_SHARE, cached_decode, use_disk
from cnnzoo.data.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    decode_square,
    is_image_file,
    regular_file_problem,
    shown,
)
from cnnzoo.data.sources import default_data_dir
from cnnzoo.data.split import held_out_name, stratified_split
from cnnzoo.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from cnnzoo.data.types import DataBundle, ImageTensors
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

# Stored side when --image-size is not given: enough for 224-px training (random-resized crops,
# resize-256 / crop-224 evaluation), but never more than the sources' typical shorter side, so
# a folder of 32-px images stays 32 px instead of being blown up 64-fold in memory.
DEFAULT_FOLDER_SIZE = 256

_CHUNK = 256  # files per thread-pool task: few enough tasks, smooth enough progress
VAL_NAMES = ("val", "valid", "validation")  # any of them picks the checkpoint
_SPLIT_NAMES = ("train", *VAL_NAMES, "test")


# Training is refused when more than this share of a folder's image files cannot be read:
# such a folder is broken (wrong copy, permissions, a half-finished download), not noisy.
MAX_UNREADABLE = 0.5


@dataclass
class FolderListing:
    classes: list[str]
    train: list[tuple[str, int]]  # (file, label)
    val: list[tuple[str, int]] | None  # None: no val/ (valid/, validation/) folder
    val_name: str | None  # the val folder's name as written: "val", "valid" or "validation"
    # (path, reason) of what is left out before decoding: link loops, the same file twice
    skipped: list[tuple[str, str]] = field(default_factory=list)
    test: list[tuple[str, int]] | None = None  # None: no test/ folder


def _subdirs(path: Path) -> dict[str, Path]:
    with os.scandir(path) as it:
        dirs = [Path(e.path) for e in it if e.is_dir() and not e.name.startswith(".")]
    return {d.name: d for d in sorted(dirs, key=lambda d: d.name)}


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _image_files(class_dir: Path, skipped: list[tuple[str, str]]) -> list[str]:
    """Image files under `class_dir`, following links to folders but never into a folder
    already walked (a link loop such as `ln -s . cat/loop` would repeat the class ~40x)."""
    found = []
    seen = {_dir_key(str(class_dir))}
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            sub = os.path.join(dirpath, d)
            key = _dir_key(sub)
            if key is None or key in seen:
                why = "folder link loop, not followed" if key else "unreadable folder link"
                skipped.append((sub, why))
                continue
            seen.add(key)
            keep.append(d)
        dirnames[:] = keep
        found += [
            os.path.join(dirpath, f)
            for f in filenames
            if not f.startswith(".") and is_image_file(f)
        ]
    return sorted(found)


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # broken link, loop: the decoder names it
        return None
    return st.st_dev, st.st_ino


def _is_own_path(path: str) -> bool:
    """True when no link leads to `path` (the file lives where it is listed)."""
    return os.path.realpath(path) == os.path.abspath(path)


def drop_duplicates(
    items: list[tuple[str, int]], classes: list[str], skipped: list[tuple[str, str]]
) -> list[tuple[str, int]]:
    """One entry per file (by device and inode): a link or hard link to a file listed
    elsewhere is dropped and named. Across classes the file keeps the label of the folder it
    really lives in; with no such folder its label is ambiguous and every copy is dropped."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (f, _) in enumerate(items):
        key = _file_key(f)
        if key is not None:
            groups.setdefault(key, []).append(i)
    drop: set[int] = set()
    for members in groups.values():
        if len(members) == 1:
            continue
        own = [i for i in members if _is_own_path(items[i][0])]
        keep = own[0] if own else members[0]
        labels = {items[i][1] for i in members}
        if len(labels) > 1 and len({items[i][1] for i in own}) != 1:
            names = ", ".join(sorted({classes[items[i][1]] for i in members}))
            for i in members:
                drop.add(i)
                skipped.append((items[i][0], f"the same file is in classes {names}: label unclear"))
            continue
        for i in members:
            if i == keep:
                continue
            drop.add(i)
            kept, label = items[keep]
            where = "" if items[i][1] == label else f" of class {classes[label]}"
            skipped.append((items[i][0], f"the same file as {kept}{where}"))
    return [item for i, item in enumerate(items) if i not in drop]


def _list_classes(
    folder: Path, classes: list[str] | None, skipped: list[tuple[str, str]]
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
        files = _image_files(d, skipped)
        if not files:
            raise CnnzooError(
                f"class folder {d} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "add images or remove the folder"
            )
        items += [(f, index[name]) for f in files]
    return classes, items


def _split_items(
    folder: Path, classes: list[str], seen: set, skipped: list[tuple[str, str]]
) -> list[tuple[str, int]]:
    """The files of a val or test folder, without those already in an earlier split (a link
    or hard link to the same file), which are named in `skipped`."""
    _, items = _list_classes(folder, classes, skipped)
    items = drop_duplicates(items, classes, skipped)
    where = {_file_key(f) for f, _ in items}
    leaked = {f for f, _ in items if _file_key(f) in seen} if where & seen else set()
    skipped += [
        (f, "also in an earlier split (train or val; a link or copy)") for f in sorted(leaked)
    ]
    return [(f, lab) for f, lab in items if f not in leaked]


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
    skipped: list[tuple[str, str]] = []
    if "train" in subs:
        classes, train = _list_classes(subs["train"], None, skipped)
        train = drop_duplicates(train, classes, skipped)
        vals = [name for name in VAL_NAMES if name in subs]
        if len(vals) > 1:
            a, b = (subs[name].name for name in vals[:2])
            raise CnnzooError(
                f"{root} has both {a}/ and {b}/: which one picks the checkpoint is unclear; "
                "keep one validation folder (merge or rename the other)"
            )
        seen = {_file_key(f) for f, _ in train} - {None}
        val = _split_items(subs[vals[0]], classes, seen, skipped) if vals else None
        seen |= {_file_key(f) for f, _ in val or []} - {None}
        test = _split_items(subs["test"], classes, seen, skipped) if "test" in subs else None
        val_name = subs[vals[0]].name if vals else None
        return FolderListing(classes, train, val, val_name, sorted(skipped), test)
    if subs and set(subs) <= set(_SPLIT_NAMES):
        only = sorted(subs)[0]
        raise CnnzooError(
            f"{root} has {only}/ but no train/ folder; add {root}/train/ or point at "
            f"{root / only} to use it as a plain class folder"
        )
    classes, train = _list_classes(root, None, skipped)
    train = drop_duplicates(train, classes, skipped)
    return FolderListing(classes, train, None, None, sorted(skipped))


def default_size(files: list[str], samples: int = 64) -> int:
    """DEFAULT_FOLDER_SIZE, or the median shorter side of a sample of files when smaller."""
    step = max(1, len(files) // samples)
    sides = []
    for f in files[::step][:samples]:
        if regular_file_problem(f):  # a FIFO would block the open forever
            continue
        try:
            with Image.open(f) as im:  # reads the header only
                sides.append(min(im.size))
        except Exception:  # broken files are reported when they are decoded
            continue
    if not sides:
        return DEFAULT_FOLDER_SIZE
    return max(1, min(DEFAULT_FOLDER_SIZE, int(statistics.median(sides))))


def _check_memory(n: int, size: Size) -> None:
    need = n * 3 * math.prod(size_hw(size))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.8 * total:
        raise CnnzooError(
            f"{n:,} images at {size_text(size)} px need {need / 1e9:.1f} GB of memory, more than "
            f"this machine's {total / 1e9:.0f} GB allows; use the disk cache (--cache disk) or "
            "store them smaller (train: --load-size, data: --image-size)"
        )
    if need > 2e9:
        log.info("storing %d images at %s px: %.1f GB", n, size_text(size), need / 1e9)


@dataclass
class DecodedChunk:
    """files[start:stop] decoded: rows [stop - start, 3, S, S] (rows of unreadable files left
    as they were), which are readable, (file, reason) of the others, source formats."""

    start: int
    stop: int
    rows: np.ndarray
    good: np.ndarray
    failed: list[tuple[str, str]]
    formats: Counter


def decode_chunks(
    files: list[str],
    size: Size,
    *,
    start: int = 0,
    chunk: int = _CHUNK,
    progress: bool = True,
    desc: str = "decoding",
) -> Iterator[DecodedChunk]:
    """Decode files[start:] in a thread pool (Pillow releases the GIL), yielding chunks of
    `chunk` files in file order; at most two chunks per thread are in flight, so memory stays
    bounded whatever the number of files."""

    def work(lo: int, hi: int) -> DecodedChunk:
        rows = np.empty((hi - lo, 3, *size_hw(size)), dtype=np.uint8)
        good = np.zeros(hi - lo, dtype=bool)
        failed, formats = [], Counter()
        for k in range(hi - lo):
            try:
                rows[k], info = decode_square(files[lo + k], size)
            except ImageReadError as e:
                failed.append((files[lo + k], e.reason))
                continue
            good[k] = True
            formats[info] += 1
        return DecodedChunk(lo, hi, rows, good, failed, formats)

    n = len(files)
    workers = max(1, min(8, os.cpu_count() or 1))
    bounds = [(lo, min(lo + chunk, n)) for lo in range(start, n, chunk)]
    bar = tqdm(total=n, initial=start, desc=desc, unit="img", disable=not progress,
               file=sys.stderr)  # fmt: skip
    with bar, ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        todo = iter(bounds)
        try:
            for lo, hi in itertools.islice(todo, 2 * workers):
                pending.append(pool.submit(work, lo, hi))
            while pending:
                done = pending.popleft().result()
                for lo, hi in itertools.islice(todo, 1):
                    pending.append(pool.submit(work, lo, hi))
                bar.update(done.stop - done.start)
                yield done
        finally:  # also when the caller stops early or is interrupted
            for fut in pending:
                fut.cancel()


def decode_files(
    files: list[str], size: Size, *, progress: bool = True, desc: str = "decoding"
) -> tuple[torch.Tensor, np.ndarray, list[tuple[str, str]], Counter]:
    """Decode `files` into uint8 [N, 3, H, W] in memory (an int size: a square). Returns (images, ok mask,
    skipped (file, reason) sorted by file, Counter of source (width, height, mode)). Rows of
    skipped files are left uninitialised."""
    n = len(files)
    images = torch.empty((n, 3, *size_hw(size)), dtype=torch.uint8)
    rows = images.numpy()
    ok = np.zeros(n, dtype=bool)
    skipped: list[tuple[str, str]] = []
    formats: Counter = Counter()
    for c in decode_chunks(files, size, progress=progress, desc=desc):
        rows[c.start : c.stop] = c.rows
        ok[c.start : c.stop] = c.good
        skipped += c.failed
        formats.update(c.formats)
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
    named = ", ".join(f"{shown(f)} ({why})" for f, why in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    log.warning("skipped %d unreadable image file(s): %s%s", len(skipped), named, more)


def check_unreadable(
    root: Path, unreadable: list[tuple[str, str]], total: int, limit: float
) -> None:
    """Refuse a folder where more than `limit` of the image files cannot be read."""
    if total and len(unreadable) > limit * total:
        f, why = unreadable[0]
        raise CnnzooError(
            f"{len(unreadable):,} of {total:,} image files in {shown(str(root))} cannot be read "
            f"(e.g. {shown(f)}: {why}); fix the folder (`cnnzoo data {shown(str(root))}` lists "
            "them all) rather than train on what is left"
        )


def load_folder(
    root: str | Path,
    *,
    image_size: Size | None = None,
    val_split: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    max_unreadable: float = MAX_UNREADABLE,
    cache: str = "auto",
    cache_dir: str | Path | None = None,
    ram_share: float = DEFAULT_RAM_SHARE,
    aspect: Size | None = None,
) -> DataBundle:
    """Decode an image folder into a DataBundle (ImageNet mean / std, for fine-tuning).
    image_size: the stored size, an int (a square) or (H, W) (each image resized to cover it,
    aspect kept, then centre-cropped); unset, `default_size`. `aspect` (H, W): the stored
    images take its aspect, their shorter side that size's (a rectangular training input).
    More than `max_unreadable` of the files unreadable is an error (1.0: never).
    cache: "memory" (decoded into RAM), "disk" (a memory-mapped file in `cache_dir`, built
    once and reused while the files stay the same) or "auto" (disk when the decoded set
    would take more than `ram_share` of this machine's RAM)."""
    root = Path(root).expanduser()
    listing = list_folder(root)
    train_items, val_items = listing.train, listing.val
    test_items = listing.test or []
    val_name = listing.val_name
    if val_items is None:  # no val folder (test/ or not): a share of train picks the checkpoint
        labels = torch.tensor([lab for _, lab in train_items], dtype=torch.long)
        tr, va = stratified_split(labels, val_split, seed)
        val_items = [train_items[i] for i in va.tolist()]
        train_items = [train_items[i] for i in tr.tolist()]
        val_name = held_out_name(val_split)

    size = size_value(image_size) if image_size else default_size([f for f, _ in train_items])
    if aspect is not None:
        size = scaled_size(aspect, min(size_hw(size)))
    items = train_items + val_items + test_items
    files = [f for f, _ in items]
    desc = f"decoding {root.name or root}"
    if use_disk(cache, len(items) * 3 * math.prod(size_hw(size)), ram_share):
        where = Path(cache_dir) if cache_dir else default_data_dir() / "cache"
        decode = functools.partial(decode_chunks, desc=desc, progress=progress)
        images, ok, skipped, formats = cached_decode(
            files, [lab for _, lab in items], size, where, decode
        )
    else:
        _check_memory(len(items), size)
        images, ok, skipped, formats = decode_files(files, size, progress=progress, desc=desc)
        if skipped:
            images = _compact(images, ok)
    check_unreadable(root, skipped, len(files), max_unreadable)
    labels = torch.tensor([lab for _, lab in items], dtype=torch.long)
    n_train, n_val = len(train_items), len(val_items)
    if skipped:
        keep = torch.from_numpy(ok)
        labels = labels[keep]
        files = [f for f, good in zip(files, ok, strict=True) if good]
        n_train, n_val = int(ok[:n_train].sum()), int(ok[n_train : n_train + n_val].sum())
    skipped = sorted(skipped + listing.skipped)
    warn_skipped(skipped)

    # train, val and test are views of the one decoded tensor: no copy of the set
    end = n_train + n_val
    train = ImageTensors(images[:n_train], labels[:n_train], files[:n_train])
    val = ImageTensors(images[n_train:end], labels[n_train:end], files[n_train:end])
    test = None
    if listing.test is not None:
        test = ImageTensors(images[end:], labels[end:], files[end:])
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
        test=test,
    )
