"""The decoded-image cache on disk, for folders larger than memory: one uint8 file of
N x 3 x S x S rows, memory-mapped, so training reads the rows of each batch from the page
cache instead of holding the whole set in RAM.

- Keyed on what the rows depend on: the file list (order and labels), each file's size and
  modification time, the stored side and the decoder version. Any change gives a new key,
  so a changed folder is decoded again, never served stale.
- Built in place in `KEY.partial`, with the progress (rows decoded, rows readable, and how
  far the final compaction went) saved atomically every few seconds: a build that is killed
  goes on where it stopped. The finished file is renamed into place (`KEY.u8`) and described
  by `KEY.json`; a reader only trusts the pair when the sizes agree.
- One process builds (an exclusive `flock` on `KEY.lock`), others (the ranks of a
  distributed run, a second run on the same data) wait and then map the same file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import CnnzooError

log = logging.getLogger("cnnzoo")

CACHE_MODES = ("auto", "memory", "disk")
# the share of the machine's RAM the decoded set may take in memory with --cache auto
DEFAULT_RAM_SHARE = 0.5
# bumped whenever decoding changes what a row holds (resampling, colour handling, cropping)
DECODER_VERSION = 1
_SAVE_EVERY_S = 5.0


def total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def use_disk(mode: str, nbytes: int, ram_share: float = DEFAULT_RAM_SHARE) -> bool:
    """Whether a decoded set of `nbytes` goes to the disk cache: always with "disk", never
    with "memory", and with "auto" when it exceeds `ram_share` of this machine's RAM."""
    if mode not in CACHE_MODES:
        raise CnnzooError(f"--cache must be one of {', '.join(CACHE_MODES)} (got {mode!r})")
    if mode != "auto":
        return mode == "disk"
    total = total_memory()
    return total is not None and nbytes > ram_share * total


def cache_key(files: list[str], labels: list[int], size: int) -> str:
    """A digest of everything the cached rows depend on."""
    h = hashlib.sha256(f"cnnzoo-cache-v{DECODER_VERSION}:{size}:{len(files)}\n".encode())
    for f, label in zip(files, labels, strict=True):
        try:
            st = os.stat(f)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(os.fsencode(f) + f"\0{label}:{stamp}\n".encode())
    return h.hexdigest()[:32]


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(obj))
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


