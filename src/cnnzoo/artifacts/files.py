"""Files on disk, written so that a kill or a full disk never leaves a torn file under its name.

Every write goes to a temp file (`.NAME.tmpPID`), is fsynced and renamed over the target, so a
kill at any moment leaves the previous file whole; temp files of killed writes are removed by
`remove_temp_files` when a run starts again. `write_bytes_to` is the one place bytes reach a
file: tests replace it (monkeypatch) to pause or fail a write half-way.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from cnnzoo.errors import CnnzooError

_TEMP_NAME = re.compile(r"^\..+\.tmp\d+$")


class WriteError(CnnzooError):
    """A file that could not be written (full disk, read-only folder); the previous is intact."""


def previous_path(path: Path) -> Path:
    """state.safetensors -> state.prev.safetensors: the file a rotated write keeps."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def temp_path(path: Path) -> Path:
    """Where a write to `path` is staged before its rename (hidden, named by the writer's pid)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_bytes_to(f, data: bytes, path: Path) -> None:
    """Put `data` into the open temp file `f` that will become `path` (a seam for tests)."""
    f.write(data)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible everywhere (Windows); the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, keep_previous: bool = False) -> None:
    """Write `data` to `path` through a fsynced temp file and a rename; with `keep_previous`
    the file it replaces stays as `previous_path(path)`. A failed write (full disk, read-only
    folder) removes its temp file and raises WriteError, leaving `path` as it was."""
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write_bytes_to(f, data, path)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.is_file():
            _keep_previous(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        why = e.strerror or str(e)
        if e.errno == errno.ENOSPC:
            why = "the disk is full"
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = "the folder is read-only or not writable"
        state = "the previous one is intact" if os.path.exists(path) else "nothing was written"
        raise WriteError(
            f"could not write {path}: {why} ({state}); free space or fix "
            "the folder's permissions, then --resume"
        ) from None


def _keep_previous(path: Path) -> None:
    """Make `path`'s current content the previous copy, with `path` itself never missing:
    a hard link renamed into place (a plain copy where links are not supported)."""
    prev, link = previous_path(path), temp_path(previous_path(path))
    try:
        link.unlink(missing_ok=True)
        os.link(path, link)
    except OSError:
        shutil.copyfile(path, link)
    os.replace(link, prev)


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files that killed writes left in `folder`; returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if _TEMP_NAME.match(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())
