"""ConvNeXt (Liu et al. 2022, A ConvNet for the 2020s), T/S/B/L from one table of depths and widths.

A 4x4 stride-4 "patchify" conv + LayerNorm stem, four stages of ConvNeXt blocks with a
LayerNorm + 2x2 stride-2 conv between stages, then global average pooling, LayerNorm and a Linear.
A block is: 7x7 depthwise conv -> LayerNorm -> Linear(4x) -> GELU -> Linear back (the inverted
bottleneck, run channels-last) -> per-channel layer scale (init 1e-6) -> stochastic depth ->
+ input. Every LayerNorm has eps 1e-6; the drop-path rate grows linearly from 0 over all blocks
to `drop_path_rate` (torchvision's defaults: T 0.1, S 0.4, B 0.5, L 0.5).

Module names follow torchvision (features.N..., block.N, layer_scale, classifier.N), so its
checkpoints load as they are.

Parameter count vs seed 003 (ConvNeXt-T in TF/Keras, "Total params: 28,582,504"; torchvision and
this module: 28,589,128). The 6,624 missing parameters are exactly the layer-scale vectors: one
gamma per block with one entry per channel, 3*96 + 3*192 + 9*384 + 3*768 = 6,624. Seed 003 creates
each gamma with `add_weight` on a throwaway `layers.Layer()` that is not part of the functional
model, so Keras never tracks (nor trains, nor saves) it. Every other layer matches one for one:
biased depthwise and pointwise convs, LayerNorms with weight and bias, biased stem, downsampling
and classifier. (It also differs without changing the count: Keras LayerNorm eps is 1e-3, and it
uses Dropout(0.2) on the branch instead of stochastic depth.)

Small input (CIFAR, 32x32): `stem="cifar"` makes the stem a 3x3 stride-1 conv instead of the
4x4 stride-4 patchify (which would leave 1x1 maps in the last stage at 32x32; now 4x4). This
changes the stem weight's shape, so it is for training from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import DropPath, LayerNorm2d
from cnnzoo.models.base import Classifier, check_stem
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model

LN_EPS = 1e-6


@dataclass(frozen=True)
class ConvNeXtSpec:
    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    drop_path_rate: float  # torchvision's default stochastic depth


#                          blocks per stage    channels per stage    drop path
SPECS: dict[str, ConvNeXtSpec] = {
    "convnext_tiny": ConvNeXtSpec((3, 3, 9, 3), (96, 192, 384, 768), 0.1),
    "convnext_small": ConvNeXtSpec((3, 3, 27, 3), (96, 192, 384, 768), 0.4),
    "convnext_base": ConvNeXtSpec((3, 3, 27, 3), (128, 256, 512, 1024), 0.5),
    "convnext_large": ConvNeXtSpec((3, 3, 27, 3), (192, 384, 768, 1536), 0.5),
}


class Permute(nn.Module):
    """Reorder dimensions (NCHW <-> NHWC), so the block's LayerNorm and Linears see channels last."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class ConvNeXtBlock(nn.Module):
    """dw 7x7 -> LN -> 1x1 (4x) -> GELU -> 1x1 -> layer scale -> drop path -> + input.

    The layer scale is a bare parameter `layer_scale` of shape (C, 1, 1) rather than the shared
    `LayerScale` module, whose key (`layer_scale.gamma`, shape (C,)) would not match torchvision's.
    """

    def __init__(
        self, dim: int, drop_path: float = 0.0, layer_scale_init: float = 1e-6, mlp_ratio: int = 4
    ) -> None:
        super().__init__()
        hidden = mlp_ratio * dim
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            Permute(0, 2, 3, 1),
            nn.LayerNorm(dim, eps=LN_EPS),
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, dim),
            Permute(0, 3, 1, 2),
        )
        self.layer_scale_init = layer_scale_init
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.drop_path = DropPath(drop_path) if drop_path else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.layer_scale * self.block(x))


