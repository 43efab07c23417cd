"""RegNetX and RegNetY (Radosavovic et al. 2020, "Designing Network Design Spaces").

A RegNet is not listed block by block: its rows are the design space's parameters, and the
stages are generated from them as the paper does (section 3.3), as torchvision does:

    u_j = w0 + wa * j                      for block j = 0 .. depth-1 (a linear ramp of widths)
    s_j = round(log(u_j / w0) / log(wm))   (each width as a power of wm ...)
    w_j = round(w0 * wm^s_j / 8) * 8       (... quantized: piecewise constant, multiples of 8)

Consecutive blocks of equal width form a stage (each stage halves the resolution); a stage's
width is then made compatible with its group width: the group width is capped at the
bottleneck width (width * bottleneck ratio, 1 here), which is rounded to a multiple of it. A Y network adds SE to
every block (squeezed to a quarter of the block's input width).

The network: a 3x3/2 conv stem (32 channels), the four stages of `layers.ResBottleneck` blocks,
global pooling and a Linear. Keys follow torchvision (stem.0/1, trunk_output.blockS.blockS-B...,
fc), so its checkpoints load as they are. `cfg` is the eval transform of torchvision's default
weights (IMAGENET1K_V2: resize 232, crop 224; regnet_y_128gf: SWAG_E2E_V1 at 384, bicubic); the
other sets' transforms are in cnnzoo.hub. `stem="cifar"`: the stem conv at stride 1.
Feature maps (`features_only`): the stem and each stage, as timm's RegNets give them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import ConvNormAct, ResBottleneck, make_divisible
from cnnzoo.layers.head import global_pool
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model

QUANT = 8  # widths are multiples of 8
STEM_WIDTH = 32


@dataclass(frozen=True)
class RegNetRow:
    """One network of the design space: the paper's Tables in its appendix (and torchvision)."""

    depth: int  # d: blocks in all
    w0: int  # initial width
    wa: float  # slope of the width ramp
    wm: float  # width multiplier between stages
    group_width: int  # g
    se_ratio: float = 0.0  # 0.25 for RegNetY, 0 for RegNetX
    bottleneck: float = 1.0  # b


def stage_plan(row: RegNetRow) -> list[tuple[int, int, int]]:
    """(width, depth, group width) of each stage, generated from the row's parameters as
    described above (a stage narrower than the group width is one group)."""
    widths = []
    for j in range(row.depth):
        u = row.w0 + row.wa * j
        s = round(math.log(u / row.w0) / math.log(row.wm))
        widths.append(int(round(row.w0 * row.wm**s / QUANT) * QUANT))
    stages: list[list[int]] = []
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    plan = []
    for w, d in stages:  # bottleneck width a multiple of min(group width, bottleneck width)
        w_b = int(w * row.bottleneck)
        g = min(row.group_width, w_b)
        plan.append((int(make_divisible(w_b, g) / row.bottleneck), d, g))
    return plan


#      name                depth  w0     wa    wm  group width  SE
ROWS: dict[str, RegNetRow] = {
    "regnet_x_400mf": RegNetRow(22, 24, 24.48, 2.54, 16),
    "regnet_x_800mf": RegNetRow(16, 56, 35.73, 2.28, 16),
    "regnet_x_1_6gf": RegNetRow(18, 80, 34.01, 2.25, 24),
    "regnet_x_3_2gf": RegNetRow(25, 88, 26.31, 2.25, 48),
    "regnet_x_8gf": RegNetRow(23, 80, 49.56, 2.88, 120),
    "regnet_x_16gf": RegNetRow(22, 216, 55.59, 2.1, 128),
    "regnet_x_32gf": RegNetRow(23, 320, 69.86, 2.0, 168),
    "regnet_y_400mf": RegNetRow(16, 48, 27.89, 2.09, 8, 0.25),
    "regnet_y_800mf": RegNetRow(14, 56, 38.84, 2.4, 16, 0.25),
    "regnet_y_1_6gf": RegNetRow(27, 48, 20.71, 2.65, 24, 0.25),
    "regnet_y_3_2gf": RegNetRow(21, 80, 42.63, 2.66, 24, 0.25),
    "regnet_y_8gf": RegNetRow(17, 192, 76.82, 2.19, 56, 0.25),
    "regnet_y_16gf": RegNetRow(18, 200, 106.23, 2.48, 112, 0.25),
    "regnet_y_32gf": RegNetRow(20, 232, 115.89, 2.53, 232, 0.25),
    "regnet_y_128gf": RegNetRow(27, 456, 160.83, 2.52, 264, 0.25),
}


