"""ResNet-D (He et al. 2018, "Bag of Tricks for Image Classification"), as timm builds it.

Two of the paper's tweaks, both options of the residual table builder in models/resnet.py, so
each network here is one row: blocks per stage plus `deep_stem=32, shortcut="avg"`.

- ResNet-C stem: three 3x3 convs (32, 32, 64 channels, the first strided) instead of one 7x7.
- ResNet-D shortcut: a strided block's projection averages 2x2 first, then applies its 1x1 conv
  at stride 1 (the plain 1x1 at stride 2 ignores three pixels in four).

Keys are timm's (conv1.0 ... conv1.6, bn1, layerN.M.downsample.1/.2, fc), so timm checkpoints
load as they are. `cfg` is the eval transform of timm's default tag: bicubic, 224 px crop 0.875
(ra2 / bt weights), 256 px crop 0.95 for resnet101d / 152d / 200d. `stem="cifar"` keeps the three
stem convs (their weights keep their shapes) at stride 1 and drops the max-pool.
"""

from __future__ import annotations

from functools import partial

from cnnzoo.cfg import ModelCfg
from cnnzoo.models.resnet import ResNet, ResNetSpec, _stages
from cnnzoo.registry import register_model

PAPER = "He et al. 2018, Bag of Tricks for Image Classification with Convolutional Neural Networks"

#   name          block         blocks per stage
ROWS = {
    "resnet18d": ("basic", (2, 2, 2, 2)),
    "resnet26d": ("bottleneck", (2, 2, 2, 2)),
    "resnet34d": ("basic", (3, 4, 6, 3)),
    "resnet50d": ("bottleneck", (3, 4, 6, 3)),
    "resnet101d": ("bottleneck", (3, 4, 23, 3)),
    "resnet152d": ("bottleneck", (3, 8, 36, 3)),
    "resnet200d": ("bottleneck", (3, 24, 36, 3)),
}
SPECS: dict[str, ResNetSpec] = {
    name: ResNetSpec(block, _stages(depths), deep_stem=32, shortcut="avg")
    for name, (block, depths) in ROWS.items()
}

# timm's default tags: ra2_in1k (bt_in1k for resnet26d), bicubic
TIMM_D = partial(ModelCfg, "resnet-d", interpolation="bicubic", source="timm", paper=PAPER)
TIMM_D256 = partial(TIMM_D, input_size=256, crop_pct=0.95)


def _make(name: str, **kw) -> ResNet:
    return ResNet(SPECS[name], **kw)


@register_model(TIMM_D())
def resnet18d(**kw) -> ResNet:
    return _make("resnet18d", **kw)


@register_model(TIMM_D())
def resnet26d(**kw) -> ResNet:
    return _make("resnet26d", **kw)


@register_model(TIMM_D())
def resnet34d(**kw) -> ResNet:
    return _make("resnet34d", **kw)


@register_model(TIMM_D())
def resnet50d(**kw) -> ResNet:
    return _make("resnet50d", **kw)


@register_model(TIMM_D256())
def resnet101d(**kw) -> ResNet:
    return _make("resnet101d", **kw)


@register_model(TIMM_D256())
def resnet152d(**kw) -> ResNet:
    return _make("resnet152d", **kw)


@register_model(TIMM_D256())
def resnet200d(**kw) -> ResNet:
    return _make("resnet200d", **kw)
