"""DenseNet-BC (Huang et al. 2017), the ImageNet variants of the paper's table 1, with torchvision's
module names (features.denseblock1.denselayer1.conv1, ..., classifier).

A 7x7/2 stem conv and 3x3/2 max-pool, four dense blocks (layers/dense.py) joined by transitions
that halve the channels (compression 0.5) and the resolution, a final BN-ReLU, global average
pool, linear classifier. Each row of the table: growth rate k, stem width, layers per block; the
bottleneck width is bn_size * k = 4k.

Options: `memory_efficient=True` checkpoints the bottleneck of every dense layer (same weights and
outputs, much less activation memory in training); `drop_rate` is dropout after each dense layer.
CIFAR option: `stem="cifar"` makes the stem a 3x3/1 conv without max-pool, so a 32x32 input
reaches the last block at 4x4.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers.dense import DenseBlock, Transition
from cnnzoo.models.base import Classifier, check_stem
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model


@dataclass(frozen=True)
class DenseNetSpec:
    growth: int
    init_features: int
    blocks: Sequence[int]
    bn_size: int = 4
    compression: float = 0.5


#          name                       growth  stem  layers per dense block
SPECS: dict[str, DenseNetSpec] = {
    "densenet121": DenseNetSpec(32, 64, (6, 12, 24, 16)),
    "densenet161": DenseNetSpec(48, 96, (6, 12, 36, 24)),
    "densenet169": DenseNetSpec(32, 64, (6, 12, 32, 32)),
    "densenet201": DenseNetSpec(32, 64, (6, 12, 48, 32)),
}


class DenseNet(Classifier):
    classifier_name = "classifier"

    def __init__(
        self,
        spec: DenseNetSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        memory_efficient: bool = False,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        c = spec.init_features
        if check_stem(stem) == "imagenet":
            conv0, pool0 = nn.Conv2d(in_chans, c, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1)
        else:
            conv0, pool0 = nn.Conv2d(in_chans, c, 3, 1, 1, bias=False), nn.Identity()
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv0=conv0, norm0=nn.BatchNorm2d(c), relu0=nn.ReLU(inplace=True), pool0=pool0
        )
        # timm's maps: the stem, each dense block but the last, the final norm + ReLU
        reduction = 2 if stem == "imagenet" else 1
        self.feature_info = FeatureInfo([Feature("features.relu0", c, reduction)])
        reduction *= 2 if stem == "imagenet" else 1
        for i, n in enumerate(spec.blocks):
            block = DenseBlock(n, c, spec.growth, spec.bn_size, drop_rate, memory_efficient)
            layers[f"denseblock{i + 1}"] = block
            c = block.out_channels
            if i < len(spec.blocks) - 1:
                self.feature_info.append(Feature(f"features.denseblock{i + 1}", c, reduction))
                out = int(c * spec.compression)
                layers[f"transition{i + 1}"] = Transition(c, out)
                c, reduction = out, reduction * 2
        layers["norm5"] = nn.BatchNorm2d(c)
        # torchvision applies this ReLU in forward; a module (no state) so hooks can see it
        layers["relu5"] = nn.ReLU(inplace=True)
        self.feature_info.append(Feature("features.relu5", c, reduction))
        self.features = nn.Sequential(layers)
        self.num_features = c
        self.head_drop = nn.Identity()
        self.classifier = nn.Linear(c, num_classes) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


CFG = ModelCfg(
    "densenet",
    source="torchvision",
    paper="Huang et al. 2017, Densely Connected Convolutional Networks",
)


@register_model(CFG)
def densenet121(**kw) -> DenseNet:
    return DenseNet(SPECS["densenet121"], **kw)


@register_model(CFG)
def densenet161(**kw) -> DenseNet:
    return DenseNet(SPECS["densenet161"], **kw)


@register_model(CFG)
def densenet169(**kw) -> DenseNet:
    return DenseNet(SPECS["densenet169"], **kw)


@register_model(CFG)
def densenet201(**kw) -> DenseNet:
    return DenseNet(SPECS["densenet201"], **kw)
