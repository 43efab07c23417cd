"""scikit-learn's 8x8 handwritten digits (1,797 images, bundled with the package: no download)."""

from __future__ import annotations

import numpy as np
import torch

from cnnzoo.cfg import Size, size_hw, size_value
from cnnzoo.data.split import held_out_name, stratified_split
from cnnzoo.data.stats import channel_stats
from cnnzoo.data.transforms import resize_uint8
from cnnzoo.data.types import DataBundle, ImageTensors


def load_digits(
    *, image_size: Size | None = None, val_split: float = 0.1, seed: int = 0
) -> DataBundle:
    """Digits as 3-channel images (grey repeated, so every in_chans=3 model takes them),
    values 0..16 scaled to 0..255, 8 px unless image_size asks otherwise; seeded stratified
    split; mean / std measured on the training part."""
    # scikit-learn is slow to import; only the digits need it
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    grey = torch.from_numpy(np.clip(np.rint(d.images * (255 / 16)), 0, 255).astype(np.uint8))
    images = grey[:, None].expand(-1, 3, -1, -1).contiguous()
    if image_size and size_hw(image_size) != tuple(images.shape[-2:]):
        images = resize_uint8(images, image_size)
    labels = torch.from_numpy(d.target).long()
    tr, va = stratified_split(labels, val_split, seed)
    mean, std = channel_stats(images[tr])
    return DataBundle(
        name="digits",
        classes=[str(i) for i in range(10)],
        train=ImageTensors(images[tr], labels[tr]),
        val=ImageTensors(images[va], labels[va]),
        val_name=held_out_name(val_split),
        image_size=size_value(tuple(images.shape[-2:])),
        mean=mean,
        std=std,
    )
