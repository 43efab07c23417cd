"""Downloading dataset archives with a checksum check, and extracting them safely."""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

from cnnzoo import download
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")
_BLOCK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file (MD5 unless told: what dataset publishers give)."""
    return download.file_digest(path, algorithm)


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    progress: bool = True,
    hint: str = "",
) -> Path:
    """Fetch `url` to `dest` (resumably, through dest.part, so a broken download never looks
    complete) and check its MD5. `hint` ends the error message: what to do instead."""
    download.download(url, dest, checksum=md5, algorithm="md5", progress=progress, hint=hint)
    return Path(dest)


def _safe_name(dest: Path, name: str) -> str:
    """`name` normalised, refused when it would land outside `dest`."""
    norm = os.path.normpath(name)
    if os.path.isabs(norm) or norm == ".." or norm.startswith(".." + os.sep):
        raise CnnzooError(f"refused to extract {name!r}: it would land outside {dest}")
    return norm


def _extract_tar(archive: Path, dest: Path) -> None:
    """Stream the members out in one pass: regular files and folders only (no links, devices
    or permission bits), which is also several times faster than tarfile.extractall."""
    made, skipped = set(), []
    with tarfile.open(archive, "r:*") as t:
        for m in t:
            target = dest / _safe_name(dest, m.name)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                if target.parent not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent)
                with t.extractfile(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _BLOCK)
            else:
                skipped.append(m.name)
    if skipped:
        log.warning(
            "%s: left out %d link(s) or special file(s), e.g. %s", archive, len(skipped), skipped[0]
        )


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a .tar / .tar.gz / .tgz / .zip archive into `dest` and return `dest`.

    Members that would land outside `dest` (absolute paths, '..') are refused; links and
    special files are left out. A marker file remembers a finished extraction, so a second
    call returns at once.
    """
    archive, dest = Path(archive), Path(dest).expanduser().resolve()
    if not archive.is_file():
        raise CnnzooError(f"archive not found: {archive}")
    stat = archive.stat()
    marker = dest / f".cnnzoo-extracted-{archive.name}"
    stamp = f"{stat.st_size} {int(stat.st_mtime)}"
    if marker.is_file() and marker.read_text() == stamp:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for name in z.namelist():
                    _safe_name(dest, name)
                z.extractall(dest)
        else:
            _extract_tar(archive, dest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise CnnzooError(f"cannot extract {archive}: {e}; the file may be incomplete") from None
    marker.write_text(stamp)
    return dest


def obtain(
    url: str,
    md5: str,
    data_dir: Path,
    folder: str,
    *,
    title: str,
    size_mb: int,
    download: bool,
    progress: bool,
) -> None:
    """Make data_dir/folder from its archive (the last part of `url`): the archive already in
    data_dir when its MD5 checks out, else a download when `download` allows one."""
    archive = data_dir / url.rsplit("/", 1)[-1]
    where = f"put {folder}/ (from {archive.name}) in {data_dir} or pass --data-dir"
    if not (archive.is_file() and file_digest(archive) == md5):
        if archive.is_file() and not download:
            raise CnnzooError(
                f"{archive} fails its MD5 check; delete it, or pass --download to fetch it again"
            )
        if not download:
            raise CnnzooError(
                f"{title} not found in {data_dir / folder}; pass --download to fetch it "
                f"(about {size_mb} MB), or {where}"
            )
        download_file(url, archive, md5=md5, progress=progress, hint=where)
    extract(archive, data_dir)
