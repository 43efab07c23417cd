"""Imagenette (10 easy ImageNet classes, fast.ai): the 160 px or 320 px release as a folder.

The archives extract to imagenette2-{160,320}/{train,val}/WNID/*.JPEG; they load through the
image-folder loader, and WordNet ids become readable class names.
"""

from __future__ import annotations

from pathlib import Path

from cnnzoo.cfg import Size, size_hw
from cnnzoo.data.archives import obtain
from cnnzoo.errors import CnnzooError

# WordNet id -> name, in WordNet-id order (the class index order)
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}

_URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-{px}.tgz"
# MD5s as published with torchvision's Imagenette dataset (the 320 px one also matches a
# second, independent project). Not checked against the files here (no network); the
# folder layout is checked after extraction as well.
_MD5 = {160: "e793b78cc4c9e9a4ccc0c1155377a412", 320: "3df6f0d01a2c9592104656642f5e78a3"}
_SIZE_MB = {160: 95, 320: 330}  # approximate, for messages only


def readable_class_names(classes: list[str]) -> list[str]:
    """Imagenette's WordNet-id folders renamed to class names; other names unchanged."""
    if set(classes) == set(IMAGENETTE_CLASSES):
        return [IMAGENETTE_CLASSES[c] for c in classes]
    return classes


def _complete(folder: Path) -> bool:
    return all(
        (folder / split / wnid).is_dir()
        for split in ("train", "val")
        for wnid in IMAGENETTE_CLASSES
    )


def imagenette_folder(
    data_dir: Path, image_size: Size | None, download: bool, progress: bool
) -> Path:
    """The extracted release under data_dir: 160 px when image_size <= 160 (or unset),
    else 320 px. A 320 px copy already there also serves small sizes."""
    px = 160 if min(size_hw(image_size or 160)) <= 160 else 320
    for have in (px, 320):
        folder = data_dir / f"imagenette2-{have}"
        if _complete(folder):
            return folder
    folder = data_dir / f"imagenette2-{px}"
    obtain(
        _URL.format(px=px),
        _MD5[px],
        data_dir,
        folder.name,
        title="Imagenette",
        size_mb=_SIZE_MB[px],
        download=download,
        progress=progress,
    )
    if not _complete(folder):
        raise CnnzooError(
            f"imagenette2-{px}.tgz did not extract to {folder}/{{train,val}}/WNID; "
            "delete both and retry"
        )
    return folder
