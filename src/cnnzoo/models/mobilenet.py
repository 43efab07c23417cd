"""MobileNetV2 (Sandler et al. 2018) and MobileNetV3 (Howard et al. 2019), from their tables.

Both are a stride-2 3x3 stem, a run of inverted residual blocks (`layers.InvertedResidual`) and a
1x1 conv to a wide feature map, then pooling and a classifier. V2 uses ReLU6 everywhere and
linear bottlenecks; V3 mixes ReLU and h-swish, adds SE with a hard-sigmoid gate (squeezed to
make_divisible(expanded / 4)), uses BN eps 1e-3 / momentum 0.01 and a two-layer head
(Linear -> h-swish -> dropout -> Linear).

Module names follow torchvision (features.N..., classifier.N), so its checkpoints load as they are.
Channel widths are scaled by `width_mult` and rounded to multiples of 8; V2 never narrows its last
conv below 1280.

Small input (CIFAR, 32x32): `stem="cifar"` makes the stem conv stride 1; the network then
downsamples 16x instead of 32x and ends on a 2x2 map instead of 1x1 (the weights keep their
shapes).

Feature maps (`features_only`): the last block at each stride, as timm's MobileNets give them; V2
stops before its last 1x1 conv, V3 ends with it (timm counts it as V3's last stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import ConvNormAct, InvertedResidual, make_divisible
from cnnzoo.layers.head import ClassifierHead, global_pool
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import stage_end_features
from cnnzoo.registry import register_model

# ---------------------------------------------------------------- MobileNetV2 table
# The paper's Table 2: expansion t, output channels c, repeats n, stride s of the first repeat.
MOBILENET_V2_STAGES: tuple[tuple[int, int, int, int], ...] = (
    # t,   c,  n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


# ---------------------------------------------------------------- MobileNetV3 tables
@dataclass(frozen=True)
class Bneck:
    """One row of the paper's Tables 1 and 2: a bneck block."""

    kernel: int
    expanded: int
    out: int
    se: bool
    act: str  # "relu" (RE) or "hswish" (HS)
    stride: int


#                  k  exp  out   SE    NL       s
MOBILENET_V3_LARGE = (
    Bneck(3, 16, 16, False, "relu", 1),
    Bneck(3, 64, 24, False, "relu", 2),
    Bneck(3, 72, 24, False, "relu", 1),
    Bneck(5, 72, 40, True, "relu", 2),
    Bneck(5, 120, 40, True, "relu", 1),
    Bneck(5, 120, 40, True, "relu", 1),
    Bneck(3, 240, 80, False, "hswish", 2),
    Bneck(3, 200, 80, False, "hswish", 1),
    Bneck(3, 184, 80, False, "hswish", 1),
    Bneck(3, 184, 80, False, "hswish", 1),
    Bneck(3, 480, 112, True, "hswish", 1),
    Bneck(3, 672, 112, True, "hswish", 1),
    Bneck(5, 672, 160, True, "hswish", 2),
    Bneck(5, 960, 160, True, "hswish", 1),
    Bneck(5, 960, 160, True, "hswish", 1),
)
MOBILENET_V3_SMALL = (
    Bneck(3, 16, 16, True, "relu", 2),
    Bneck(3, 72, 24, False, "relu", 2),
    Bneck(3, 88, 24, False, "relu", 1),
    Bneck(5, 96, 40, True, "hswish", 2),
    Bneck(5, 240, 40, True, "hswish", 1),
    Bneck(5, 240, 40, True, "hswish", 1),
    Bneck(5, 120, 48, True, "hswish", 1),
    Bneck(5, 144, 48, True, "hswish", 1),
    Bneck(5, 288, 96, True, "hswish", 2),
    Bneck(5, 576, 96, True, "hswish", 1),
    Bneck(5, 576, 96, True, "hswish", 1),
)
# variant: (bneck rows, width of the hidden head layer)
MOBILENET_V3_SPECS: dict[str, tuple[tuple[Bneck, ...], int]] = {
    "mobilenet_v3_large": (MOBILENET_V3_LARGE, 1280),
    "mobilenet_v3_small": (MOBILENET_V3_SMALL, 1024),
}
V3_STEM_WIDTH = 16
V3_BN = {"bn_eps": 1e-3, "bn_momentum": 0.01}


