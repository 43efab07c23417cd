"""ShuffleNetV2 (Ma et al. 2018), the four widths of the paper's table 5, with torchvision's names.

A 3x3/2 stem conv and 3x3/2 max-pool, three stages of ShuffleNetV2 units (layers/shuffle_unit.py;
the first unit of each stage has stride 2), a 1x1 conv to 1024 (2048 for x2.0) channels, global
average pool, linear classifier.

CIFAR option: `stem="cifar"` makes the stem conv stride 1 and drops the max-pool, so a 32x32 input
reaches the stages at 32x32 and the last stage at 4x4 (the ImageNet stem would leave 1x1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import ConvNormAct
from cnnzoo.layers.shuffle_unit import ShuffleV2Unit
from cnnzoo.models.base import Classifier, check_stem
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model


@dataclass(frozen=True)
class ShuffleNetV2Spec:
    """`channels`: stem, stage 2, stage 3, stage 4, final 1x1 conv; `repeats`: units per stage."""

    channels: tuple[int, int, int, int, int]
    repeats: tuple[int, int, int] = (4, 8, 4)


#  name                       output channels: stem, stage2, stage3, stage4, conv5
SPECS: dict[str, ShuffleNetV2Spec] = {
    "shufflenet_v2_x0_5": ShuffleNetV2Spec((24, 48, 96, 192, 1024)),
    "shufflenet_v2_x1_0": ShuffleNetV2Spec((24, 116, 232, 464, 1024)),
    "shufflenet_v2_x1_5": ShuffleNetV2Spec((24, 176, 352, 704, 1024)),
    "shufflenet_v2_x2_0": ShuffleNetV2Spec((24, 244, 488, 976, 2048)),
}


class ShuffleNetV2(Classifier):
    classifier_name = "fc"

    def __init__(
        self,
        spec: ShuffleNetV2Spec,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stride = 2 if check_stem(stem) == "imagenet" else 1
        stem_chs, *stage_chs, last = spec.channels
        self.conv1 = ConvNormAct(in_chans, stem_chs, 3, stride)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        # maps at every stride: stem conv, max-pool, each stage but the last, the final 1x1 conv
        self.feature_info = FeatureInfo(
            [Feature("conv1", stem_chs, stride), Feature("maxpool", stem_chs, stride**2)]
        )
        reduction = stride**2
        cin = stem_chs
        self.stage_names = []
        for i, (n, cout) in enumerate(zip(spec.repeats, stage_chs, strict=True)):
            units = [
                ShuffleV2Unit(cin if j == 0 else cout, cout, 2 if j == 0 else 1) for j in range(n)
            ]
            name = f"stage{i + 2}"
            self.add_module(name, nn.Sequential(*units))
            self.stage_names.append(name)
            reduction *= 2
            if i < len(stage_chs) - 1:
                self.feature_info.append(Feature(name, cout, reduction))
            cin = cout
        self.conv5 = ConvNormAct(cin, last, 1)
        self.feature_info.append(Feature("conv5", last, reduction))
        self.num_features = last
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(last, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.conv5(x)


CFG = partial(
    ModelCfg,
    "shufflenet_v2",
    source="torchvision",
    paper="Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
)


@register_model(CFG())  # torchvision: resize 256, crop 224
def shufflenet_v2_x0_5(**kw) -> ShuffleNetV2:
    return ShuffleNetV2(SPECS["shufflenet_v2_x0_5"], **kw)


@register_model(CFG())
def shufflenet_v2_x1_0(**kw) -> ShuffleNetV2:
    return ShuffleNetV2(SPECS["shufflenet_v2_x1_0"], **kw)


@register_model(CFG(crop_pct=224 / 232))  # resize 232
def shufflenet_v2_x1_5(**kw) -> ShuffleNetV2:
    return ShuffleNetV2(SPECS["shufflenet_v2_x1_5"], **kw)


@register_model(CFG(crop_pct=224 / 232))
def shufflenet_v2_x2_0(**kw) -> ShuffleNetV2:
    return ShuffleNetV2(SPECS["shufflenet_v2_x2_0"], **kw)
