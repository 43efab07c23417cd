"""Datasets decoded once into uint8 tensors, and batch transforms that run on any device."""

from cnnzoo.data.archives import download_file, extract
from cnnzoo.data.images import IMAGE_EXTENSIONS, load_image
from cnnzoo.data.load import load_data
from cnnzoo.data.sources import DATASETS, default_data_dir
from cnnzoo.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AugmentCfg,
    default_augment,
    eval_transform,
    train_transform,
)
from cnnzoo.data.types import DataBundle, ImageTensors

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
