"""Datasets decoded once into uint8 tensors, and batch transforms that run on any device."""

from .archives import download_file, extract
from .images import IMAGE_EXTENSIONS, load_image
from .load import DATASETS, default_data_dir, load_data
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentCfg,
    default_augment,
    eval_transform,
    train_transform,
)
from .types import DataBundle, ImageTensors

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "AugmentCfg",
    "DataBundle",
    "ImageTensors",
    "default_augment",
    "default_data_dir",
    "download_file",
    "eval_transform",
    "extract",
    "load_data",
    "load_image",
    "train_transform",
]
