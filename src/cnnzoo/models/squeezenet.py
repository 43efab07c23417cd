"""SqueezeNet 1.0 (Iandola et al. 2016, Table 1) and 1.1 (the SqueezeNet repository's v1.1:
a 3x3 stem with 64 channels and the max-pools moved earlier, 2.4x less computation).

A stride-2 stem conv, Fire modules (`layers.Fire`: squeeze 1x1, then 1x1 and 3x3 expands
concatenated) with 3x3/2 max-pools (ceil mode) between them, and a convolutional head: dropout,
a 1x1 conv to the classes, ReLU, global average pool. No BatchNorm anywhere. Module names follow
torchvision (features.N, classifier.1).

Feature maps (`features_only`): the layer before each max-pool and the last Fire module
(reductions 2 to 16, nominal: the unpadded stem makes maps a little smaller than size / stride).

Small input (CIFAR, 32x32): `stem="cifar"` makes the stem conv stride 1 with "same" padding, so
the last Fire modules see 4x4 instead of 1x1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import Fire
from cnnzoo.layers.head import global_pool
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import stage_end_features
from cnnzoo.registry import register_model

M = "M"  # a 3x3/2 max-pool
FireRow = tuple[int, int, int]  # squeeze, expand 1x1, expand 3x3 channels


@dataclass(frozen=True)
class SqueezeNetSpec:
    stem: tuple[int, int]  # channels, kernel of the stride-2 stem conv
    layers: tuple[FireRow | str, ...]


_F2, _F3 = (16, 64, 64), (32, 128, 128)
_F4, _F5 = (48, 192, 192), (64, 256, 256)
#              stem       fire2..fire9 and the max-pools between them
SPECS: dict[str, SqueezeNetSpec] = {
    "1_0": SqueezeNetSpec((96, 7), (M, _F2, _F2, _F3, M, _F3, _F4, _F4, _F5, M, _F5)),
    "1_1": SqueezeNetSpec((64, 3), (M, _F2, _F2, M, _F3, _F3, M, _F4, _F4, _F5, _F5)),
}


class SqueezeNet(Classifier):
    classifier_name = "classifier.1"
    conv_classifier = True

    def __init__(
        self,
        spec: SqueezeNetSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        cifar = check_stem(stem) == "cifar"
        width, k = spec.stem
        stem_conv = (
            nn.Conv2d(in_chans, width, k, 1, k // 2) if cifar else nn.Conv2d(in_chans, width, k, 2)
        )
        layers: list[nn.Module] = [stem_conv, nn.ReLU(inplace=True)]
        points = [("features.1", width, 1 if cifar else 2)]
        cin = width
        for row in spec.layers:
            if row == M:
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
                points.append((f"features.{len(layers) - 1}", cin, 2))
            else:
                layers.append(Fire(cin, *row))
                cin = layers[-1].out_channels
                points.append((f"features.{len(layers) - 1}", cin, 1))
        self.features = nn.Sequential(*layers)
        self.feature_info = stage_end_features(points)
        self.num_features = cin
        final = nn.Conv2d(cin, num_classes, 1) if num_classes else nn.Identity()
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate), final, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        init_conv_bn(self)
        if num_classes:
            nn.init.normal_(final.weight, 0, 0.01)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return global_pool(self.classifier[0](x))
        return self.classifier(x).flatten(1)


PAPER = "Iandola et al. 2016, SqueezeNet: AlexNet-level accuracy with 50x fewer parameters"
# torchvision's eval transform of these weights: resize 256, centre-crop 224, bilinear
CFG = ModelCfg("squeezenet", source="torchvision", paper=PAPER)


@register_model(CFG)
def squeezenet1_0(**kw) -> SqueezeNet:
    """SqueezeNet 1.0: 1.25M params, 0.82 GMACs at 224."""
    return SqueezeNet(SPECS["1_0"], **kw)


@register_model(CFG)
def squeezenet1_1(**kw) -> SqueezeNet:
    """SqueezeNet 1.1: 1.24M params, 0.35 GMACs at 224."""
    return SqueezeNet(SPECS["1_1"], **kw)
