"""EfficientNet B0-B7 (Tan & Le 2019): the B0 table of MBConv stages, scaled in width and depth;
and EfficientNetV2-S/M/L (Tan & Le 2021): their own tables, whose early stages are fused MBConv.

B0 is a stride-2 3x3 stem, seven stages of MBConv blocks (`layers.InvertedResidual` with SiLU and
an SE module squeezed to a quarter of the block's *input* width) and a 1x1 conv to 4x the last
stage's width, then pooling, dropout and a Linear. Bn is B0 with every width multiplied by `width`
(rounded to a multiple of 8) and every stage's repeats by `depth` (rounded up), at a larger input
resolution. Stochastic depth grows linearly over the blocks, from 0 to 0.2 * (n-1)/n.

Module names follow torchvision (features.S.B.block..., classifier.1), so its checkpoints load as
they are. As in torchvision, B0-B4 use BatchNorm eps 1e-5 / momentum 0.1 and B5-B7 (ported from
the TensorFlow weights) eps 1e-3 / momentum 0.01.

`cfg.input_size` is torchvision's eval crop, which is the paper's resolution except for B2:
torchvision evaluates its B2 weights at 288 (the paper: 260), and its published 1.09 GMACs are
at 288. crop_pct is torchvision's eval crop / resize (e.g. B0 224 / 256, B5-B7 1.0).

Small input (CIFAR, 32x32): `stem="cifar"` makes the stem conv stride 1; the network then
downsamples 16x and ends on a 2x2 map (the weights keep their shapes).

V2 is the same network from another table: rows marked fused are `layers.FusedMBConv` blocks
(one full kxk conv for expansion and depthwise conv, no SE), the stem is as wide as the first
row's input, the head conv is 1280 wide, and every BatchNorm has eps 1e-3 (torchvision's V2).
Its cfg is torchvision's eval transform: S at 384 (bilinear), M and L at 480 (bilinear, bicubic),
no crop margin.

Feature maps (`features_only`): the last stage at each stride, stopping before the 1x1 head conv,
as timm's EfficientNet gives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import ConvNormAct, FusedMBConv, InvertedResidual, make_divisible
from cnnzoo.layers.head import ClassifierHead
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import stage_end_features
from cnnzoo.registry import register_model


@dataclass(frozen=True)
class MBConvStage:
    """One row of the paper's Table 1 (B0), or of the V2 paper's Table 4 (`fused`: Fused-MBConv,
    no SE)."""

    expand: int
    kernel: int
    stride: int
    in_chs: int
    out_chs: int
    repeats: int
    fused: bool = False


B0_STAGES: tuple[MBConvStage, ...] = (
    #           t  k  s   in  out  n
    MBConvStage(1, 3, 1, 32, 16, 1),
    MBConvStage(6, 3, 2, 16, 24, 2),
    MBConvStage(6, 5, 2, 24, 40, 2),
    MBConvStage(6, 3, 2, 40, 80, 3),
    MBConvStage(6, 5, 1, 80, 112, 3),
    MBConvStage(6, 5, 2, 112, 192, 4),
    MBConvStage(6, 3, 1, 192, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetSpec:
    width: float
    depth: float
    dropout: float
    input_size: int  # torchvision's eval crop (the paper's resolution but for B2)
    crop_pct: float  # torchvision's eval crop / resize
    interpolation: str = "bicubic"  # of those weights' eval resize
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1


_TF_BN = {"bn_eps": 1e-3, "bn_momentum": 0.01}

#                                   width depth dropout size  crop_pct
SPECS: dict[str, EfficientNetSpec] = {
    "efficientnet_b0": EfficientNetSpec(1.0, 1.0, 0.2, 224, 224 / 256),
    "efficientnet_b1": EfficientNetSpec(1.0, 1.1, 0.2, 240, 240 / 255, "bilinear"),  # V2
    "efficientnet_b2": EfficientNetSpec(1.1, 1.2, 0.3, 288, 288 / 288),  # paper: 260
    "efficientnet_b3": EfficientNetSpec(1.2, 1.4, 0.3, 300, 300 / 320),
    "efficientnet_b4": EfficientNetSpec(1.4, 1.8, 0.4, 380, 380 / 384),
    "efficientnet_b5": EfficientNetSpec(1.6, 2.2, 0.4, 456, 456 / 456, **_TF_BN),
    "efficientnet_b6": EfficientNetSpec(1.8, 2.6, 0.5, 528, 528 / 528, **_TF_BN),
    "efficientnet_b7": EfficientNetSpec(2.0, 3.1, 0.5, 600, 600 / 600, **_TF_BN),
}
HEAD_EXPANSION = 4  # the last 1x1 conv: 320 -> 1280 in B0

# ---------------------------------------------------------------- EfficientNetV2 tables
_F = {"fused": True}
#                t  k  s   in  out  n
V2_STAGES: dict[str, tuple[MBConvStage, ...]] = {
    "efficientnet_v2_s": (
        MBConvStage(1, 3, 1, 24, 24, 2, **_F),
        MBConvStage(4, 3, 2, 24, 48, 4, **_F),
        MBConvStage(4, 3, 2, 48, 64, 4, **_F),
        MBConvStage(4, 3, 2, 64, 128, 6),
        MBConvStage(6, 3, 1, 128, 160, 9),
        MBConvStage(6, 3, 2, 160, 256, 15),
    ),
    "efficientnet_v2_m": (
        MBConvStage(1, 3, 1, 24, 24, 3, **_F),
        MBConvStage(4, 3, 2, 24, 48, 5, **_F),
        MBConvStage(4, 3, 2, 48, 80, 5, **_F),
        MBConvStage(4, 3, 2, 80, 160, 7),
        MBConvStage(6, 3, 1, 160, 176, 14),
        MBConvStage(6, 3, 2, 176, 304, 18),
        MBConvStage(6, 3, 1, 304, 512, 5),
    ),
    "efficientnet_v2_l": (
        MBConvStage(1, 3, 1, 32, 32, 4, **_F),
        MBConvStage(4, 3, 2, 32, 64, 7, **_F),
        MBConvStage(4, 3, 2, 64, 96, 7, **_F),
        MBConvStage(4, 3, 2, 96, 192, 10),
        MBConvStage(6, 3, 1, 192, 224, 19),
        MBConvStage(6, 3, 2, 224, 384, 25),
        MBConvStage(6, 3, 1, 384, 640, 7),
    ),
}
V2_HEAD = 1280
#                   dropout  size  interpolation (torchvision's eval transform, no crop margin)
V2_SPECS: dict[str, tuple[float, int, str]] = {
    "efficientnet_v2_s": (0.2, 384, "bilinear"),
    "efficientnet_v2_m": (0.3, 480, "bilinear"),
    "efficientnet_v2_l": (0.4, 480, "bicubic"),
}


class EfficientNet(Classifier):
    classifier_name = "classifier.1"

    def __init__(
        self,
        width: float = 1.0,
        depth: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.2,
        stem: str = "imagenet",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        stages: tuple[MBConvStage, ...] = B0_STAGES,
        head_chs: int | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stem_stride = 2 if check_stem(stem) == "imagenet" else 1
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum}

        def chs(c: float) -> int:
            return make_divisible(c * width, 8)

        repeats = [int(math.ceil(s.repeats * depth)) for s in stages]
        total = sum(repeats)
        cin = chs(stages[0].in_chs)
        features: list[nn.Module] = [ConvNormAct(in_chans, cin, 3, stem_stride, act="silu", **bn)]
        points = [("features.0", cin, stem_stride)]
        k = 0
        for stage, n in zip(stages, repeats, strict=True):
            blocks = []
            cout = chs(stage.out_chs)
            for i in range(n):
                common = {
                    "kernel_size": stage.kernel,
                    "stride": stage.stride if i == 0 else 1,
                    "act": "silu",
                    "drop_path": drop_path_rate * k / total,
                    **bn,
                }
                mid = make_divisible(cin * stage.expand, 8)
                if stage.fused:
                    blocks.append(FusedMBConv(cin, cout, mid, **common))
                else:
                    se = {"se_chs": max(1, cin // 4), "se_act": "silu", "se_gate": "sigmoid"}
                    blocks.append(InvertedResidual(cin, cout, mid, **se, **common))
                cin, k = cout, k + 1
            features.append(nn.Sequential(*blocks))
            points.append((f"features.{len(features) - 1}", cout, stage.stride))
        last = head_chs or HEAD_EXPANSION * cin
        features.append(ConvNormAct(cin, last, 1, act="silu", **bn))
        self.features = nn.Sequential(*features)
        self.feature_info = stage_end_features(points)
        self.num_features = last
        self.classifier = ClassifierHead(last, num_classes, drop_rate, inplace=True)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's init: He-normal (fan-out) convs, unit BN, U(+-1/sqrt(out)) linear."""
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier(x, pre_logits)


