"""Pre-activation ResNet (ResNetV2, He et al. 2016 "Identity Mappings in Deep Residual Networks").

BatchNorm and ReLU come *before* each convolution, and the shortcut carries the un-normalised
signal straight through, so there is no ReLU after the addition; one final BN + ReLU sits before
the head. Module names follow timm's `resnetv2_*` (stem.conv, stages.N.blocks.M.norm1/conv1/...,
norm, head.fc as a 1x1 conv), so its checkpoints load as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnzoo.cfg import INCEPTION_MEAN, INCEPTION_STD, ModelCfg
from cnnzoo.layers import DropPath
from cnnzoo.layers.head import global_pool
from cnnzoo.models.base import Classifier, check_stem
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model


class BatchNormReLU(nn.BatchNorm2d):
    """BatchNorm followed by ReLU, in one module so its keys are plain BN keys (norm1.weight)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(super().forward(x))


class PreActBottleneck(nn.Module):
    """norm1 -> 1x1 -> norm2 -> 3x3 (stride, groups) -> norm3 -> 1x1 (x4), plus the shortcut.
    A projection shortcut takes the *pre-activated* input, as in the paper's full pre-activation."""

    def __init__(
        self, cin: int, cout: int, stride: int = 1, groups: int = 1, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        mid = cout // 4
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Module()
            self.downsample.conv = nn.Conv2d(cin, cout, 1, stride, bias=False)
        self.norm1 = BatchNormReLU(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.norm2 = BatchNormReLU(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=groups, bias=False)
        self.norm3 = BatchNormReLU(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.norm1(x)
        shortcut = x if self.downsample is None else self.downsample.conv(pre)
        x = self.conv1(pre)
        x = self.conv2(self.norm2(x))
        x = self.conv3(self.norm3(x))
        return self.drop_path(x) + shortcut


class ResNetV2(Classifier):
    classifier_name = "head.fc"
    conv_classifier = True

    def __init__(
        self,
        depths: Sequence[int],
        widths: Sequence[int] = (256, 512, 1024, 2048),
        stem_width: int = 64,
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential()
        if check_stem(stem) == "imagenet":
            self.stem.add_module("conv", nn.Conv2d(in_chans, stem_width, 7, 2, 3, bias=False))
            self.stem.add_module("pool", nn.MaxPool2d(3, 2, 1))
            reduction = 2
        else:
            self.stem.add_module("conv", nn.Conv2d(in_chans, stem_width, 3, 1, 1, bias=False))
            reduction = 1
        # timm's maps: the stem conv, then each stage (before the final norm)
        self.feature_info = FeatureInfo([Feature("stem.conv", stem_width, reduction)])
        reduction *= 2 if stem == "imagenet" else 1
        total = sum(depths)
        rates = iter(drop_path_rate * i / max(total - 1, 1) for i in range(total))
        cin = stem_width
        self.stages = nn.Sequential()
        for i, (depth, cout) in enumerate(zip(depths, widths, strict=True)):
            stage = nn.Module()
            stage.blocks = nn.Sequential(
                *[
                    PreActBottleneck(
                        cin if j == 0 else cout,
                        cout,
                        2 if i and not j else 1,
                        drop_path=next(rates),
                    )
                    for j in range(depth)
                ]
            )
            self.stages.append(stage)
            reduction *= 2 if i else 1
            self.feature_info.append(Feature(f"stages.{i}.blocks", cout, reduction))
            cin = cout
        self.norm = BatchNormReLU(cin)
        self.num_features = cin
        self.head = nn.Module()
        self.head.fc = nn.Conv2d(cin, num_classes, 1) if num_classes else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.head.fc:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = global_pool(x)
        if pre_logits or isinstance(self.head.fc, nn.Identity):
            return x
        return self.head.fc(x[:, :, None, None]).flatten(1)


CFG = ModelCfg(  # timm's a1h_in1k weights: bicubic, crop 0.95, mean = std = 0.5
    "resnetv2",
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    interpolation="bicubic",
    crop_pct=0.95,
    source="timm",
    paper="He et al. 2016, Identity Mappings in Deep Residual Networks",
)


@register_model(CFG)
def resnetv2_50(**kw) -> ResNetV2:
    return ResNetV2((3, 4, 6, 3), **kw)


@register_model(CFG)
def resnetv2_101(**kw) -> ResNetV2:
    return ResNetV2((3, 4, 23, 3), **kw)


__all__ = ["PreActBottleneck", "ResNetV2"]
