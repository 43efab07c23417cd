"""The tensors that flow from data loading into training: decoded once, stored as uint8.

Every dataset (digits, CIFAR, an image folder, Imagenette) is turned into an `ImageTensors`
of equally sized uint8 images; augmentation then runs on whole batches, on whatever device
the batch is on (see `cnnzoo.data.transforms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ImageTensors:
    images: torch.Tensor  # uint8 [N, C, H, W], RGB (C=3) or grey (C=1)
    labels: torch.Tensor  # int64 [N]
    paths: list[str] | None = None  # source file of each image, when there is one

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class DataBundle:
    name: str  # "digits", "cifar10", or the folder path
    classes: list[str]
    train: ImageTensors
    val: ImageTensors
    val_name: str  # where val came from: "val" (or "valid", "validation"), "test" (CIFAR), or
    # "held-out 10% of train"; val picks the best checkpoint
    image_size: int | list[int]  # side of the stored squares, or [H, W] of rectangles
    mean: tuple[float, ...]
    std: tuple[float, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    # folders only: how many source files had each (width, height, Pillow mode)
    source_formats: dict[tuple[int, int, str], int] = field(default_factory=dict)
    # folders with a test/ folder: scored once, at the end of training, never for selection
    test: ImageTensors | None = None
