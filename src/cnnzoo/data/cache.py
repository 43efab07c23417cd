"""The decoded-image cache on disk, for folders larger than memory: one uint8 file of
N x 3 x S x S rows, memory-mapped, so training reads the rows of each batch from the page
cache instead of holding the whole set in RAM.

- Keyed on what the rows depend on: the file list (order and labels), each file's size and
  modification time, the stored side and the decoder version. Any change gives a new key,
  so a changed folder is decoded again, never served stale.
- Built by appending the rows of readable files, in file order, to `KEY.partial`; every few
  seconds the file is synced and the progress (chunks done, rows written, which files were
  readable) saved atomically after it: a build that is killed goes on after the last saved
  chunk (rows written later are cut off). The finished file is renamed into place (`KEY.u8`)
  and described by `KEY.json`; a reader only trusts the pair when the sizes agree.
- One process builds (an exclusive `flock` on `KEY.lock`), others (the ranks of a
  distributed run, a second run on the same data) wait and then map the same file.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from cnnzoo.cfg import Size, size_hw, size_text, size_value
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

CACHE_MODES = ("auto", "memory", "disk")
# the share of the machine's RAM the decoded set may take in memory with --cache auto
DEFAULT_RAM_SHARE = 0.5
# bumped whenever decoding changes what a row holds (resampling, colour handling, cropping)
DECODER_VERSION = 1
_SAVE_EVERY_S = 5.0
_CHUNK_MAX = 256
_CHUNK_BYTES = 4 * 2**20  # x 2 chunks in flight per decoding thread


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


def cache_key(files: list[str], labels: list[int], size: Size) -> str:
    """A digest of everything the cached rows depend on."""
    h = hashlib.sha256(f"cnnzoo-cache-v{DECODER_VERSION}:{size_text(size)}:{len(files)}\n".encode())
    for f, label in zip(files, labels, strict=True):
        try:
            st = os.stat(f)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(os.fsencode(f) + f"\0{label}:{stamp}\n".encode())
    return h.hexdigest()[:32]


def _bits(mask: np.ndarray) -> str:
    """A boolean mask as base64 of its packed bits: 160 KB for ImageNet's 1.28M files."""
    return base64.b64encode(np.packbits(mask).tobytes()).decode()


def _mask(text: str, n: int) -> np.ndarray:
    packed = np.frombuffer(base64.b64decode(text), dtype=np.uint8)
    return np.unpackbits(packed)[:n].astype(bool) if n else np.zeros(0, dtype=bool)


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

    def __init__(self, folder: Path, key: str, n: int, size: Size) -> None:
        # the size as JSON holds it (an int, or [H, W]), so that the meta file compares equal
        self.folder, self.key, self.n, self.size = Path(folder), key, n, size_value(size)
        self.row = 3 * math.prod(size_hw(size))
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
        try:
            ok = _mask(meta["ok"], self.n)
        except (KeyError, TypeError, ValueError):
            return None
        if len(ok) != self.n:
            return None
        kept = int(ok.sum())
        try:
            if self.data.stat().st_size != kept * self.row:
                return None
        except OSError:
            return None
        problem = _damage(self.data, meta.get("blocks"))
        if problem is not None:  # never train on bad bytes: one line, and a rebuild
            log.warning("the disk cache %s is damaged (%s); building it again", self.data, problem)
            return None
        rows = _map(self.data, kept, self.size)
        skipped = [tuple(x) for x in meta["skipped"]]
        formats = Counter({tuple(k): v for k, v in meta["formats"]})
        return rows, ok, skipped, formats

    def build(self, files: list[str], decode_chunks: Callable) -> None:
        """Decode `files` in order, appending the rows of the readable ones to the partial
        file (going on after the last saved chunk), then rename it into place."""
        chunk = chunk_rows(self.row)
        state = self._saved_progress(chunk)
        if state is None:
            none = _bits(np.zeros(self.n, dtype=bool))
            state = {"n": self.n, "chunk": chunk, "chunks": 0, "rows": 0, "ok": none,
                     "skipped": [], "formats": []}  # fmt: skip
        ok = _mask(state["ok"], self.n)
        skipped = [tuple(x) for x in state["skipped"]]
        formats = Counter({tuple(k): v for k, v in state["formats"]})
        start = state["chunks"] * chunk
        if start:
            log.info("going on with the cache build: %d of %d images done", start, self.n)
        with open(self.partial, "ab" if start else "wb") as f:
            f.truncate(state["rows"] * self.row)  # rows written after the last save go
            f.seek(0, os.SEEK_END)

            def save(chunks: int) -> None:
                f.flush()
                os.fsync(f.fileno())  # the rows first: progress never claims rows not on disk
                state.update(chunks=chunks, rows=f.tell() // self.row, ok=_bits(ok),
                             skipped=skipped, formats=[[list(k), v] for k, v in formats.items()])  # fmt: skip
                _write_json(self.progress, state)

            last_save, chunks = time.monotonic(), state["chunks"]
            try:
                for c in decode_chunks(files, self.size, start=start, chunk=chunk):
                    f.write(c.rows[c.good].tobytes())
                    ok[c.start : c.stop] = c.good
                    skipped.extend(c.failed)
                    formats.update(c.formats)
                    chunks += 1
                    if time.monotonic() - last_save >= _SAVE_EVERY_S:
                        save(chunks)
                        last_save = time.monotonic()
            finally:
                save(chunks)  # also on Ctrl-C: the next call goes on from here
        blocks = _block_digests(self.partial)  # what every later load verifies
        os.replace(self.partial, self.data)
        meta = {"n": self.n, "size": self.size, "ok": _bits(ok), "skipped": sorted(skipped),
                "formats": [[list(k), v] for k, v in formats.items()], "blocks": blocks}  # fmt: skip
        _write_json(self.manifest, meta)
        self.progress.unlink(missing_ok=True)

    def _saved_progress(self, chunk: int) -> dict | None:
        """The progress of an interrupted build, if it is whole and for these files."""
        state = _read_json(self.progress) if self.partial.exists() else None
        try:
            if state is None or state["n"] != self.n or state["chunk"] != chunk:
                return None
            if self.partial.stat().st_size < state["rows"] * self.row:
                return None
            if (
                len(_mask(state["ok"], self.n)) != self.n
                or state["chunks"] * chunk > self.n + chunk
            ):
                return None
            [(str(f), str(why)) for f, why in state["skipped"]]
            Counter({tuple(k): int(v) for k, v in state["formats"]})
            return state
        except (KeyError, TypeError, ValueError, OSError):
            return None


