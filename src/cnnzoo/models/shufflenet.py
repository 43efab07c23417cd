"""ShuffleNet V1 (Zhang et al. 2017) and V2 (Ma et al. 2018) from their tables: V2 with
torchvision's names, V1 from the paper alone (no reference implementation: its names follow V2's).

Both are a 3x3/2 stem conv and 3x3/2 max-pool, three stages of shuffle units
(layers/shuffle_unit.py; the first unit of each stage has stride 2) and global average pool ->
linear classifier; V2 adds a 1x1 conv to 1024 (2048 for x2.0) channels before the pool.

V1 (the paper's Table 1): stages of 4, 8 and 4 units whose output widths depend on the number of
groups g of the 1x1 group convs (g=3: 240/480/960), each unit's bottleneck a quarter of its
output; the first 1x1 conv of stage 2 is not grouped. `width` (the paper's "ShuffleNet s x")
scales every width; at 0.5x a stem or bottleneck width that g does not divide is rounded up to a
multiple of g (the stem of 0.5x g=8 is 16, not 12) so the group convs split evenly; 1x is
exactly the paper's.

CIFAR option: `stem="cifar"` makes the stem conv stride 1 and drops the max-pool, so a 32x32 input
reaches the stages at 32x32 and the last stage at 4x4 (the ImageNet stem would leave 1x1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import ConvNormAct
from cnnzoo.layers.shuffle_unit import ShuffleV1Unit, ShuffleV2Unit
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

# ShuffleNet V1, the paper's Table 1 at 1x: output channels of stages 2, 3, 4 per group count g
V1_STAGE_WIDTHS: dict[int, tuple[int, int, int]] = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
V1_STEM, V1_REPEATS = 24, (4, 8, 4)

# a unit factory: (in channels, out channels, stride, index of the stage from 0) -> unit
UnitFn = Callable[[int, int, int, int], nn.Module]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class ShuffleNet(Classifier):
    """Stem, max-pool, three stages of `unit`s, an optional 1x1 conv (`last` > 0), the head."""

    classifier_name = "fc"

    def __init__(
        self,
        stem_chs: int,
        stage_chs: tuple[int, ...],
        repeats: tuple[int, ...],
        unit: UnitFn,
        last: int = 0,
        num_classes: int = 1000,
        in_chans: int = 3,
        stem: str = "imagenet",
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stride = 2 if check_stem(stem) == "imagenet" else 1
        self.conv1 = ConvNormAct(in_chans, stem_chs, 3, stride)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        # maps at every stride: stem conv, max-pool, each stage (but the last when a 1x1 conv
        # follows it at the same stride), the final 1x1 conv
        self.feature_info = FeatureInfo(
            [Feature("conv1", stem_chs, stride), Feature("maxpool", stem_chs, stride**2)]
        )
        reduction = stride**2
        cin = stem_chs
        self.stage_names = []
        for i, (n, cout) in enumerate(zip(repeats, stage_chs, strict=True)):
            units = [unit(cin if j == 0 else cout, cout, 2 if j == 0 else 1, i) for j in range(n)]
            name = f"stage{i + 2}"
            self.add_module(name, nn.Sequential(*units))
            self.stage_names.append(name)
            reduction *= 2
            if i < len(stage_chs) - 1 or not last:
                self.feature_info.append(Feature(name, cout, reduction))
            cin = cout
        self.conv5 = ConvNormAct(cin, last, 1) if last else None
        if last:
            self.feature_info.append(Feature("conv5", last, reduction))
            cin = last
        self.num_features = cin
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x if self.conv5 is None else self.conv5(x)


def shufflenet_v2(spec: ShuffleNetV2Spec, **kw) -> ShuffleNet:
    stem_chs, *stage_chs, last = spec.channels

    def unit(cin: int, cout: int, stride: int, stage: int) -> nn.Module:
        return ShuffleV2Unit(cin, cout, stride)

    return ShuffleNet(stem_chs, tuple(stage_chs), spec.repeats, unit, last, **kw)


def shufflenet_v1(groups: int, width: float = 1.0, **kw) -> ShuffleNet:
    """ShuffleNet V1 with `groups` (1, 2, 3, 4 or 8) at `width` x the paper's 1x widths."""
    if groups not in V1_STAGE_WIDTHS:
        raise ValueError(f"groups must be one of {sorted(V1_STAGE_WIDTHS)}, got {groups}")
    stage_chs = tuple(int(c * width) for c in V1_STAGE_WIDTHS[groups])
    stem_chs = _round_up(int(V1_STEM * width), groups)

    def unit(cin: int, cout: int, stride: int, stage: int) -> nn.Module:
        mid = _round_up(cout // 4, groups)
        return ShuffleV1Unit(cin, cout, mid, groups, stride, group_first=cin != stem_chs)

    return ShuffleNet(stem_chs, stage_chs, V1_REPEATS, unit, **kw)


V2_CFG = partial(
    ModelCfg,
    "shufflenet_v2",
    source="torchvision",
    paper="Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
)
V1_CFG = ModelCfg(
    "shufflenet_v1",
    source="paper",
    paper="Zhang et al. 2017, ShuffleNet: An Extremely Efficient CNN for Mobile Devices",
)


@register_model(V2_CFG())  # torchvision: resize 256, crop 224
def shufflenet_v2_x0_5(**kw) -> ShuffleNet:
    return shufflenet_v2(SPECS["shufflenet_v2_x0_5"], **kw)


@register_model(V2_CFG())
def shufflenet_v2_x1_0(**kw) -> ShuffleNet:
    return shufflenet_v2(SPECS["shufflenet_v2_x1_0"], **kw)


@register_model(V2_CFG(crop_pct=224 / 232))  # resize 232
def shufflenet_v2_x1_5(**kw) -> ShuffleNet:
    return shufflenet_v2(SPECS["shufflenet_v2_x1_5"], **kw)


@register_model(V2_CFG(crop_pct=224 / 232))
def shufflenet_v2_x2_0(**kw) -> ShuffleNet:
    return shufflenet_v2(SPECS["shufflenet_v2_x2_0"], **kw)


# ShuffleNet V1: shufflenet_v1_x{width}_g{groups}, the paper's "ShuffleNet s x (g = G)"
@register_model(V1_CFG)
def shufflenet_v1_x1_0_g1(**kw) -> ShuffleNet:
    return shufflenet_v1(1, 1.0, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x1_0_g2(**kw) -> ShuffleNet:
    return shufflenet_v1(2, 1.0, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x1_0_g3(**kw) -> ShuffleNet:
    return shufflenet_v1(3, 1.0, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x1_0_g4(**kw) -> ShuffleNet:
    return shufflenet_v1(4, 1.0, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x1_0_g8(**kw) -> ShuffleNet:
    return shufflenet_v1(8, 1.0, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x0_5_g1(**kw) -> ShuffleNet:
    return shufflenet_v1(1, 0.5, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x0_5_g2(**kw) -> ShuffleNet:
    return shufflenet_v1(2, 0.5, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x0_5_g3(**kw) -> ShuffleNet:
    return shufflenet_v1(3, 0.5, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x0_5_g4(**kw) -> ShuffleNet:
    return shufflenet_v1(4, 0.5, **kw)


@register_model(V1_CFG)
def shufflenet_v1_x0_5_g8(**kw) -> ShuffleNet:
    return shufflenet_v1(8, 0.5, **kw)
