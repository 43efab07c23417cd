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