_BLOCK = 16 * 2**20  # bytes per checksum block


def _block_digests(path: Path) -> list[str]:
    """A BLAKE2b digest per 16 MB block of `path`, read sequentially through one 1 MB buffer
    (no memory held beyond it: the cache exists for data larger than RAM)."""
    out, buf = [], bytearray(2**20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        h, filled = hashlib.blake2b(digest_size=12), 0
        while n := f.readinto(buf):
            h.update(view[:n])
            filled += n
            if filled >= _BLOCK:
                out.append(h.hexdigest())
                h, filled = hashlib.blake2b(digest_size=12), 0
        if filled:
            out.append(h.hexdigest())
    return out


def _damage(path: Path, blocks: object) -> str | None:
    """What is wrong with the bytes of a finished cache file, or None: every block's digest
    is compared with the one recorded when it was built (a cache from before checksums, or
    with the digests missing, counts as damaged: it is rebuilt once)."""
    if not isinstance(blocks, list):
        return "no checksums recorded"
    try:
        found = _block_digests(path)
    except OSError as e:
        return e.strerror or str(e)
    if len(found) != len(blocks):
        return f"{len(found)} blocks where {len(blocks)} were written"
    bad = [i for i, (a, b) in enumerate(zip(found, blocks, strict=True)) if a != b]
    if bad:
        return f"{len(bad)} of {len(blocks)} 16 MB blocks differ from what was written"
    return None


def chunk_rows(row_bytes: int) -> int:
    """Files per chunk: at most _CHUNK_MAX, and about 4 MB of decoded rows."""
    return max(1, min(_CHUNK_MAX, _CHUNK_BYTES // row_bytes))


def _map(path: Path, n: int, size: Size) -> torch.Tensor:
    """uint8 [n, 3, size, size] backed by `path`: pages are read when a batch touches them
    (copy-on-write, so nothing can change the file)."""
    if n == 0:
        return torch.empty((0, 3, *size_hw(size)), dtype=torch.uint8)
    arr = np.memmap(path, dtype=np.uint8, mode="c", shape=(n, 3, *size_hw(size)))
    # the mapped file itself (its inode), not whatever the name holds later: a rebuild that
    # replaces or deletes the name leaves an earlier mapping whole
    earlier = MAPPED.pop(str(path), None)
    if earlier is not None:
        os.close(earlier[0])
    MAPPED[str(path)] = (os.open(path, os.O_RDONLY), arr.nbytes)
    return torch.from_numpy(arr)


# the cache files mapped by this process (an open descriptor of each) and the size each must
# keep: a file cut short under a mapping kills the process with SIGBUS when a batch touches
# the lost pages
MAPPED: dict[str, tuple[int, int]] = {}


def check_mapped() -> None:
    """Raise a one-line CnnzooError when a mapped cache file was cut short while in use;
    called before each epoch, and before validation, touches the rows."""
    for path, (fd, nbytes) in MAPPED.items():
        size = os.fstat(fd).st_size
        if size < nbytes:
            raise CnnzooError(
                f"the disk cache {path} changed while in use ({size:,} bytes, {nbytes:,} "
                "expected); resume the run (--resume): the cache is checked and rebuilt"
            )


def cached_decode(
    files: list[str],
    labels: list[int],
    size: Size,
    folder: Path,
    decode_chunks: Callable,
) -> tuple[torch.Tensor, np.ndarray, list, Counter]:
    """The rows of the readable `files` from the disk cache in `folder`, built first if
    needed. Returns (rows [kept, 3, H, W] memory-mapped, ok mask over `files`,
    skipped (file, reason), Counter of source formats). `decode_chunks` is
    `folders.decode_chunks` (with its progress bar and description set)."""
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
            cache.build(files, decode_chunks)
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
