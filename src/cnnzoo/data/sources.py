"""Dataset names and where their files live: what `--data` may name besides a folder, the
default download folder, and how a run records its source. A leaf of `data/`."""

from __future__ import annotations

import os
from pathlib import Path

DATASETS = ("digits", "cifar10", "cifar100", "imagenette")


def default_data_dir() -> Path:
    """Where downloaded datasets live: $CNNZOO_DATA_DIR, else ~/.cache/cnnzoo."""
    return Path(os.environ.get("CNNZOO_DATA_DIR") or "~/.cache/cnnzoo").expanduser()


def canonical_source(source: str) -> str:
    """`source` as a run records it: a folder as an absolute path (so eval and --resume find it
    from any working directory); dataset names and anything else unchanged."""
    if source in DATASETS:
        return source
    path = Path(source).expanduser()
    return str(path.resolve()) if path.is_dir() else source
