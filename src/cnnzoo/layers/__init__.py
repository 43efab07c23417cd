"""Building blocks shared by every family: each block type is written once, here."""

from .activations import HardSigmoid, HardSwish, make_activation
from .conv import ConvNormAct, DepthwiseSeparableConv, same_padding
from .drop import DropPath, drop_path
from .norm import LayerNorm2d
from .scale import LayerScale
from .se import SqueezeExcite, make_divisible
from .shuffle import ChannelShuffle, channel_shuffle

__all__ = [
    "ChannelShuffle",
    "ConvNormAct",
    "DepthwiseSeparableConv",
    "DropPath",
    "HardSigmoid",
    "HardSwish",
    "LayerNorm2d",
    "LayerScale",
    "SqueezeExcite",
    "channel_shuffle",
    "drop_path",
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
    inception_resnet_a,
    inception_resnet_b,
    inception_resnet_c,
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
    "inception_resnet_a",
    "inception_resnet_b",
    "inception_resnet_c",
]
