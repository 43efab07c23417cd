"""What every cnnzoo model shares: features -> head split, a replaceable classifier, a config record."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelCfg:
    """How a model expects its input, and where its design and weights come from."""

    family: str
    input_size: int = 224
    num_classes: int = 1000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    source: str = ""  # reference implementation whose state-dict layout the model matches
    paper: str = ""


class Classifier(nn.Module):
    """Base class: subclasses build the network, set `classifier_name` (the dotted path of the
    final Linear / 1x1 Conv) and `num_features`, and implement `forward_features`.

    `forward_head` pools and classifies; `forward` is the two in turn.
    """

    classifier_name: str = "fc"
    classifier_is_conv: bool = False  # a 1x1 Conv classifier on the pooled map (ResNetV2)
    num_features: int = 0
    cfg: ModelCfg | None = None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with `num_classes` outputs
        (an Identity for 0, to use the model as a feature extractor)."""
        old = self.get_classifier()
        if isinstance(old, (nn.Linear, nn.Conv2d)):
            width = old.in_features if isinstance(old, nn.Linear) else old.in_channels
        else:  # headless so far (Identity): the width of the pre-logits features
            width = getattr(self, "head_hidden_size", 0) or self.num_features
        if num_classes == 0:
            new: nn.Module = nn.Identity()
        elif isinstance(old, nn.Conv2d) or self.classifier_is_conv:
            new = nn.Conv2d(width, num_classes, 1)
        else:
            new = nn.Linear(width, num_classes)
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
