"""Files on disk, written so that a kill or a full disk never leaves a torn file under its name,
and so that no write replaces what it must not.

Every write goes to a temp file (`.NAME.tmpPID`), is fsynced and renamed over the target, so a
kill at any moment leaves the previous file whole; temp files of killed writes are removed by
`remove_temp_files` when a run starts again, and by the next write to the same name. Before it
writes, every writer checks its target (`target_problem`): a device, FIFO, socket or folder is
never replaced (run as root, `os.replace` would turn /dev/null into a regular file), and the
outputs a user names (`staged_output`, `write_output`: exports, evaluation pages, grids) are
also refused a run's own checkpoint and state files and a suffix that does not fit their
format. `write_bytes_to` is the one place bytes reach a file: tests replace it (monkeypatch) to
pause or fail a write half-way.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cnnzoo.errors import CnnzooError

_TEMP_NAME = re.compile(r"^\..+\.tmp(\d+)$")

# The files a run folder owns (artifacts/sidecar.py names each; tests/test_writes.py checks
# that these match): an output named by the user never replaces one of them in a run folder.
RUN_FILE_NAMES = frozenset({
    "best.safetensors", "best.json", "last.safetensors", "last.json", "state.safetensors",
    "state.prev.safetensors", "config.json", "metrics.jsonl", "metrics.csv", "curves.png",
    "skipped.tsv", "data.json", "lr_find.json",
})  # fmt: skip
# a folder holding one of these is a run folder
_RUN_MARKERS = ("state.safetensors", "best.safetensors", "last.safetensors", "config.json")


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


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def target_problem(path: str | Path) -> str | None:
    """Why `path` cannot be written by replacing it, or None: it must be a new name in an
    existing folder (or one that can be made) or a regular file (a link is judged by what it
    leads to)."""
    path = Path(path)
    try:
        st = os.stat(path)  # follows links: a link to /dev/null is a device
    except FileNotFoundError:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            return f"{parent} is not a folder"
        return None
    except OSError as e:
        return e.strerror or str(e)
    if not stat.S_ISREG(st.st_mode):
        return f"it is {_kind(st.st_mode)}"
    return None


def output_problem(path: str | Path, suffixes: Sequence[str] = ()) -> str | None:
    """`target_problem`, and for an output a user named: not one of a run folder's own files,
    and a name ending in one of `suffixes` (when given)."""
    path = Path(path)
    problem = target_problem(path)
    if problem is not None:
        return problem
    name = path.name.lower()
    if suffixes and not any(name.endswith(s.lower()) for s in suffixes):
        return f"its name does not end in {' or '.join(suffixes)}"
    folder = path.parent
    in_run = any((folder / m).is_file() for m in _RUN_MARKERS)
    if path.exists() and (name.endswith(".safetensors") or (in_run and name in RUN_FILE_NAMES)):
        return "it is a checkpoint or state file of a run"
    return None


def check_output(path: str | Path, suffixes: Sequence[str] = (), what: str = "") -> Path:
    """`output_problem` as a one-line CnnzooError naming the option (`what`); returns the path."""
    problem = output_problem(path, suffixes)
    if problem is not None:
        label = f"{what} {path}" if what else str(path)
        raise CnnzooError(f"cannot write {label}: {problem}; choose a new file name")
    return Path(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: alive
    return True


def remove_stale_temps(path: Path) -> None:
    """Remove the temp files of earlier writes to `path` whose writer is gone (killed)."""
    folder, prefix = path.parent, f".{path.name}.tmp"
    try:
        names = os.listdir(folder) if folder.is_dir() else []
    except OSError:
        return
    for n in names:
        m = _TEMP_NAME.match(n)
        if n.startswith(prefix) and m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                p = folder / n
                if p.is_file() and not p.is_symlink():
                    p.unlink()


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


def _why(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno == errno.EDQUOT:
        return "the disk quota is used up"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is read-only or not writable"
    return e.strerror or str(e)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged(
    path: str | Path, *, keep_previous: bool = False, hint: str = "then --resume"
) -> Iterator[Path]:
    """Yield the temp path to write `path`'s new content to; on leaving, the temp file is
    fsynced and renamed over `path` (checked again first: nothing replaces a device or a folder
    that appeared meanwhile). Any OSError, raised by the caller's writing or here, removes the
    temp file and becomes one WriteError line; `path` stays as it was."""
    path = Path(path)
    problem = target_problem(path)
    if problem is not None:
        raise WriteError(f"cannot write {path}: {problem}; choose a new file name")
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        yield tmp
        _fsync_file(tmp)
        problem = target_problem(path)
        if problem is not None:
            raise WriteError(f"cannot write {path}: {problem}; choose a new file name")
        if keep_previous and path.is_file():
            _keep_previous(path)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        state = "the previous one is intact" if path.is_file() else "nothing was written"
        raise WriteError(
            f"could not write {path}: {_why(e)} ({state}); free space or fix the folder's "
            f"permissions, {hint}"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, keep_previous: bool = False) -> None:
    """Write `data` to `path` through a fsynced temp file and a rename; with `keep_previous`
    the file it replaces stays as `previous_path(path)`. A failed write (full disk, read-only
    folder) removes its temp file and raises WriteError, leaving `path` as it was."""
    with staged(path, keep_previous=keep_previous) as tmp:
        with open(tmp, "wb") as f:
            write_bytes_to(f, data, path)


@contextlib.contextmanager
def staged_output(path: str | Path, suffixes: Sequence[str] = (), what: str = "") -> Iterator[Path]:
    """`staged` for an output the user named (`check_output` first): yields the temp path."""
    check_output(path, suffixes, what)
    with staged(path, hint="then try again") as tmp:
        yield tmp


def write_output(
    path: str | Path,
    data: bytes | Callable[[Path], None],
    suffixes: Sequence[str] = (),
    what: str = "",
) -> Path:
    """Write an output the user named: `data` as bytes, or a function that writes the file it
    is given (matplotlib's savefig, PIL's save); checked, staged and renamed like every write."""
    with staged_output(path, suffixes, what) as tmp:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as f:
                write_bytes_to(f, data, Path(path))
    return Path(path)


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
    """Delete the temp files that killed writes left in `folder` (never one of a writer that
    is still running); returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TEMP_NAME.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def read_small_text(path: str | Path, limit: int) -> str:
    """A regular file's text, refused (OSError) when it is a device, FIFO or folder (an
    endless source) or larger than `limit` bytes: read without growing without bound."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"it is {_kind(st.st_mode)}, not a text file")
    if st.st_size > limit:
        raise OSError(errno.EFBIG, f"larger than {limit // 2**20} MB")
    with open(path, "rb") as f:
        return f.read(limit + 1)[:limit].decode("utf-8")


def write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode())


def finite_json(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None: what strict JSON can hold
    (`json.dumps` would write the non-JSON tokens NaN and Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_text(obj: Any, indent: int | None = 2) -> str:
    """Valid JSON always: non-finite numbers become null."""
    return json.dumps(finite_json(obj), indent=indent, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json_text(obj) + "\n").encode())
