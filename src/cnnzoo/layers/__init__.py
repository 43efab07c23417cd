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

from .inverted_residual import InvertedResidual  # noqa: E402

__all__ += ["InvertedResidual"]

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
    "ShuffleV2Unit",
    "Transition",
    "four_branch",
]

from .activations import ScaledTanh  # noqa: E402
from .fire import Fire  # noqa: E402
from .lecun import LENET5_C3_TABLE, ConnectionTableConv, Subsampling  # noqa: E402
from .shuffle import ChannelShuffle  # noqa: E402
from .shuffle_unit import ShuffleV1Unit  # noqa: E402

__all__ += [
    "LENET5_C3_TABLE",
    "ChannelShuffle",
    "ConnectionTableConv",
    "Fire",
    "ScaledTanh",
    "ShuffleV1Unit",
    "Subsampling",
]
