"""AlexNet (Krizhevsky et al. 2012) and VGG (Simonyan & Zisserman 2014): plain stacks of
convolutions and max-pools, then an adaptive average pool and a three-layer MLP.

Both are rows of one table: the conv layers (out channels, kernel, stride, padding) with `M` for
a max-pool, the pool's kernel and stride, and the side of the average pool before the MLP.
VGG's configurations A, B, D, E are the columns of its Table 1 (all convs 3x3, stride 1, padding
1; max-pools 2x2/2); `batch_norm=True` puts a BatchNorm after every conv (the `_bn` models).
AlexNet is torchvision's single-tower version (64-192-384-256-256 channels; "one weird trick").

Module names follow torchvision (features.N, classifier.N; the average pool has no weights and
runs as a function in the head, so the last spatial layer is the last of `features`).

Feature maps (`features_only`): the layer before each max-pool and the last pool, as timm's
VGG gives them (six maps, reductions 1 to 32); AlexNet's the same way (reductions 4 to 32).

The adaptive pool exports to ONNX where the last map's side is a multiple of the pool's (at
224 px: 6x6 / 7x7) or divides it (1x1 at 32 px for VGG); torch's exporter has no general
adaptive pool.

Small input (CIFAR, 32x32): `stem="cifar"` gives the first conv stride 1 with "same" padding
and skips the first max-pool (weights keep their shapes): VGG ends on a 2x2 map instead of 1x1,
AlexNet on 7x7 instead of not running at all (it needs 63 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import stage_end_features
from cnnzoo.registry import register_model

M = "M"  # a max-pool in a layer list
Conv = tuple[int, int, int, int]  # out channels, kernel, stride, padding


@dataclass(frozen=True)
class PlainSpec:
    layers: tuple[Conv | str, ...]
    pool: tuple[int, int]  # max-pool kernel, stride
    pool_out: int  # the adaptive average pool's side: the MLP reads pool_out^2 x channels
    hidden: int = 4096  # width of the MLP's two hidden layers
    dropout_first: bool = False  # AlexNet: dropout before each hidden layer, VGG: after


def _vgg(*widths: int | str) -> PlainSpec:
    layers = tuple(M if w == M else (w, 3, 1, 1) for w in widths)
    return PlainSpec(layers, pool=(2, 2), pool_out=7)


#            VGG's Table 1: conv widths per configuration, M = max-pool
VGG_CONFIGS: dict[str, PlainSpec] = {
    "A": _vgg(64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M),
    "B": _vgg(64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M),
    "D": _vgg(64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M),
    "E": _vgg(
        64,
        64,
        M,
        128,
        128,
        M,
        256,
        256,
        256,
        256,
        M,
        512,
        512,
        512,
        512,
        M,
        512,
        512,
        512,
        512,
        M,
    ),  # fmt: skip
}
#                            out   k  s  p
ALEXNET = PlainSpec(
    layers=(
        (64, 11, 4, 2),
        M,
        (192, 5, 1, 2),
        M,
        (384, 3, 1, 1),
        (256, 3, 1, 1),
        (256, 3, 1, 1),
        M,
    ),  # fmt: skip
    pool=(3, 2),
    pool_out=6,
    dropout_first=True,
)


def _adaptive_pool(x: torch.Tensor, side: int) -> torch.Tensor:
    """torchvision's adaptive average pool to side x side. A map whose sides divide `side`
    (1x1 at 32 px for VGG) is pooled by repeating each cell, which is what the adaptive pool
    computes there and, unlike it, exports to ONNX."""
    h, w = x.shape[-2:]
    if h < side and w < side and side % h == 0 and side % w == 0:
        return x.repeat_interleave(side // h, 2).repeat_interleave(side // w, 3)
    return F.adaptive_avg_pool2d(x, side)


class PlainConvNet(Classifier):
    """A conv / max-pool stack with torchvision's AlexNet / VGG head."""

    classifier_name = "classifier.6"

    def __init__(
        self,
        spec: PlainSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        batch_norm: bool = False,
        drop_rate: float = 0.5,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        cifar = check_stem(stem) == "cifar"
        layers: list[nn.Module] = []
        points: list[tuple[str, int, int]] = []  # (module, channels, stride) of every layer
        cin, first_pool = in_chans, True
        for item in spec.layers:
            if item == M:
                skip = cifar and first_pool
                first_pool = False
                layers.append(nn.Identity() if skip else nn.MaxPool2d(*spec.pool))
                points.append((f"features.{len(layers) - 1}", cin, 1 if skip else spec.pool[1]))
                continue
            cout, k, s, p = item
            if cifar and not layers:
                s, p = 1, k // 2
            layers.append(nn.Conv2d(cin, cout, k, s, p))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            points.append((f"features.{len(layers) - 1}", cout, s))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.feature_info = stage_end_features(points)
        self.pool_out = spec.pool_out
        self.num_features = cin
        self.head_hidden_size = spec.hidden
        flat, h = cin * spec.pool_out**2, spec.hidden
        fc = nn.Linear(h, num_classes) if num_classes else nn.Identity()
        if spec.dropout_first:  # keys classifier.1, .4, .6
            head = [nn.Dropout(drop_rate), nn.Linear(flat, h), nn.ReLU(inplace=True)]
            head += [nn.Dropout(drop_rate), nn.Linear(h, h), nn.ReLU(inplace=True), fc]
        else:  # keys classifier.0, .3, .6
            head = [nn.Linear(flat, h), nn.ReLU(inplace=True), nn.Dropout(drop_rate)]
            head += [nn.Linear(h, h), nn.ReLU(inplace=True), nn.Dropout(drop_rate), fc]
        self.classifier = nn.Sequential(*head)
        init_conv_bn(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = _adaptive_pool(x, self.pool_out).flatten(1)
        x = self.classifier[:-1](x)
        return x if pre_logits else self.classifier[-1](x)


# ---------------------------------------------------------------- registered models
VGG_PAPER = (
    "Simonyan & Zisserman 2014, Very Deep Convolutional Networks for Large-Scale Image Recognition"
)
ALEXNET_PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs; Krizhevsky 2014, One weird trick"
# torchvision's eval transform of these weights: resize 256, centre-crop 224, bilinear
VGG_CFG = ModelCfg("vgg", source="torchvision", paper=VGG_PAPER)


def _make_vgg(config: str, bn: bool, **kw) -> PlainConvNet:
    # the name's batch-norm setting, unless batch_norm= says otherwise
    return PlainConvNet(VGG_CONFIGS[config], **{"batch_norm": bn, **kw})


@register_model(ModelCfg("alexnet", source="torchvision", paper=ALEXNET_PAPER))
def alexnet(**kw) -> PlainConvNet:
    """AlexNet: 61.1M params, 0.71 GMACs at 224."""
    return PlainConvNet(ALEXNET, **kw)


_A, _B, _D, _E = (partial(_make_vgg, c) for c in "ABDE")


@register_model(VGG_CFG)
def vgg11(**kw) -> PlainConvNet:
    """VGG configuration A (11 weight layers)."""
    return _A(False, **kw)


@register_model(VGG_CFG)
def vgg11_bn(**kw) -> PlainConvNet:
    return _A(True, **kw)


@register_model(VGG_CFG)
def vgg13(**kw) -> PlainConvNet:
    """VGG configuration B (13 weight layers)."""
    return _B(False, **kw)


@register_model(VGG_CFG)
def vgg13_bn(**kw) -> PlainConvNet:
    return _B(True, **kw)


@register_model(VGG_CFG)
def vgg16(**kw) -> PlainConvNet:
    """VGG configuration D (16 weight layers)."""
    return _D(False, **kw)


@register_model(VGG_CFG)
def vgg16_bn(**kw) -> PlainConvNet:
    return _D(True, **kw)


@register_model(VGG_CFG)
def vgg19(**kw) -> PlainConvNet:
    """VGG configuration E (19 weight layers)."""
    return _E(False, **kw)


@register_model(VGG_CFG)
def vgg19_bn(**kw) -> PlainConvNet:
    return _E(True, **kw)
