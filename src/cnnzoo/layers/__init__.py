"""Building blocks shared by every family: each block type is written once, here."""

from .activations import make_activation
from .conv import ConvNormAct, DepthwiseSeparableConv, same_padding
from .drop import DropPath, drop_path
from .head import ClassifierHead, global_pool
from .norm import LayerNorm2d
from .se import SqueezeExcite, make_divisible
from .shuffle import channel_shuffle

__all__ = [
    "ClassifierHead",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "DropPath",
    "LayerNorm2d",
    "SqueezeExcite",
    "channel_shuffle",
    "drop_path",
    "global_pool",
    "make_activation",
    "make_divisible",
    "same_padding",
]

from .inverted_residual import FusedMBConv, InvertedResidual  # noqa: E402

__all__ += ["FusedMBConv", "InvertedResidual"]

from .bottleneck import ResBottleneck  # noqa: E402
from .dense import DenseBlock, DenseLayer, Transition  # noqa: E402
from .inception import (  # noqa: E402
    ConvBnAct,
    Inception,
    InceptionResidual,
    four_branch,
)
from .shuffle_unit import ShuffleV2Unit  # noqa: E402

__all__ += [
    "ConvBnAct",
    "DenseBlock",
    "DenseLayer",
    "Inception",
    "InceptionResidual",
    "ResBottleneck",
    "ShuffleV2Unit",
    "Transition",
    "four_branch",
]
