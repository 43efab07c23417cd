"""Building blocks shared by every family: each block type is written once, here."""

from cnnzoo.layers.activations import make_activation
from cnnzoo.layers.conv import ConvNormAct, DepthwiseSeparableConv, same_padding
from cnnzoo.layers.drop import DropPath, drop_path
from cnnzoo.layers.head import ClassifierHead, global_pool
from cnnzoo.layers.norm import LayerNorm2d
from cnnzoo.layers.se import SqueezeExcite, make_divisible
from cnnzoo.layers.shuffle import channel_shuffle

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

from cnnzoo.layers.inverted_residual import FusedMBConv, InvertedResidual  # noqa: E402

__all__ += ["FusedMBConv", "InvertedResidual"]

from cnnzoo.layers.bottleneck import ResBottleneck  # noqa: E402
from cnnzoo.layers.dense import DenseBlock, DenseLayer, Transition  # noqa: E402
from cnnzoo.layers.inception import (  # noqa: E402
    ConvBnAct,
    Inception,
    InceptionResidual,
    four_branch,
)
from cnnzoo.layers.shuffle_unit import ShuffleV2Unit  # noqa: E402

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

from cnnzoo.layers.activations import ScaledTanh  # noqa: E402
from cnnzoo.layers.fire import Fire  # noqa: E402
from cnnzoo.layers.lecun import LENET5_C3_TABLE, ConnectionTableConv, Subsampling  # noqa: E402
from cnnzoo.layers.shuffle import ChannelShuffle  # noqa: E402
from cnnzoo.layers.shuffle_unit import ShuffleV1Unit  # noqa: E402

__all__ += [
    "LENET5_C3_TABLE",
    "ChannelShuffle",
    "ConnectionTableConv",
    "Fire",
    "ScaledTanh",
    "ShuffleV1Unit",
    "Subsampling",
]