# ---------------------------------------------------------------- registered models
PAPER = "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"


def _cfg(name: str) -> ModelCfg:
    s = SPECS[name]
    return ModelCfg(
        "efficientnet",
        input_size=s.input_size,
        crop_pct=s.crop_pct,
        interpolation=s.interpolation,
        source="torchvision",
        paper=PAPER,
    )


def _create(name: str, **kwargs) -> EfficientNet:
    s = SPECS[name]
    kwargs.setdefault("drop_rate", s.dropout)
    return EfficientNet(s.width, s.depth, bn_eps=s.bn_eps, bn_momentum=s.bn_momentum, **kwargs)


@register_model(_cfg("efficientnet_b0"))
def efficientnet_b0(**kwargs) -> EfficientNet:
    """EfficientNet-B0: 5.3M params, 0.39 GMACs at 224."""
    return _create("efficientnet_b0", **kwargs)


@register_model(_cfg("efficientnet_b1"))
def efficientnet_b1(**kwargs) -> EfficientNet:
    """EfficientNet-B1: 7.8M params, 0.69 GMACs at 240."""
    return _create("efficientnet_b1", **kwargs)


@register_model(_cfg("efficientnet_b2"))
def efficientnet_b2(**kwargs) -> EfficientNet:
    """EfficientNet-B2: 9.1M params, 1.09 GMACs at 288 (0.99 at the paper's 260)."""
    return _create("efficientnet_b2", **kwargs)


