"""ResNet, ResNeXt, Wide ResNet, SE-ResNe(X)t, ResNet-D and the CIFAR ResNets, from stage tables.

A network is a stem, a list of stages and a head (seed 002's table, generalised). Each named model
below is one row: block type, blocks per stage, and the ResNeXt knobs (cardinality, width per
group). Module names follow torchvision (conv1, bn1, layer1.0.conv1, ..., fc), and timm's for the
SE variants (layerN.M.se.fc1/fc2), so reference checkpoints load as they are.

ResNet-D (He et al. 2018, "Bag of Tricks", timm's resnet*d) is two options of the same table: a
deep stem (`deep_stem=32`: three 3x3 convs 32-32-64 in place of the 7x7, timm's conv1.0 ...
conv1.6) and average-pool shortcuts (`shortcut="avg"`: 2x2 average pooling, then the 1x1 conv
at stride 1, so the projection sees every input pixel; timm's downsample.1 / downsample.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.errors import OptionError
from cnnzoo.layers import DropPath, SqueezeExcite
from cnnzoo.layers.shortcut import SHORTCUTS, conv1x1, conv3x3, deep_stem, shortcut
from cnnzoo.models.base import Classifier, check_stem, init_conv_bn
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34, CIFAR ResNets)."""

    expansion = 1

    def __init__(
        self, cin, planes, stride=1, downsample=None, groups=1, base_width=64, se=0.0, drop_path=0.0
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise OptionError(
                "the basic block has no groups or width per group; use block='bottleneck'"
            )
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes, int(planes * se)) if se else None
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.drop_path(out) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (grouped for ResNeXt, stride here as in torchvision's "v1.5") -> 1x1
    expand x4. Width of the 3x3 = planes * width_per_group / 64 * groups."""

    expansion = 4

    def __init__(
        self, cin, planes, stride=1, downsample=None, groups=1, base_width=64, se=0.0, drop_path=0.0
    ):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        cout = planes * self.expansion
        self.conv1 = conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(cout, int(cout * se)) if se else None
        self.downsample = downsample
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.drop_path(out) + shortcut)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class ResNetSpec:
    """One row of the table: `stages` is [(blocks, planes), ...]; each stage after the first
    halves the resolution. Output channels of a stage are planes * block expansion."""

    block: str
    stages: Sequence[tuple[int, int]]
    groups: int = 1
    width_per_group: int = 64
    se: float = 0.0  # squeeze ratio of SE blocks (1/16 in SENet), 0 for none
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": 3x3/1 conv
    stem_width: int = 64
    shortcut: str = "conv"  # "conv": 1x1 conv + BN when shape changes; "pad": parameter-free;
    # "avg": 2x2 average pool (when strided), then 1x1 conv + BN (ResNet-D)
    first_stride: int = 1  # stride of the first stage
    deep_stem: int = 0  # width of ResNet-D's 3x3 stem convs (32); 0: one 7x7 (or 3x3 CIFAR) conv


class ResNet(Classifier):
    classifier_name = "fc"

    def __init__(
        self,
        spec: ResNetSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = True,
        stem: str | None = None,
        cfg: ModelCfg | None = None,
    ) -> None:
        super().__init__()
        if stem is not None:  # e.g. stem="cifar" for 32x32 input, whatever the table says
            spec = replace(spec, stem=stem)
        if spec.block not in BLOCKS:
            raise OptionError(f"unknown block {spec.block!r}; choose from {', '.join(BLOCKS)}")
        check_stem(spec.stem)
        block = BLOCKS[spec.block]
        self.cfg = cfg or _cfg_for_spec(spec)
        self.num_classes = num_classes
        self.spec = spec
        if spec.shortcut not in SHORTCUTS:
            raise OptionError(f"unknown shortcut {spec.shortcut!r}; choose from {SHORTCUTS}")
        w = spec.stem_width
        if spec.deep_stem:  # the CIFAR stem keeps the three convs (and their weights), stride 1
            self.conv1 = deep_stem(in_chans, spec.deep_stem, w, 2 if spec.stem == "imagenet" else 1)
        elif spec.stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, w, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_chans, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if spec.stem == "imagenet" else nn.Identity()
        reduction = 2 if spec.stem == "imagenet" else 1
        self.feature_info = FeatureInfo([Feature("relu", w, reduction)])
        reduction *= 2 if spec.stem == "imagenet" else 1

        total = sum(n for n, _ in spec.stages)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        cin, k = w, 0
        self.stage_names = []
        for i, (n_blocks, planes) in enumerate(spec.stages):
            stride = spec.first_stride if i == 0 else 2
            reduction *= stride
            cout = planes * block.expansion
            blocks = []
            for j in range(n_blocks):
                s = stride if j == 0 else 1
                down = None
                if s != 1 or cin != cout:
                    down = shortcut(spec.shortcut, cin, cout, s)
                blocks.append(
                    block(
                        cin, planes, s, down, spec.groups, spec.width_per_group, spec.se, rates[k]
                    )
                )
                cin, k = cout, k + 1
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self.feature_info.append(Feature(name, cout, reduction))
        self.num_features = cin
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(cin, num_classes) if num_classes else nn.Identity()
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        init_conv_bn(self)
        if zero_init_last:  # each residual branch starts as identity: easier early training
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x


def build_resnet(
    stages: Sequence[tuple[int, int]],
    block: str = "bottleneck",
    groups: int = 1,
    width_per_group: int = 64,
    se: float = 0.0,
    stem: str = "imagenet",
    stem_width: int = 64,
    shortcut: str = "conv",
    first_stride: int = 1,
    deep_stem: int = 0,
    num_classes: int = 1000,
    in_chans: int = 3,
    **kwargs,
) -> ResNet:
    """A residual network from a table, no class to write: `stages` is [(blocks, planes), ...].

    >>> resnet18 = build_resnet([(2, 64), (2, 128), (2, 256), (2, 512)], block="basic")
    >>> resnext = build_resnet([(3, 64), (4, 128), (6, 256), (3, 512)], groups=32, width_per_group=4)
    >>> resnet50d = build_resnet([(3, 64), (4, 128), (6, 256), (3, 512)], deep_stem=32, shortcut="avg")
    """
    spec = ResNetSpec(
        block,
        tuple(stages),
        groups,
        width_per_group,
        se,
        stem,
        stem_width,
        shortcut,
        first_stride,
        deep_stem,
    )
    return ResNet(spec, num_classes=num_classes, in_chans=in_chans, **kwargs)


# ---------------------------------------------------------------- the table
IMAGENET_PLANES = (64, 128, 256, 512)


def _stages(depths: Sequence[int], planes: Sequence[int] = IMAGENET_PLANES):
    return tuple(zip(depths, planes, strict=True))


#          name                 block         blocks per stage  groups width/group SE
SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", _stages((2, 2, 2, 2))),
    "resnet34": ResNetSpec("basic", _stages((3, 4, 6, 3))),
    "resnet50": ResNetSpec("bottleneck", _stages((3, 4, 6, 3))),
    "resnet101": ResNetSpec("bottleneck", _stages((3, 4, 23, 3))),
    "resnet152": ResNetSpec("bottleneck", _stages((3, 8, 36, 3))),
    "resnext50_32x4d": ResNetSpec("bottleneck", _stages((3, 4, 6, 3)), 32, 4),
    "resnext101_32x8d": ResNetSpec("bottleneck", _stages((3, 4, 23, 3)), 32, 8),
    "resnext101_64x4d": ResNetSpec("bottleneck", _stages((3, 4, 23, 3)), 64, 4),
    "wide_resnet50_2": ResNetSpec("bottleneck", _stages((3, 4, 6, 3)), 1, 128),
    "wide_resnet101_2": ResNetSpec("bottleneck", _stages((3, 4, 23, 3)), 1, 128),
    "seresnet50": ResNetSpec("bottleneck", _stages((3, 4, 6, 3)), se=1 / 16),
    "seresnext50_32x4d": ResNetSpec("bottleneck", _stages((3, 4, 6, 3)), 32, 4, se=1 / 16),
    "seresnext101_32x8d": ResNetSpec("bottleneck", _stages((3, 4, 23, 3)), 32, 8, se=1 / 16),
}
# The ResNet paper's CIFAR-10 networks (its section 4.2): 6n+2 layers, 16/32/64 channels.
CIFAR_PLANES = (16, 32, 64)
for _n, _name in (
    (3, "resnet20"),
    (5, "resnet32"),
    (7, "resnet44"),
    (9, "resnet56"),
    (18, "resnet110"),
):
    SPECS[_name] = ResNetSpec(
        "basic", _stages((_n,) * 3, CIFAR_PLANES), stem="cifar", stem_width=16, shortcut="pad"
    )

PAPERS = {
    "resnet": "He et al. 2015, Deep Residual Learning for Image Recognition",
    "resnext": "Xie et al. 2016, Aggregated Residual Transformations (ResNeXt)",
    "wide": "Zagoruyko & Komodakis 2016, Wide Residual Networks",
    "se": "Hu et al. 2017, Squeeze-and-Excitation Networks",
}


def _cfg_for_spec(spec: ResNetSpec) -> ModelCfg:
    """What a network built from a table expects: 32 px CIFAR statistics for the CIFAR stem,
    else ImageNet's."""
    if spec.stem == "cifar":
        return CIFAR_CFG
    return ModelCfg("resnet", source="build_resnet", paper=PAPERS["resnet"])


CIFAR_CFG = ModelCfg(
    "resnet-cifar",
    input_size=32,
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    crop_pct=1.0,
    source="paper",
    paper=PAPERS["resnet"],
)
# torchvision's eval transforms (bilinear, crop 224): resize 256 for the V1 weights of
# resnet18/34, 232 for the best (V2) weights of the others
TV = partial(ModelCfg, source="torchvision")
TV232 = partial(ModelCfg, source="torchvision", crop_pct=224 / 232)
# timm's eval transforms of the weights cnnzoo.hub fetches: bicubic, crop 0.95 for the RSB-style
# tags (seresnet50.a1_in1k, seresnext101_32x8d.ah_in1k), 0.875 for seresnext50_32x4d.racm_in1k
TIMM_SE = partial(ModelCfg, "seresnet", interpolation="bicubic", source="timm", paper=PAPERS["se"])


def _make(name: str, **kw) -> ResNet:
    return ResNet(SPECS[name], **kw)


# ---------------------------------------------------------------- registered models
@register_model(TV("resnet", paper=PAPERS["resnet"]))
def resnet18(**kw) -> ResNet:
    return _make("resnet18", **kw)


@register_model(TV("resnet", paper=PAPERS["resnet"]))
def resnet34(**kw) -> ResNet:
    return _make("resnet34", **kw)


@register_model(TV232("resnet", paper=PAPERS["resnet"]))
def resnet50(**kw) -> ResNet:
    return _make("resnet50", **kw)


@register_model(TV232("resnet", paper=PAPERS["resnet"]))
def resnet101(**kw) -> ResNet:
    return _make("resnet101", **kw)


@register_model(TV232("resnet", paper=PAPERS["resnet"]))
def resnet152(**kw) -> ResNet:
    return _make("resnet152", **kw)


@register_model(TV232("resnext", paper=PAPERS["resnext"]))
def resnext50_32x4d(**kw) -> ResNet:
    return _make("resnext50_32x4d", **kw)


@register_model(TV232("resnext", paper=PAPERS["resnext"]))
def resnext101_32x8d(**kw) -> ResNet:
    return _make("resnext101_32x8d", **kw)


@register_model(TV232("resnext", paper=PAPERS["resnext"]))
def resnext101_64x4d(**kw) -> ResNet:
    return _make("resnext101_64x4d", **kw)


@register_model(TV232("wide", paper=PAPERS["wide"]))
def wide_resnet50_2(**kw) -> ResNet:
    return _make("wide_resnet50_2", **kw)


@register_model(TV232("wide", paper=PAPERS["wide"]))
def wide_resnet101_2(**kw) -> ResNet:
    return _make("wide_resnet101_2", **kw)


@register_model(TIMM_SE(crop_pct=0.95))
def seresnet50(**kw) -> ResNet:
    return _make("seresnet50", **kw)


@register_model(TIMM_SE())
def seresnext50_32x4d(**kw) -> ResNet:
    return _make("seresnext50_32x4d", **kw)


@register_model(TIMM_SE(crop_pct=0.95))
def seresnext101_32x8d(**kw) -> ResNet:
    return _make("seresnext101_32x8d", **kw)


@register_model(CIFAR_CFG)
def resnet20(**kw) -> ResNet:
    return _make("resnet20", **kw)


@register_model(CIFAR_CFG)
def resnet32(**kw) -> ResNet:
    return _make("resnet32", **kw)


@register_model(CIFAR_CFG)
def resnet44(**kw) -> ResNet:
    return _make("resnet44", **kw)


@register_model(CIFAR_CFG)
def resnet56(**kw) -> ResNet:
    return _make("resnet56", **kw)


@register_model(CIFAR_CFG)
def resnet110(**kw) -> ResNet:
    return _make("resnet110", **kw)