class ConvNeXt(Classifier):
    classifier_name = "classifier.2"

    def __init__(
        self,
        depths: tuple[int, ...],
        dims: tuple[int, ...],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        layer_scale_init: float = 1e-6,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        check_stem(stem)
        self.num_classes = num_classes
        # Built on the meta device, then materialised and initialised once: PyTorch's default
        # init of every layer would be overwritten anyway and costs seconds at ConvNeXt-L's size.
        with torch.device("meta"):
            self._build(depths, dims, num_classes, in_chans, drop_path_rate, layer_scale_init, stem)
        self.to_empty(device=torch.get_default_device())
        self.init_weights()

    def _build(self, depths, dims, num_classes, in_chans, drop_path_rate, layer_scale_init, stem):
        total = sum(depths)
        # patchify: non-overlapping 4x4 patches; the CIFAR stem keeps every pixel
        conv = (
            nn.Conv2d(in_chans, dims[0], 4, 4)
            if stem == "imagenet"
            else nn.Conv2d(in_chans, dims[0], 3, 1, 1)
        )
        features: list[nn.Module] = [nn.Sequential(conv, LayerNorm2d(dims[0], eps=LN_EPS))]
        self.feature_info = FeatureInfo()
        reduction = 4 if stem == "imagenet" else 1
        k = 0
        for i, (depth, dim) in enumerate(zip(depths, dims, strict=True)):
            if i > 0:
                reduction *= 2
                features.append(
                    nn.Sequential(
                        LayerNorm2d(dims[i - 1], eps=LN_EPS), nn.Conv2d(dims[i - 1], dim, 2, 2)
                    )
                )
            blocks = []
            for _ in range(depth):
                # torchvision: rate * k / (total - 1), so the last block gets the full rate
                rate = drop_path_rate * k / max(total - 1, 1)
                blocks.append(ConvNeXtBlock(dim, rate, layer_scale_init))
                k += 1
            features.append(nn.Sequential(*blocks))
            self.feature_info.append(Feature(f"features.{len(features) - 1}", dim, reduction))
        self.features = nn.Sequential(*features)
        self.num_features = dims[-1]
        self.classifier = nn.Sequential(
            LayerNorm2d(dims[-1], eps=LN_EPS),
            nn.Flatten(1),
            nn.Linear(dims[-1], num_classes) if num_classes else nn.Identity(),
        )

    @torch.no_grad()
    def init_weights(self) -> None:
        """torchvision's init: truncated normal (std 0.02) convs and linears, zero biases, unit
        LayerNorms, layer scales at their init value.

        torchvision truncates at +-2 (absolute), i.e. at 100 std, which a float32 normal draw
        never reaches: a plain normal draw is the same distribution at a fifth of the cost."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, 0.02)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LayerNorm):  # LayerNorm2d included
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, ConvNeXtBlock):
                m.layer_scale.fill_(m.layer_scale_init)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](nn.functional.adaptive_avg_pool2d(x, 1))
        x = torch.flatten(x, 1)
        return x if pre_logits else self.classifier[2](x)


# ---------------------------------------------------------------- registered models
def _cfg(resize: int) -> ModelCfg:
    # torchvision's eval transform: resize 236 (T), 230 (S), 232 (B, L), centre-crop 224, bilinear
    return ModelCfg(
        "convnext",
        crop_pct=224 / resize,
        source="torchvision",
        paper="Liu et al. 2022, A ConvNet for the 2020s",
    )


def _create(name: str, **kwargs) -> ConvNeXt:
    s = SPECS[name]
    kwargs.setdefault("drop_path_rate", s.drop_path_rate)
    return ConvNeXt(s.depths, s.dims, **kwargs)


@register_model(_cfg(236))
def convnext_tiny(**kwargs) -> ConvNeXt:
    """ConvNeXt-T: 28.6M params, 4.5 GMACs at 224."""
    return _create("convnext_tiny", **kwargs)


@register_model(_cfg(230))
def convnext_small(**kwargs) -> ConvNeXt:
    """ConvNeXt-S: 50.2M params, 8.7 GMACs at 224."""
    return _create("convnext_small", **kwargs)


@register_model(_cfg(232))
def convnext_base(**kwargs) -> ConvNeXt:
    """ConvNeXt-B: 88.6M params, 15.4 GMACs at 224."""
    return _create("convnext_base", **kwargs)


@register_model(_cfg(232))
def convnext_large(**kwargs) -> ConvNeXt:
    """ConvNeXt-L: 197.8M params, 34.4 GMACs at 224."""
    return _create("convnext_large", **kwargs)
