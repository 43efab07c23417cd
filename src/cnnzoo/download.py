"""Downloading one file safely: a `.part` file that survives interruptions and is resumed with
an HTTP Range request, a checksum check before the file takes its final name, and a progress bar.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")
_BLOCK = 1 << 20
ATTEMPTS = 3  # an interrupted transfer is resumed this many times before giving up


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` while downloading into it: two processes fetching
    the same file take turns instead of writing into one .part, and no lock file is left
    behind. No-op where fcntl is missing (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux / macOS
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _transfer(url: str, part: Path, desc: str, progress: bool, timeout: float) -> None:
    """Append the rest of `url` to `part`: ask for the bytes after those already there, and
    start over when the server answers with the whole file instead (no Range support)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # asked past the end: the part is already the whole file
            return
        raise
    with response:
        if have and response.status != 206:  # the server sent the whole file: restart
            have = 0
        length = int(response.headers.get("Content-Length") or 0)
        with (
            open(part, "ab" if have else "wb") as f,
            tqdm(
                total=have + length if length else None,
                initial=have,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc,
                disable=not progress,
                file=sys.stderr,
            ) as bar,
        ):
            for block in iter(lambda: response.read(_BLOCK), b""):
                f.write(block)
                bar.update(len(block))
        if length and part.stat().st_size < have + length:
            raise http.client.IncompleteRead(b"", have + length - part.stat().st_size)


def download(
    url: str,
    dest: str | Path,
    *,
    checksum: str | None = None,
    algorithm: str = "sha256",
    progress: bool = True,
    hint: str = "",
    timeout: float = 60.0,
) -> str:
    """Fetch `url` to `dest` and return the file's full hex digest.

    The bytes go to `dest.part` first; an interrupted transfer is resumed (or restarted when the
    server cannot resume), also by a later call. `checksum` is the expected digest or a prefix
    of it (as torchvision and timm write it in file names); a file that fails it is deleted and
    refused. `hint` ends the message of a failed transfer: what to do without network.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    tail = f"; {hint}" if hint else ""
    with _exclusive(dest.parent):
        if dest.is_file():  # another process finished it while we waited for the lock
            return file_digest(dest, algorithm)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _transfer(url, part, f"downloading {dest.name}", progress, timeout)
                break
            except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
                if attempt == ATTEMPTS:
                    raise CnnzooError(
                        f"download of {url} kept breaking off ({type(e).__name__}); run again "
                        f"to resume it{tail}"
                    ) from None
                log.info("download of %s broke off (%s); resuming", dest.name, type(e).__name__)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise CnnzooError(f"could not download {url} ({reason}){tail}") from None
        digest = file_digest(part, algorithm)
        if checksum is not None and not digest.startswith(checksum.lower()):
            part.unlink(missing_ok=True)
            name = {"sha256": "SHA-256", "md5": "MD5"}.get(algorithm, algorithm)
            raise CnnzooError(
                f"{url} failed its {name} check (got {digest[: max(len(checksum), 8)]}, "
                f"expected {checksum}): not the published file, deleted"
            )
        os.replace(part, dest)
    return digest
