"""GoogLeNet (Inception v1, Szegedy et al. 2014) and Inception-v3 (Szegedy et al. 2015), with
torchvision's module names. Inception-v4 and Inception-ResNet-v2 are in inception_resnet.py.

Each network is a table of named rows: a Conv (conv-BN-ReLU), a Pool, or an Inception module given
by its branches (layers/inception.py). GoogLeNet's modules are rows of the paper's table 1
(#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); torchvision's GoogLeNet has a 3x3 where
the table says 5x5, and so does this one, so that its weights load. Inception-v3's modules are
the paper's figures 5 (A), 6 (C, with its 7x7 width c7), 7 (E) and the grid reductions B and D.

All four networks of the line (with inception_resnet.py's two) are one class, `InceptionNet`,
built from an `InceptionSpec` row: the table, the classifier's name, the feature maps and the
auxiliary heads.

Options:
- `aux_logits=True` adds the auxiliary classifiers (GoogLeNet: two, after inception4a and 4d;
  Inception-v3: one, after Mixed_6e). In training mode `forward` then returns a named tuple
  (logits, aux_logits...); in eval mode, the logits only. Off by default, as in the reference
  state dicts.
- `transform_input=True` maps an ImageNet-normalised input to the (x - 0.5) / 0.5 input that
  torchvision's pretrained weights were trained on. Off by default; the configs below ask for
  mean = std = 0.5 instead, which is the same thing done in the data pipeline.
- CIFAR option `stem="cifar"`: stem convs at stride 1 with "same" padding and no stem max-pools,
  so a 32x32 input keeps enough resolution (GoogLeNet ends at 8x8, Inception-v3 at 7x7).
  Inception-v3's auxiliary head needs a 17x17 grid, so it is not available with that stem.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.cfg import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD, ModelCfg
from cnnzoo.errors import OptionError
from cnnzoo.layers.head import global_pool
from cnnzoo.layers.inception import (
    Branch,
    Conv,
    ConvBnAct,
    Fork,
    LayerSpec,
    Pool,
    Stack,
    chain,
    four_branch,
    make_layer,
    spec_stride,
)
from cnnzoo.models.base import Classifier, check_stem
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])
InceptionOutputs = namedtuple("InceptionOutputs", ["logits", "aux_logits"])

Table = Sequence[tuple[str, LayerSpec]]

# ---------------------------------------------------------------- GoogLeNet
POOL_3S2 = Pool("max", 3, 2, ceil_mode=True)

GOOGLENET_STEM: dict[str, Table] = {
    "imagenet": (
        ("conv1", Conv(64, 7, 2, 3)),
        ("maxpool1", POOL_3S2),
        ("conv2", Conv(64)),
        ("conv3", Conv(192, 3)),
        ("maxpool2", POOL_3S2),
    ),
    "cifar": (("conv1", Conv(64, 3)), ("conv2", Conv(64)), ("conv3", Conv(192, 3))),
}

_v1 = partial(four_branch, k5=3)  # torchvision's 3x3 in the "5x5" branch
#        name            #1x1 #3x3red #3x3 #5x5red #5x5 pool proj
GOOGLENET: Table = (
    ("inception3a", _v1(64, 96, 128, 16, 32, 32)),
    ("inception3b", _v1(128, 128, 192, 32, 96, 64)),
    ("maxpool3", POOL_3S2),
    ("inception4a", _v1(192, 96, 208, 16, 48, 64)),
    ("inception4b", _v1(160, 112, 224, 24, 64, 64)),
    ("inception4c", _v1(128, 128, 256, 24, 64, 64)),
    ("inception4d", _v1(112, 144, 288, 32, 64, 64)),
    ("inception4e", _v1(256, 160, 320, 32, 128, 128)),
    ("maxpool4", Pool("max", 2, 2, ceil_mode=True)),
    ("inception5a", _v1(256, 160, 320, 32, 128, 128)),
    ("inception5b", _v1(384, 192, 384, 48, 128, 128)),
)

# ---------------------------------------------------------------- Inception-v3
AVG_3S1 = Pool("avg", 3, 1, 1)
MAX_3S2 = Pool("max", 3, 2)


def _v3_a(pool_proj: int) -> tuple[Branch, ...]:
    """Figure 5, 35x35: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1."""
    return (
        Branch((Conv(64, name="branch1x1"),)),
        Branch(chain("branch5x5", Conv(48), Conv(64, 5))),
        Branch(chain("branch3x3dbl", Conv(64), Conv(96, 3), Conv(96, 3))),
        Branch((AVG_3S1, Conv(pool_proj, name="branch_pool"))),
    )


def _v3_b() -> tuple[Branch, ...]:
    """Grid reduction 35 -> 17: 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max-pool/2."""
    return (
        Branch((Conv(384, 3, 2, name="branch3x3"),)),
        Branch(chain("branch3x3dbl", Conv(64), Conv(96, 3), Conv(96, 3, 2))),
        Branch((MAX_3S2,)),
    )


def _v3_c(c7: int) -> tuple[Branch, ...]:
    """Figure 6, 17x17: 7x7 convs factorised into 1x7 and 7x1, c7 channels inside."""
    return (
        Branch((Conv(192, name="branch1x1"),)),
        Branch(chain("branch7x7", Conv(c7), Conv(c7, (1, 7)), Conv(192, (7, 1)))),
        Branch(
            chain(
                "branch7x7dbl",
                Conv(c7),
                Conv(c7, (7, 1)),
                Conv(c7, (1, 7)),
                Conv(c7, (7, 1)),
                Conv(192, (1, 7)),
            )
        ),
        Branch((AVG_3S1, Conv(192, name="branch_pool"))),
    )


def _v3_d() -> tuple[Branch, ...]:
    """Grid reduction 17 -> 8: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max-pool/2."""
    return (
        Branch(chain("branch3x3", Conv(192), Conv(320, 3, 2))),
        Branch(
            chain("branch7x7x3", Conv(192), Conv(192, (1, 7)), Conv(192, (7, 1)), Conv(192, 3, 2))
        ),
        Branch((MAX_3S2,)),
    )


def _v3_e() -> tuple[Branch, ...]:
    """Figure 7, 8x8: the 3x3s end in a 1x3 and a 3x1 side by side (expanded filter bank)."""

    def split(prefix: str) -> Fork:
        a, b = Conv(384, (1, 3), name=prefix + "a"), Conv(384, (3, 1), name=prefix + "b")
        return Fork((Branch((a,)), Branch((b,))))

    return (
        Branch((Conv(320, name="branch1x1"),)),
        Branch((Conv(384, name="branch3x3_1"), split("branch3x3_2"))),
        Branch((*chain("branch3x3dbl", Conv(448), Conv(384, 3)), split("branch3x3dbl_3"))),
        Branch((AVG_3S1, Conv(192, name="branch_pool"))),
    )


V3_STEM: dict[str, Table] = {
    "imagenet": (
        ("Conv2d_1a_3x3", Conv(32, 3, 2)),
        ("Conv2d_2a_3x3", Conv(32, 3, padding=0)),
        ("Conv2d_2b_3x3", Conv(64, 3)),
        ("maxpool1", MAX_3S2),
        ("Conv2d_3b_1x1", Conv(80)),
        ("Conv2d_4a_3x3", Conv(192, 3, padding=0)),
        ("maxpool2", MAX_3S2),
    ),
    "cifar": (
        ("Conv2d_1a_3x3", Conv(32, 3)),
        ("Conv2d_2a_3x3", Conv(32, 3)),
        ("Conv2d_2b_3x3", Conv(64, 3)),
        ("Conv2d_3b_1x1", Conv(80)),
        ("Conv2d_4a_3x3", Conv(192, 3)),
    ),
}

#        name        module (pool proj / c7 as in the paper's figures)
INCEPTION_V3: Table = (
    ("Mixed_5b", _v3_a(32)),
    ("Mixed_5c", _v3_a(64)),
    ("Mixed_5d", _v3_a(64)),
    ("Mixed_6a", _v3_b()),
    ("Mixed_6b", _v3_c(128)),
    ("Mixed_6c", _v3_c(160)),
    ("Mixed_6d", _v3_c(160)),
    ("Mixed_6e", _v3_c(192)),
    ("Mixed_7a", _v3_d()),
    ("Mixed_7b", _v3_e()),
    ("Mixed_7c", _v3_e()),
)


# ---------------------------------------------------------------- auxiliary heads
class GoogLeNetAux(nn.Module):
    """4x4 average pool -> 1x1 conv to 128 -> fc 1024 -> dropout 0.7 -> fc."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvBnAct(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class InceptionV3Aux(nn.Module):
    """5x5/3 average pool -> 1x1 conv to 128 -> 5x5 conv to 768 -> global pool -> fc."""

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, 3)
        self.conv0 = ConvBnAct(in_chs, 128, 1)
        self.conv1 = ConvBnAct(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(global_pool(x))


def imagenet_to_inception(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with ImageNet mean/std  ->  (x - 0.5) / 0.5, per channel."""
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


# ---------------------------------------------------------------- the network
@dataclass(frozen=True)
class InceptionSpec:
    """One Inception-line network: its table per stem, the name of its classifier, its feature
    maps (row names, timm's where timm has the model) and its optional auxiliary heads."""

    table: Callable[[str], Table]  # stem ("imagenet" | "cifar") -> rows
    classifier_name: str
    feature_rows: tuple[str, ...]
    drop_rate: float = 0.0
    aux_taps: tuple[tuple[str, str], ...] = ()  # (row it reads, head name), in depth order
    aux_head: Callable[[int, int], nn.Module] | None = None
    outputs: Callable | None = None  # (logits, [aux logits in depth order]) -> named tuple
    aux_needs_grid: str = ""  # the aux heads need the imagenet stem's grid of this size


def _row_parts(name: str, row, module: nn.Module):
    """(path, stride, module) of a table row and, inside a Stack, of each of its layers (a
    Stack itself comes last, with stride 1: its layers already counted theirs)."""
    if isinstance(row, Stack):
        for i, (r, m) in enumerate(zip(row.layers, module, strict=True)):
            yield f"{name}.{i}", spec_stride(r), m
        yield name, 1, module
    else:
        yield name, spec_stride(row), module


class InceptionNet(Classifier):
    """A table of named rows run in order; auxiliary heads tap the outputs of some rows.
    Head: global average pool -> dropout -> linear (named by the spec's `classifier_name`).

    `aux_logits=True` adds the auxiliary classifiers: in training mode `forward` then returns
    the spec's named tuple (logits, aux logits...); in eval mode the logits only.
    `transform_input=True` maps an ImageNet-normalised input to the (x - 0.5) / 0.5 input the
    reference weights were trained on."""

    def __init__(
        self,
        spec: InceptionSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        drop_rate: float | None = None,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        check_stem(stem)
        if aux_logits and not spec.aux_taps:
            raise OptionError("this network has no auxiliary classifiers (aux_logits)")
        if aux_logits and spec.aux_needs_grid and stem != "imagenet":
            raise OptionError(
                f"the auxiliary head needs the {spec.aux_needs_grid} grid of the imagenet stem: "
                f"not with stem={stem!r}"
            )
        self.classifier_name = spec.classifier_name
        self.spec = spec
        self.num_classes = num_classes
        self.aux_logits = aux_logits and num_classes > 0
        self.aux_taps = dict(spec.aux_taps)
        self.transform_input = transform_input
        self.stage_names: list[str] = []
        self.feature_info = FeatureInfo()
        c = width = in_chans
        reduction = 1
        for name, row in spec.table(stem):
            module, c = make_layer(row, c)
            self.add_module(name, module)
            self.stage_names.append(name)
            for path, stride, m in _row_parts(name, row, module):
                reduction *= stride
                width = getattr(m, "out_channels", width)
                if path in spec.feature_rows:
                    self.feature_info.append(Feature(path, width, reduction))
            head = self.aux_taps.get(name)
            if head and self.aux_logits:
                self.add_module(head, spec.aux_head(c, num_classes))
        self.num_features = c
        self.head_drop = nn.Dropout(spec.drop_rate if drop_rate is None else drop_rate)
        fc = nn.Linear(c, num_classes) if num_classes else nn.Identity()
        # weights keep torch's default init, as timm's do: with BN after every conv it trains
        # well, and the references' truncated-normal re-init would make construction 10x slower
        self.add_module(self.classifier_name, fc)
        self.register_load_state_dict_pre_hook(InceptionNet._drop_aux_keys)

    @property
    def optional_checkpoint_prefixes(self) -> tuple[str, ...]:
        """Auxiliary-head keys that reference checkpoints carry and a model without them skips."""
        return () if self.aux_logits else tuple(f"{h}." for h in self.aux_taps.values())

    @staticmethod
    def _drop_aux_keys(module, state_dict, prefix, *_args) -> None:
        """torchvision's pretrained checkpoints carry the auxiliary heads; a model built without
        them ignores those keys (as torchvision does) instead of refusing the checkpoint."""
        heads = tuple(prefix + h for h in module.optional_checkpoint_prefixes)
        for k in [k for k in state_dict if heads and k.startswith(heads)]:
            del state_dict[k]

    def _features(self, x: torch.Tensor, aux: list[torch.Tensor] | None) -> torch.Tensor:
        if self.transform_input:
            x = imagenet_to_inception(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
            head = self.aux_taps.get(name)
            if aux is not None and head:
                aux.append(getattr(self, head)(x))
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x, None)

    def forward(self, x: torch.Tensor):
        if self.training and self.aux_logits and self._feature_maps is None:
            aux: list[torch.Tensor] = []
            logits = self.forward_head(self._features(x, aux))
            return self.spec.outputs(logits, aux)
        return super().forward(x)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for head in self.aux_taps.values() if self.aux_logits else ():
            aux = getattr(self, head)
            last = "fc2" if hasattr(aux, "fc2") else "fc"
            old = getattr(aux, last)
            setattr(
                aux, last, nn.Linear(old.in_features, num_classes) if num_classes else nn.Identity()
            )


GOOGLENET_SPEC = InceptionSpec(
    table=lambda stem: (*GOOGLENET_STEM[stem], *GOOGLENET),
    classifier_name="fc",
    feature_rows=("conv1", "conv3", "inception3b", "inception4e", "inception5b"),
    drop_rate=0.2,
    aux_taps=(("inception4a", "aux1"), ("inception4d", "aux2")),
    aux_head=GoogLeNetAux,
    outputs=lambda logits, aux: GoogLeNetOutputs(logits, aux[1], aux[0]),
)
INCEPTION_V3_SPEC = InceptionSpec(
    table=lambda stem: (*V3_STEM[stem], *INCEPTION_V3),
    classifier_name="fc",
    feature_rows=("Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7c"),
    drop_rate=0.5,
    aux_taps=(("Mixed_6e", "AuxLogits"),),
    aux_head=InceptionV3Aux,
    outputs=lambda logits, aux: InceptionOutputs(logits, aux[0]),
    aux_needs_grid="17x17",  # for its 5x5/3 pool
)


@register_model(
    ModelCfg(
        "googlenet",
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        source="torchvision",
        paper="Szegedy et al. 2014, Going Deeper with Convolutions",
    )
)
def googlenet(**kwargs) -> InceptionNet:
    return InceptionNet(GOOGLENET_SPEC, **kwargs)


@register_model(
    ModelCfg(
        "inception_v3",
        input_size=299,
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
        crop_pct=299 / 342,
        source="torchvision",
        paper="Szegedy et al. 2015, Rethinking the Inception Architecture for Computer Vision",
    )
)
def inception_v3(**kwargs) -> InceptionNet:
    return InceptionNet(INCEPTION_V3_SPEC, **kwargs)