def _init_weights(model: nn.Module) -> None:
    """torchvision's init: He-normal (fan-out) convs, unit BN, N(0, 0.01) linear layers."""
    init_conv_bn(model)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class MobileNetV2(Classifier):
    classifier_name = "classifier.1"

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        drop_rate: float = 0.2,
        stem: str = "imagenet",
        stages: tuple[tuple[int, int, int, int], ...] = MOBILENET_V2_STAGES,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stem_stride = 2 if check_stem(stem) == "imagenet" else 1
        cin = make_divisible(32 * width_mult, 8)
        last = make_divisible(1280 * max(1.0, width_mult), 8)  # the head never narrows below 1280
        layers: list[nn.Module] = [ConvNormAct(in_chans, cin, 3, stem_stride, act="relu6")]
        points = [("features.0", cin, stem_stride)]
        for t, c, n, s in stages:
            cout = make_divisible(c * width_mult, 8)
            for i in range(n):
                mid = int(round(cin * t))
                layers.append(
                    InvertedResidual(
                        cin,
                        cout,
                        mid,
                        kernel_size=3,
                        stride=s if i == 0 else 1,
                        act="relu6",
                        body_name="conv",
                        flat_project=True,
                    )
                )
                points.append((f"features.{len(layers) - 1}", cout, s if i == 0 else 1))
                cin = cout
        layers.append(ConvNormAct(cin, last, 1, act="relu6"))
        self.features = nn.Sequential(*layers)
        self.feature_info = stage_end_features(points)
        self.num_features = last
        self.classifier = ClassifierHead(last, num_classes, drop_rate)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier(x, pre_logits)


class MobileNetV3(Classifier):
    classifier_name = "classifier.3"

    def __init__(
        self,
        rows: tuple[Bneck, ...],
        head_width: int,
        num_classes: int = 1000,
        in_chans: int = 3,
        width_mult: float = 1.0,
        drop_rate: float = 0.2,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stem_stride = 2 if check_stem(stem) == "imagenet" else 1

        def width(c: float) -> int:
            return make_divisible(c * width_mult, 8)

        cin = width(V3_STEM_WIDTH)
        layers: list[nn.Module] = [
            ConvNormAct(in_chans, cin, 3, stem_stride, act="hswish", **V3_BN)
        ]
        points = [("features.0", cin, stem_stride)]
        for r in rows:
            mid, cout = width(r.expanded), width(r.out)
            se = make_divisible(mid // 4, 8) if r.se else 0
            layers.append(
                InvertedResidual(
                    cin,
                    cout,
                    mid,
                    r.kernel,
                    r.stride,
                    act=r.act,
                    se_chs=se,
                    se_act="relu",
                    se_gate="hsigmoid",
                    **V3_BN,
                )
            )
            points.append((f"features.{len(layers) - 1}", cout, r.stride))
            cin = cout
        last_conv = 6 * cin  # the last 1x1 conv widens by 6, as in the paper's tables
        layers.append(ConvNormAct(cin, last_conv, 1, act="hswish", **V3_BN))
        points.append((f"features.{len(layers) - 1}", last_conv, 1))
        self.features = nn.Sequential(*layers)
        self.feature_info = stage_end_features(points)
        hidden = width(head_width)
        self.num_features = last_conv
        self.head_hidden_size = hidden
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, hidden),
            nn.Hardswish(inplace=True),
            nn.Dropout(drop_rate, inplace=True),
            nn.Linear(hidden, num_classes) if num_classes else nn.Identity(),
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = global_pool(x)
        x = self.classifier[2](self.classifier[1](self.classifier[0](x)))
        return x if pre_logits else self.classifier[3](x)


# ---------------------------------------------------------------- registered models
def _cfg(family: str, paper: str, resize: int) -> ModelCfg:
    # torchvision's eval transform of the best weights: resize 232 (V2 weights of mobilenet_v2
    # and mobilenet_v3_large) or 256, centre-crop 224, bilinear
    return ModelCfg(family, source="torchvision", paper=paper, crop_pct=224 / resize)


V2_PAPER = "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks"
V3_PAPER = "Howard et al. 2019, Searching for MobileNetV3"


@register_model(_cfg("mobilenet_v2", V2_PAPER, 232))
def mobilenet_v2(**kwargs) -> MobileNetV2:
    """MobileNetV2 (width_mult=1.0: 3.5M params, 0.30 GMACs at 224)."""
    return MobileNetV2(**kwargs)


@register_model(_cfg("mobilenet_v3", V3_PAPER, 232))
def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    """MobileNetV3-Large: 5.5M params, 0.22 GMACs at 224."""
    rows, head = MOBILENET_V3_SPECS["mobilenet_v3_large"]
    return MobileNetV3(rows, head, **kwargs)


@register_model(_cfg("mobilenet_v3", V3_PAPER, 256))
def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    """MobileNetV3-Small: 2.5M params, 0.06 GMACs at 224."""
    rows, head = MOBILENET_V3_SPECS["mobilenet_v3_small"]
    return MobileNetV3(rows, head, **kwargs)
