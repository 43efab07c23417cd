"""Inception-v4 and Inception-ResNet-v2 (Szegedy et al. 2016), with timm's module names
(inception_v4: features.N..., last_linear; inception_resnet_v2: conv2d_1a ... block8, classif).

Both networks are tables of rows built by layers/inception.py: Conv (conv-BN-ReLU, BN eps 1e-3),
Pool, an Inception module given by its branches, Residual (an Inception-ResNet block), Stack (a
Sequential of rows). Inception-v4's modules are the paper's figures 3-8 (stem, A, reduction A,
B, reduction B, C); Inception-ResNet-v2 uses Inception-v3's stem and first module (mixed_5b),
then 10 x Inception-ResNet-A (scale 0.17), reduction, 20 x B (0.10), reduction, 9 x C (0.20) and
a last C block with scale 1 and no ReLU. Both take 299x299 input normalised with mean = std = 0.5.

CIFAR option `stem="cifar"`: stem convs at stride 1 with "same" padding and no stem
down-sampling, so a 32x32 input reaches the last grid at 7x7.
"""

from __future__ import annotations

from functools import partial

from cnnzoo.cfg import INCEPTION_MEAN, INCEPTION_STD, ModelCfg
from cnnzoo.layers.inception import (
    IR_A_BRANCHES,
    IR_B_BRANCHES,
    IR_C_BRANCHES,
    Branch,
    Conv,
    Fork,
    Pool,
    Residual,
    Stack,
)
from cnnzoo.models.inception import InceptionNet, InceptionSpec, Table
from cnnzoo.registry import register_model

AVG = Pool("avg", 3, 1, 1, count_include_pad=False)  # the TF "SAME" average pool
MAX = Pool("max", 3, 2)


def _side_by_side(*convs: Conv) -> Fork:
    return Fork(tuple(Branch((c,)) for c in convs))


# ---------------------------------------------------------------- Inception-v4
def _v4_stem(cifar: bool) -> tuple:
    """Figure 3: three convs, then three 2-branch modules that concatenate (160, 192, 384 ch)."""
    s, p = (1, None) if cifar else (2, 0)  # stride of the reductions; padding of the valid convs
    return (
        Conv(32, 3, s),
        Conv(32, 3, padding=p),
        Conv(64, 3),
        (  # Mixed3a
            Branch((Pool("max", 3, s, 1 if cifar else 0),), "maxpool"),
            Branch((Conv(96, 3, s, 1 if cifar else 0),), "conv"),
        ),
        (  # Mixed4a
            Branch((Conv(64), Conv(96, 3, padding=p)), "branch0"),
            Branch(
                (Conv(64), Conv(64, (1, 7)), Conv(64, (7, 1)), Conv(96, 3, padding=p)), "branch1"
            ),
        ),
        (  # Mixed5a
            Branch((Conv(192, 3, s, 1 if cifar else 0),), "conv"),
            Branch((Pool("max", 3, s, 1 if cifar else 0),), "maxpool"),
        ),
    )


V4_A = (  # figure 4, 35x35
    Branch((Conv(96),), "branch0"),
    Branch((Conv(64), Conv(96, 3)), "branch1"),
    Branch((Conv(64), Conv(96, 3), Conv(96, 3)), "branch2"),
    Branch((AVG, Conv(96)), "branch3"),
)
V4_REDUCTION_A = (  # figure 7 with k, l, m, n = 192, 224, 256, 384
    Branch((Conv(384, 3, 2),), "branch0"),
    Branch((Conv(192), Conv(224, 3), Conv(256, 3, 2)), "branch1"),
    Branch((MAX,), "branch2"),
)
V4_B = (  # figure 5, 17x17
    Branch((Conv(384),), "branch0"),
    Branch((Conv(192), Conv(224, (1, 7)), Conv(256, (7, 1))), "branch1"),
    Branch(
        (Conv(192), Conv(192, (7, 1)), Conv(224, (1, 7)), Conv(224, (7, 1)), Conv(256, (1, 7))),
        "branch2",
    ),
    Branch((AVG, Conv(128)), "branch3"),
)
V4_REDUCTION_B = (  # figure 8
    Branch((Conv(192), Conv(192, 3, 2)), "branch0"),
    Branch((Conv(256), Conv(256, (1, 7)), Conv(320, (7, 1)), Conv(320, 3, 2)), "branch1"),
    Branch((MAX,), "branch2"),
)
V4_C = (  # figure 6, 8x8: the 3x3s end in a 1x3 and a 3x1 side by side
    Branch((Conv(256),), "branch0"),
    Branch(
        (
            Conv(384, name="branch1_0"),
            _side_by_side(
                Conv(256, (1, 3), name="branch1_1a"), Conv(256, (3, 1), name="branch1_1b")
            ),
        )
    ),
    Branch(
        (
            Conv(384, name="branch2_0"),
            Conv(448, (3, 1), name="branch2_1"),
            Conv(512, (1, 3), name="branch2_2"),
            _side_by_side(
                Conv(256, (1, 3), name="branch2_3a"), Conv(256, (3, 1), name="branch2_3b")
            ),
        )
    ),
    Branch((AVG, Conv(256)), "branch3"),
)