class RegNet(Classifier):
    classifier_name = "fc"

    def __init__(
        self,
        row: RegNetRow,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stem_stride = 2 if check_stem(stem) == "imagenet" else 1
        self.stem = ConvNormAct(in_chans, STEM_WIDTH, 3, stem_stride)
        self.feature_info = FeatureInfo([Feature("stem", STEM_WIDTH, stem_stride)])
        plan = stage_plan(row)
        total = sum(d for _, d, _ in plan)
        trunk = nn.Sequential()
        cin, k, reduction = STEM_WIDTH, 0, stem_stride
        for i, (width, depth, group_width) in enumerate(plan, start=1):
            stage = nn.Sequential()
            for j in range(depth):
                block = ResBottleneck(
                    cin,
                    width,
                    2 if j == 0 else 1,
                    group_width,
                    row.bottleneck,
                    row.se_ratio,
                    drop_path=drop_path_rate * k / max(total - 1, 1),
                )
                stage.add_module(f"block{i}-{j}", block)
                cin, k = width, k + 1
            trunk.add_module(f"block{i}", stage)
            reduction *= 2
            self.feature_info.append(Feature(f"trunk_output.block{i}", width, reduction))
        self.trunk_output = trunk
        self.num_features = cin
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes) if num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's: He-normal (fan-out) convs, unit BN, N(0, 0.01) linear."""
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk_output(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(global_pool(x))
        return x if pre_logits else self.fc(x)


# ---------------------------------------------------------------- registered models
PAPER = "Radosavovic et al. 2020, Designing Network Design Spaces"
# torchvision's default weights: IMAGENET1K_V2 (resize 232, crop 224, bilinear), except
# regnet_y_128gf, published only as SWAG weights (IMAGENET1K_SWAG_E2E_V1: 384 px, bicubic)
V2 = ModelCfg("regnet", crop_pct=224 / 232, source="torchvision", paper=PAPER)
SWAG_E2E = ModelCfg(
    "regnet", input_size=384, crop_pct=1.0, interpolation="bicubic", source="torchvision",
    paper=PAPER,
)  # fmt: skip


def _make(name: str, **kw) -> RegNet:
    return RegNet(ROWS[name], **kw)


@register_model(V2)
def regnet_x_400mf(**kw) -> RegNet:
    return _make("regnet_x_400mf", **kw)


@register_model(V2)
def regnet_x_800mf(**kw) -> RegNet:
    return _make("regnet_x_800mf", **kw)


@register_model(V2)
def regnet_x_1_6gf(**kw) -> RegNet:
    return _make("regnet_x_1_6gf", **kw)


@register_model(V2)
def regnet_x_3_2gf(**kw) -> RegNet:
    return _make("regnet_x_3_2gf", **kw)


@register_model(V2)
def regnet_x_8gf(**kw) -> RegNet:
    return _make("regnet_x_8gf", **kw)


@register_model(V2)
def regnet_x_16gf(**kw) -> RegNet:
    return _make("regnet_x_16gf", **kw)


@register_model(V2)
def regnet_x_32gf(**kw) -> RegNet:
    return _make("regnet_x_32gf", **kw)


@register_model(V2)
def regnet_y_400mf(**kw) -> RegNet:
    return _make("regnet_y_400mf", **kw)


@register_model(V2)
def regnet_y_800mf(**kw) -> RegNet:
    return _make("regnet_y_800mf", **kw)


@register_model(V2)
def regnet_y_1_6gf(**kw) -> RegNet:
    return _make("regnet_y_1_6gf", **kw)


@register_model(V2)
def regnet_y_3_2gf(**kw) -> RegNet:
    return _make("regnet_y_3_2gf", **kw)


@register_model(V2)
def regnet_y_8gf(**kw) -> RegNet:
    return _make("regnet_y_8gf", **kw)


@register_model(V2)
def regnet_y_16gf(**kw) -> RegNet:
    return _make("regnet_y_16gf", **kw)


@register_model(V2)
def regnet_y_32gf(**kw) -> RegNet:
    return _make("regnet_y_32gf", **kw)


@register_model(SWAG_E2E)
def regnet_y_128gf(**kw) -> RegNet:
    return _make("regnet_y_128gf", **kw)