@contextmanager
def _locked(path: Path):
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # waits while another process builds
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class DiskCache:
    """The cache files of one key in `folder`."""

    def __init__(self, folder: Path, key: str, n: int, size: int) -> None:
        self.folder, self.key, self.n, self.size = Path(folder), key, n, size
        self.row = 3 * size * size
        self.data = self.folder / f"{key}.u8"
        self.manifest = self.folder / f"{key}.json"
        self.partial = self.folder / f"{key}.partial"
        self.progress = self.folder / f"{key}.progress.json"
        self.lock = self.folder / f"{key}.lock"

    def load(self) -> tuple[torch.Tensor, np.ndarray, list, Counter] | None:
        """(rows of the readable files, ok mask, skipped, formats) if the cache is complete."""
        meta = _read_json(self.manifest)
        if not meta or meta.get("n") != self.n or meta.get("size") != self.size:
            return None
        ok = np.zeros(self.n, dtype=bool)
        ok[np.asarray(meta["ok"], dtype=np.int64)] = True
        kept = int(ok.sum())
        try:
            if self.data.stat().st_size != kept * self.row:
                return None
        except OSError:
            return None
        rows = _map(self.data, kept, self.size)
        skipped = [tuple(x) for x in meta["skipped"]]
        formats = Counter({tuple(k): v for k, v in meta["formats"]})
        return rows, ok, skipped, formats

    def build(self, files: list[str], decode_rows: Callable, progress: bool) -> None:
        """Decode `files` into the partial file (going on from a saved progress), compact the
        readable rows to the front, and rename it into place."""
        state = _read_json(self.progress) if self.partial.exists() else None
        if not state or state.get("n") != self.n:
            state = {"n": self.n, "done": [], "ok": [], "skipped": [], "formats": [], "moved": 0}
            with open(self.partial, "wb") as f:  # sparse: no disk written until decoded
                f.truncate(self.n * self.row)
        done = np.zeros(self.n, dtype=bool)
        done[np.asarray(state["done"], dtype=np.int64)] = True
        ok = np.zeros(self.n, dtype=bool)
        ok[np.asarray(state["ok"], dtype=np.int64)] = True
        skipped = [tuple(x) for x in state["skipped"]]
        formats = Counter({tuple(k): v for k, v in state["formats"]})
        rows = np.memmap(
            self.partial, dtype=np.uint8, mode="r+", shape=(self.n, 3, self.size, self.size)
        )
        todo = np.flatnonzero(~done)
        if len(todo) < self.n:
            log.info(
                "going on with the cache build: %d of %d images done", self.n - len(todo), self.n
            )
        last_save = time.monotonic()

        def save() -> None:
            rows.flush()  # the rows first: progress never claims rows that are not on disk
            state.update(
                done=np.flatnonzero(done).tolist(),
                ok=np.flatnonzero(ok).tolist(),
                skipped=skipped,
                formats=[[list(k), v] for k, v in formats.items()],
            )
            _write_json(self.progress, state)

        def on_chunk(indices: np.ndarray, good: np.ndarray, failed: list, fmts: Counter) -> None:
            nonlocal last_save
            done[indices] = True
            ok[indices[good]] = True
            skipped.extend(failed)
            formats.update(fmts)
            if time.monotonic() - last_save > _SAVE_EVERY_S:
                save()
                last_save = time.monotonic()

        try:
            decode_rows(files, todo, rows, on_chunk, progress)
        finally:
            save()  # also on Ctrl-C: the next call goes on from here
        keep = np.flatnonzero(ok)
        self._compact(rows, keep, state, save)
        rows.flush()
        with open(self.partial, "rb+") as f:
            f.truncate(len(keep) * self.row)
            os.fsync(f.fileno())
        os.replace(self.partial, self.data)
        _write_json(
            self.manifest,
            {
                "n": self.n,
                "size": self.size,
                "ok": keep.tolist(),
                "skipped": sorted(skipped),
                "formats": [[list(k), v] for k, v in formats.items()],
            },
        )
        self.progress.unlink(missing_ok=True)

    @staticmethod
    def _compact(rows: np.memmap, keep: np.ndarray, state: dict, save: Callable) -> None:
        """Move readable rows to the front, in order. Resumable: row j takes row keep[j] >= j,
        which no earlier move overwrote (they wrote rows < j), so going on from the saved
        count of moved rows is safe."""
        last_save = time.monotonic()
        for j in range(int(state["moved"]), len(keep)):
            if keep[j] != j:
                rows[j] = rows[keep[j]]
            if time.monotonic() - last_save > _SAVE_EVERY_S:
                state["moved"] = j + 1
                save()
                last_save = time.monotonic()
        state["moved"] = len(keep)
        save()


def _map(path: Path, n: int, size: int) -> torch.Tensor:
    """uint8 [n, 3, size, size] backed by `path`: pages are read when a batch touches them
    (copy-on-write, so nothing can change the file)."""
    if n == 0:
        return torch.empty((0, 3, size, size), dtype=torch.uint8)
    arr = np.memmap(path, dtype=np.uint8, mode="c", shape=(n, 3, size, size))
    return torch.from_numpy(arr)


def cached_decode(
    files: list[str],
    labels: list[int],
    size: int,
    folder: Path,
    decode_rows: Callable,
    progress: bool = True,
) -> tuple[torch.Tensor, np.ndarray, list, Counter]:
    """The rows of the readable `files` from the disk cache in `folder`, built first if
    needed. Returns (rows [kept, 3, size, size] memory-mapped, ok mask over `files`,
    skipped (file, reason), Counter of source formats)."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CnnzooError(f"cannot create the cache folder {folder}: {e.strerror}") from None
    cache = DiskCache(folder, cache_key(files, labels, size), len(files), size)
    found = cache.load()
    if found is not None:
        log.info("decoded images from the disk cache %s", cache.data)
        return found
    need = len(files) * cache.row
    free = _free_bytes(folder)
    if free is not None and need > free:
        raise CnnzooError(
            f"the disk cache needs {need / 1e9:.1f} GB but {folder} has {free / 1e9:.1f} GB "
            "free; point --cache-dir elsewhere or store images smaller (--load-size)"
        )
    with _locked(cache.lock):
        found = cache.load()  # another process may have built it while this one waited
        if found is None:
            log.info("building the disk cache %s (%.1f GB)", cache.data, need / 1e9)
            cache.build(files, decode_rows, progress)
            found = cache.load()
    if found is None:
        raise CnnzooError(f"the disk cache {cache.data} is unreadable after building; remove it")
    return found


def _free_bytes(folder: Path) -> int | None:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def progress_bar(total: int, done: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total, initial=done, desc=desc, unit="img", disable=not enabled, file=sys.stderr
    )