def inception_v4_table(stem: str = "imagenet") -> Table:
    """Figure 9: stem, 4 x A, reduction A, 7 x B, reduction B, 3 x C, one Sequential."""
    body = (
        *_v4_stem(stem == "cifar"),
        *(V4_A,) * 4,
        V4_REDUCTION_A,
        *(V4_B,) * 7,
        V4_REDUCTION_B,
        *(V4_C,) * 3,
    )
    return (("features", Stack(body)),)


# ---------------------------------------------------------------- Inception-ResNet-v2
IRV2_STEM: dict[str, Table] = {
    "imagenet": (
        ("conv2d_1a", Conv(32, 3, 2)),
        ("conv2d_2a", Conv(32, 3, padding=0)),
        ("conv2d_2b", Conv(64, 3)),
        ("maxpool_3a", MAX),
        ("conv2d_3b", Conv(80)),
        ("conv2d_4a", Conv(192, 3, padding=0)),
        ("maxpool_5a", MAX),
    ),
    "cifar": (
        ("conv2d_1a", Conv(32, 3)),
        ("conv2d_2a", Conv(32, 3)),
        ("conv2d_2b", Conv(64, 3)),
        ("conv2d_3b", Conv(80)),
        ("conv2d_4a", Conv(192, 3)),
    ),
}
MIXED_5B = (  # an Inception-v3 style 35x35 module (its figure 5), 320 channels out
    Branch((Conv(96),), "branch0"),
    Branch((Conv(48), Conv(64, 5)), "branch1"),
    Branch((Conv(64), Conv(96, 3), Conv(96, 3)), "branch2"),
    Branch((AVG, Conv(64)), "branch3"),
)
MIXED_6A = (  # reduction A with k, l, m, n = 256, 256, 384, 384
    Branch((Conv(384, 3, 2),), "branch0"),
    Branch((Conv(256), Conv(256, 3), Conv(384, 3, 2)), "branch1"),
    Branch((MAX,), "branch2"),
)
MIXED_7A = (  # reduction B of figure 18
    Branch((Conv(256), Conv(384, 3, 2)), "branch0"),
    Branch((Conv(256), Conv(288, 3, 2)), "branch1"),
    Branch((Conv(256), Conv(288, 3), Conv(320, 3, 2)), "branch2"),
    Branch((MAX,), "branch3"),
)

#        name          row                                              channels out
INCEPTION_RESNET_V2: Table = (
    ("mixed_5b", MIXED_5B),  # 320
    ("repeat", Stack((Residual(IR_A_BRANCHES, 0.17),) * 10)),  # 320
    ("mixed_6a", MIXED_6A),  # 1088
    ("repeat_1", Stack((Residual(IR_B_BRANCHES, 0.10),) * 20)),  # 1088
    ("mixed_7a", MIXED_7A),  # 2080
    ("repeat_2", Stack((Residual(IR_C_BRANCHES, 0.20),) * 9)),  # 2080
    ("block8", Residual(IR_C_BRANCHES, 1.0, act=False)),  # 2080
    ("conv2d_7b", Conv(1536)),  # 1536
)


# ---------------------------------------------------------------- networks
INCEPTION_V4_SPEC = InceptionSpec(
    table=inception_v4_table,
    classifier_name="last_linear",
    feature_rows=("features.2", "features.3", "features.9", "features.17", "features.21"),
)
INCEPTION_RESNET_V2_SPEC = InceptionSpec(
    table=lambda stem: (*IRV2_STEM[stem], *INCEPTION_RESNET_V2),
    classifier_name="classif",
    feature_rows=("conv2d_2b", "conv2d_4a", "repeat", "repeat_1", "conv2d_7b"),
)

_cfg = partial(
    ModelCfg,
    input_size=299,
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    interpolation="bicubic",
    source="timm",
    paper="Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual "
    "Connections on Learning",
)


@register_model(_cfg("inception_v4", crop_pct=0.875))
def inception_v4(**kwargs) -> InceptionNet:
    return InceptionNet(INCEPTION_V4_SPEC, **kwargs)


@register_model(_cfg("inception_resnet_v2", crop_pct=0.897))
def inception_resnet_v2(**kwargs) -> InceptionNet:
    return InceptionNet(INCEPTION_RESNET_V2_SPEC, **kwargs)
