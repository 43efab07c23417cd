"""One owner per run folder: an advisory `flock` on the folder itself, held while the process
(or the object that owns the run) lives and released by the kernel when the process dies, even
by SIGKILL. A second process that wants the folder is refused in one line naming the holder's
pid (from /proc/locks where there is one); nothing is written to the folder to take the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import weakref
from pathlib import Path

from cnnzoo.errors import CnnzooError

# folder (real path) -> [fd, owners]: a process may hold its own folder more than once
# (a run resumed in the same process); the lock goes when the last owner does
_HELD: dict[str, list[int]] = {}


class FolderBusy(CnnzooError):
    """Another process holds the run folder."""


def holder_pid(folder: str | Path) -> int | None:
    """The pid holding a flock on `folder`, read from /proc/locks (Linux), else None."""
    try:
        st = os.stat(folder)
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if "FLOCK" not in parts or "->" in parts:
            continue
        try:
            i = parts.index("FLOCK")
            pid, dev_ino = int(parts[i + 3]), parts[i + 4]
            inode = int(dev_ino.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
        if inode == st.st_ino and pid != os.getpid():
            return pid
    return None


def _release(key: str) -> None:
    entry = _HELD.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.close(entry[0])


def hold_folder(folder: str | Path, owner: object | None = None) -> weakref.finalize | None:
    """Take `folder` for this process (refused with FolderBusy when another holds it). With
    `owner`, the hold ends when `owner` is garbage collected or when the returned finalizer is
    called (whichever comes first, once); without, at `release_folder` or when the process
    ends."""
    key = os.path.realpath(folder)
    entry = _HELD.get(key)
    if entry is None:
        fd = os.open(key, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = holder_pid(key)
            who = f"pid {pid}" if pid else "another process"
            raise FolderBusy(
                f"{folder} is in use by another cnnzoo process ({who}); wait for it to end "
                "or stop it, then try again (two runs must not write one folder)"
            ) from None
        except OSError:
            os.close(fd)  # a file system without flock: the folder is not shared-safe,
            return  # but a run there still works as before
        entry = _HELD[key] = [fd, 0]
    entry[1] += 1
    if owner is not None:
        return weakref.finalize(owner, _release, key)
    return None


def release_folder(folder: str | Path) -> None:
    """Give up one hold of `folder` taken without an owner."""
    _release(os.path.realpath(folder))