@register_model(_cfg("efficientnet_b3"))
def efficientnet_b3(**kwargs) -> EfficientNet:
    """EfficientNet-B3: 12.2M params, 1.83 GMACs at 300."""
    return _create("efficientnet_b3", **kwargs)


@register_model(_cfg("efficientnet_b4"))
def efficientnet_b4(**kwargs) -> EfficientNet:
    """EfficientNet-B4: 19.3M params, 4.39 GMACs at 380."""
    return _create("efficientnet_b4", **kwargs)


@register_model(_cfg("efficientnet_b5"))
def efficientnet_b5(**kwargs) -> EfficientNet:
    """EfficientNet-B5: 30.4M params, 10.3 GMACs at 456."""
    return _create("efficientnet_b5", **kwargs)


@register_model(_cfg("efficientnet_b6"))
def efficientnet_b6(**kwargs) -> EfficientNet:
    """EfficientNet-B6: 43.0M params, 19.1 GMACs at 528."""
    return _create("efficientnet_b6", **kwargs)


@register_model(_cfg("efficientnet_b7"))
def efficientnet_b7(**kwargs) -> EfficientNet:
    """EfficientNet-B7: 66.3M params, 37.7 GMACs at 600."""
    return _create("efficientnet_b7", **kwargs)


# ---------------------------------------------------------------- EfficientNetV2
PAPER_V2 = "Tan & Le 2021, EfficientNetV2: Smaller Models and Faster Training"


def _cfg_v2(name: str) -> ModelCfg:
    _, size, interpolation = V2_SPECS[name]
    return ModelCfg(
        "efficientnet_v2",
        input_size=size,
        crop_pct=1.0,
        interpolation=interpolation,
        source="torchvision",
        paper=PAPER_V2,
    )


def _create_v2(name: str, **kwargs) -> EfficientNet:
    kwargs.setdefault("drop_rate", V2_SPECS[name][0])
    return EfficientNet(stages=V2_STAGES[name], head_chs=V2_HEAD, bn_eps=1e-3, **kwargs)


@register_model(_cfg_v2("efficientnet_v2_s"))
def efficientnet_v2_s(**kwargs) -> EfficientNet:
    """EfficientNetV2-S: 21.5M params, 8.37 GMACs at 384."""
    return _create_v2("efficientnet_v2_s", **kwargs)


@register_model(_cfg_v2("efficientnet_v2_m"))
def efficientnet_v2_m(**kwargs) -> EfficientNet:
    """EfficientNetV2-M: 54.1M params, 24.6 GMACs at 480."""
    return _create_v2("efficientnet_v2_m", **kwargs)


@register_model(_cfg_v2("efficientnet_v2_l"))
def efficientnet_v2_l(**kwargs) -> EfficientNet:
    """EfficientNetV2-L: 118.5M params, 56.1 GMACs at 480."""
    return _create_v2("efficientnet_v2_l", **kwargs)
