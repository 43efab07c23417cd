"""MobileNetV1 (Howard et al. 2017), from its Table 1, with timm's module names.

A 3x3/2 stem conv, then thirteen depthwise-separable layers (`layers.DepthwiseSeparableConv`:
depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6; no residuals), global average pool and
a linear classifier. The rows below are the paper's table, one per "Conv dw / Conv 1x1" pair
(the paper prints the last depthwise conv as s2, but its 7x7 output is stride 1, as every
implementation has it); every stride-2 row starts a new stage, which gives timm's key layout
(blocks.STAGE.INDEX: stages of 1, 2, 2, 6, 2 layers). Channels scale by `width_mult`, rounded
to multiples of 8.

Feature maps (`features_only`): the last layer of each stage (64, 128, 256, 512, 1024 channels
at reductions 2 to 32), as timm gives them.

Small input (CIFAR, 32x32): `stem="cifar"` makes the stem conv stride 1, so the last stage sees
2x2 instead of 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.cfg import INCEPTION_MEAN, INCEPTION_STD, ModelCfg
from cnnzoo.layers import DepthwiseSeparableConv, make_activation, make_divisible
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model

STEM_WIDTH = 32
#  the paper's Table 1: (stride of the depthwise conv, output channels of the pointwise conv)
MOBILENET_V1_ROWS: tuple[tuple[int, int], ...] = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    *((1, 512),) * 5,
    (2, 1024),
    (1, 1024),
)


class MobileNetV1(Classifier):
    classifier_name = "classifier"

    def __init__(
        self,
        rows: tuple[tuple[int, int], ...] = MOBILENET_V1_ROWS,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        drop_rate: float = 0.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stride = 2 if check_stem(stem) == "imagenet" else 1
        cin = make_divisible(STEM_WIDTH * width_mult, 8)
        self.conv_stem = nn.Conv2d(in_chans, cin, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.act1 = make_activation("relu6")
        stages: list[list[nn.Module]] = []
        self.feature_info = FeatureInfo()
        reduction = stride
        for s, c in rows:
            if s > 1 or not stages:
                stages.append([])
                if s > 1 and len(stages) > 1:  # the stage before ends at the old reduction
                    self.feature_info.append(Feature(f"blocks.{len(stages) - 2}", cin, reduction))
            reduction *= s
            cout = make_divisible(c * width_mult, 8)
            stages[-1].append(DepthwiseSeparableConv(cin, cout, 3, s, act="relu6"))
            cin = cout
        self.feature_info.append(Feature(f"blocks.{len(stages) - 1}", cin, reduction))
        self.blocks = nn.Sequential(*(nn.Sequential(*stage) for stage in stages))
        self.num_features = cin
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(cin, num_classes) if num_classes else nn.Identity()
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))


# timm's eval transform of mobilenetv1_100.ra4_e3600_r224_in1k: resize 256 (crop 0.875),
# bicubic, mean = std = 0.5
CFG = ModelCfg(
    "mobilenet_v1",
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    interpolation="bicubic",
    source="timm",
    paper="Howard et al. 2017, MobileNets: Efficient CNNs for Mobile Vision Applications",
)


@register_model(CFG)
def mobilenetv1_100(**kw) -> MobileNetV1:
    """MobileNetV1 1.0: 4.2M params, 0.57 GMACs at 224."""
    return MobileNetV1(**kw)
