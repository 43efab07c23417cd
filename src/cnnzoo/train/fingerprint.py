"""What a run was trained on, recorded in RUN/data.json when it starts and compared when it
resumes: the class list in label order, and per class the number of files and a digest of
their names (relative to the data's root), sizes and modification times (the facts the disk
cache key uses), for the training and the held-out images. Built-in datasets without files
are fingerprinted by their label counts and a sample of their pixels.

A resume on changed data (images deleted or replaced, a class renamed so label indices shift,
two class folders swapped, a class added) is refused in one line that says what changed;
`--allow-data-change` goes on knowingly and records the change in data.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from cnnzoo.artifacts.files import write_json
from cnnzoo.data.types import DataBundle, ImageTensors
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

DATA_FILE = "data.json"


def _split_digests(split: ImageTensors, classes: list[str], root: str) -> dict[str, list]:
    """class -> [files, digest] for one split."""
    labels = split.labels.tolist()
    hashes = [hashlib.sha256() for _ in classes]
    counts = [0] * len(classes)
    if split.paths:
        rows = []
        for path, label in zip(split.paths, labels, strict=True):
            try:
                st = os.stat(path)
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "missing"
            rows.append((os.path.relpath(path, root), label, stamp))
        for rel, label, stamp in sorted(rows):
            hashes[label].update(os.fsencode(rel) + f"\0{stamp}\n".encode())
            counts[label] += 1
    else:  # a built-in dataset: its pixels (every 64th image) say whether it is the same
        for i in range(0, len(labels), 64):
            hashes[labels[i]].update(split.images[i].contiguous().numpy().tobytes())
        counts = torch.bincount(split.labels, minlength=len(classes)).tolist()
    return {c: [counts[k], hashes[k].hexdigest()[:16]] for k, c in enumerate(classes)}


def data_fingerprint(bundle: DataBundle) -> dict[str, Any]:
    """The fingerprint of `bundle` (see the module's docstring)."""
    classes = list(bundle.classes)
    test = bundle.test
    paths = [*(bundle.train.paths or []), *(bundle.val.paths or []),
             *((test.paths or []) if test is not None else [])]  # fmt: skip
    root = os.path.commonpath(paths) if paths else ""
    out = {
        "classes": classes,
        "train": _split_digests(bundle.train, classes, root),
        "val": _split_digests(bundle.val, classes, root),
    }
    if test is not None:  # only then: fingerprints of runs without a test folder stay as they were
        out["test"] = _split_digests(test, classes, root)
    return out


def _names(items: list[str], most: int = 3, quote: bool = True) -> str:
    shown = ", ".join(repr(x) if quote else x for x in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What changed between two fingerprints, in a few words, or None."""
    a, b = old.get("classes", []), new.get("classes", [])
    if a != b:
        added, removed = [c for c in b if c not in a], [c for c in a if c not in b]
        if added or removed:
            parts = [f"added {_names(added)}"] if added else []
            parts += [f"removed or renamed {_names(removed)}"] if removed else []
            return "classes " + "; ".join(parts) + " (label indices would shift)"
        return "the classes are in another order (label indices would shift)"
    changed = []
    for split in ("train", "val", "test"):
        for c in b:
            was, now = old.get(split, {}).get(c), new.get(split, {}).get(c)
            if was != now:
                what = (f"{was[0]} -> {now[0]} files" if was and now and was[0] != now[0]
                        else "files replaced or modified")  # fmt: skip
                changed.append(f"{c!r} ({split}: {what})")
    if changed:
        return "images changed in class " + _names(changed, quote=False)
    return None


def check_data(
    run_dir: Path, bundle: DataBundle, resumed: bool, allow: bool
) -> dict[str, Any] | None:
    """Record the fingerprint of a new run; on resume, refuse changed data unless `allow`.
    An accepted change is returned, not written: the caller records it (`record_data`) once
    the state has loaded, so a resume refused later leaves data.json as it was. A run from
    before fingerprints gets one now."""
    path = Path(run_dir) / DATA_FILE
    new = data_fingerprint(bundle)
    record: dict[str, Any] = {"fingerprint": new, "accepted_changes": []}
    if resumed and path.is_file():
        try:
            record = json.loads(path.read_text())
            old = record["fingerprint"]
            change = describe_change(old, new)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            change = None
            log.warning("%s is damaged; the data's fingerprint is recorded again", path)
            record = {"fingerprint": new, "accepted_changes": []}
        if change is None:
            return None
        if not allow:
            raise CnnzooError(
                f"the data changed since {run_dir} started: {change}; resuming would train "
                "on other data than the run's outputs say; restore the data, start a new "
                "run, or go on knowingly with --allow-data-change"
            )
        log.warning("the data changed (%s); going on as --allow-data-change says", change)
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record.setdefault("accepted_changes", []).append({"at": when, "change": change})
        record["fingerprint"] = new
        return record
    write_json(path, record)
    return None


def record_data(run_dir: Path, record: dict[str, Any] | None) -> None:
    """Write an accepted change that `check_data` returned (nothing when there is none)."""
    if record is not None:
        write_json(Path(run_dir) / DATA_FILE, record)
