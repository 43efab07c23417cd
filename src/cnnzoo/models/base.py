"""What every cnnzoo model shares: features -> head split, a replaceable classifier, a config record."""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.errors import OptionError
from cnnzoo.layers.head import global_pool


class Classifier(nn.Module):
    """Base class of every cnnzoo network.

    A subclass builds its layers, sets `classifier_name` (dotted path of the final Linear or
    1x1 conv), `num_features` (channels that `forward_features` returns), `feature_info` (its
    intermediate maps, models/features.py) and, when its head is wider than that,
    `head_hidden_size`; it implements `forward_features`. The default head is global pool ->
    `head_drop` -> classifier; families whose reference head differs override `forward_head`.
    After `to_features` (create_model(features_only=True)) `forward` returns the feature maps.
    """

    classifier_name: str = "fc"
    conv_classifier: bool = False  # the classifier is a 1x1 conv (timm's ResNetV2)
    num_features: int = 0
    cfg: ModelCfg | None = None
    _feature_maps: list | None = None

    @property
    def head_hidden_size(self) -> int:
        """Width of `forward_head(x, pre_logits=True)`."""
        return self.__dict__.get("_head_hidden_size", self.num_features)

    @head_hidden_size.setter
    def head_hidden_size(self, value: int) -> None:
        self.__dict__["_head_hidden_size"] = value

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(global_pool(x))
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self._feature_maps is not None:  # a backbone: the selected maps, shallow to deep
            self.forward_features(x)
            maps = list(self._feature_maps)
            self._feature_maps[:] = [None] * len(maps)
            return maps
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with `num_classes` outputs
        (an Identity for 0: the model then returns pooled features)."""
        if num_classes < 0:
            raise OptionError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")
        old = self.get_classifier()
        width = old.in_features if isinstance(old, nn.Linear) else self.head_hidden_size
        if isinstance(old, nn.Conv2d):
            width = old.in_channels
        if num_classes == 0:
            new: nn.Module = nn.Identity()
        elif self.conv_classifier:
            new = nn.Conv2d(width, num_classes, 1)
        else:
            new = nn.Linear(width, num_classes)
        ref = next(self.parameters(), None)
        if ref is not None:
            new.to(ref.device)
        parent_name, _, leaf = self.classifier_name.rpartition(".")
        parent = self.get_submodule(parent_name) if parent_name else self
        setattr(parent, leaf, new)
        self.num_classes = num_classes

    def no_weight_decay_keys(self) -> set[str]:
        """Parameter names to keep out of weight decay: norms, biases, layer scales."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1}


def init_conv_bn(model: nn.Module) -> None:
    """The init the reference CNNs share: He-normal (fan-out) convs with zero bias, BatchNorm
    as identity. Linear layers are left to each family (their inits differ)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


STEMS = ("imagenet", "cifar")


def check_stem(stem: str) -> str:
    """The one check of the small-image option every family takes: `stem="cifar"` keeps the
    stem at full resolution (stride 1, no stem pooling) for 32x32 inputs; "imagenet" is the
    reference stem."""
    if stem not in STEMS:
        raise OptionError(f"unknown stem {stem!r}; choose 'imagenet' or 'cifar' (for 32 px images)")
    return stem
