"""MNASNet (Tan et al. 2019, "MnasNet: Platform-Aware Neural Architecture Search for Mobile").

The paper's searched mobile network without squeeze-excitation (MnasNet-B1), as torchvision
builds it: a 3x3/2 conv, a separable conv (3x3 depthwise, then a linear 1x1), six stacks of inverted residual
blocks (`layers.InvertedResidual` with ReLU, no SE) and a 1x1 conv to 1280, then pooling, dropout
and a Linear.

Width multiplier alpha (0.5, 0.75, 1.0, 1.3): every width of the table, the stem's included but
not the 1280 head, is scaled by alpha and rounded to a multiple of 8, one step up when plain
rounding would lose more than 10% (MobileNet's `make_divisible`). Repeats are not scaled.

Keys follow torchvision: one flat Sequential `layers` (0-7 stem, 8-13 the stacks, 14-16 the head
conv), each block's body again flat (layers.N.M.layers.0 ... 7), `classifier.1`. BatchNorm
momentum is 0.0003 (TensorFlow's decay 0.9997). cfg: torchvision's eval transform (resize 256
for 0.5 and 1.0, 232 for the 0.75 and 1.3 weights trained later; crop 224, bilinear).
`stem="cifar"`: the first conv at stride 1. Feature maps: the last layer at each stride, as
timm's MNASNet gives them (channels 16, 24, 40, 96, 320 at alpha 1).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import InvertedResidual, make_divisible
from cnnzoo.layers.head import ClassifierHead
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import stage_end_features
from cnnzoo.registry import register_model

BN_MOMENTUM = 1 - 0.9997
STEM = (32, 16)  # the first conv's width, the separable conv's output width
#        t   k  s  out  n   (expansion, kernel, stride of the first, output channels, repeats)
STACKS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 3, 2, 24, 3),
    (3, 5, 2, 40, 3),
    (6, 5, 2, 80, 3),
    (6, 3, 1, 96, 2),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
HEAD = 1280


def _bn(chs: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(chs, momentum=BN_MOMENTUM)


class MNASNet(Classifier):
    classifier_name = "classifier.1"

    def __init__(
        self,
        alpha: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        drop_path_rate: float = 0.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        stride = 2 if check_stem(stem) == "imagenet" else 1
        c0, c1 = (make_divisible(c * alpha) for c in STEM)
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, c0, 3, stride, 1, bias=False),
            _bn(c0),
            nn.ReLU(inplace=True),
            nn.Conv2d(c0, c0, 3, 1, 1, groups=c0, bias=False),
            _bn(c0),
            nn.ReLU(inplace=True),
            nn.Conv2d(c0, c1, 1, bias=False),
            _bn(c1),
        ]
        points = [("layers.7", c1, stride)]
        total = sum(n for *_, n in STACKS)
        cin, k = c1, 0
        for t, kernel, s, out, n in STACKS:
            cout = make_divisible(out * alpha)
            blocks = []
            for i in range(n):
                blocks.append(
                    InvertedResidual(
                        cin,
                        cout,
                        cin * t,
                        kernel,
                        s if i == 0 else 1,
                        act="relu",
                        bn_momentum=BN_MOMENTUM,
                        drop_path=drop_path_rate * k / total,
                        body_name="layers",
                        flat=True,
                    )
                )
                cin, k = cout, k + 1
            layers.append(nn.Sequential(*blocks))
            points.append((f"layers.{len(layers) - 1}", cout, s))
        layers += [nn.Conv2d(cin, HEAD, 1, bias=False), _bn(HEAD), nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)
        self.feature_info = stage_end_features(points)
        self.num_features = HEAD
        self.classifier = ClassifierHead(HEAD, num_classes, drop_rate, inplace=True)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's: He-normal (fan-out) convs, unit BN, He-uniform (fan-out, sigmoid gain)
        linear with zero bias."""
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="sigmoid")
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier(x, pre_logits)


# ---------------------------------------------------------------- registered models
PAPER = "Tan et al. 2019, MnasNet: Platform-Aware Neural Architecture Search for Mobile"


def _cfg(resize: int) -> ModelCfg:
    return ModelCfg("mnasnet", crop_pct=224 / resize, source="torchvision", paper=PAPER)


@register_model(_cfg(256))
def mnasnet0_5(**kw) -> MNASNet:
    return MNASNet(0.5, **kw)


@register_model(_cfg(232))
def mnasnet0_75(**kw) -> MNASNet:
    return MNASNet(0.75, **kw)


@register_model(_cfg(256))
def mnasnet1_0(**kw) -> MNASNet:
    return MNASNet(1.0, **kw)


@register_model(_cfg(232))
def mnasnet1_3(**kw) -> MNASNet:
    return MNASNet(1.3, **kw)
