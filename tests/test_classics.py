"""The classic and paper-only networks beyond the generic fidelity tests: LeNet-5's layers as the
paper counts them and its training on real digits, ShuffleNet V1's Table 1 widths and Table 2
complexity, VGG's configurations and the batch-norm switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.layers import LENET5_C3_TABLE

pytestmark = pytest.mark.usefixtures("one_thread")


def _meta(name: str, **kw):
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kw)


def test_lenet5_layers_have_the_papers_parameter_counts():
    model = cnnzoo.create_model("lenet5", in_chans=1)
    counts = {
        name: sum(p.numel() for p in getattr(model, name).parameters())
        for name in ("c1", "s2", "c3", "s4", "c5", "f6", "fc")
    }
    assert counts == {
        "c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "fc": 850,
    }  # fmt: skip
    # Table I: 6 maps read 3 S2 maps, 9 read 4, one reads all 6; 60 connections in all
    assert sorted(len(t) for t in LENET5_C3_TABLE) == [3] * 6 + [4] * 9 + [6]
    assert len(set(LENET5_C3_TABLE)) == 16
    s = cnnzoo.summary(model, (1, 1, 32, 32))
    assert s.stage_shapes["c1"][1:] == (6, 28, 28) and s.stage_shapes["c5"][1:] == (120, 1, 1)


def test_lenet5_c3_reads_only_its_table():
    """Each C3 map changes only when one of the S2 maps its table names changes."""
    torch.manual_seed(0)
    c3 = cnnzoo.create_model("lenet5", in_chans=1).c3
    x = torch.randn(1, 6, 14, 14)
    base = c3(x)
    for i in range(6):
        y = x.clone()
        y[:, i] += 1.0
        changed = (c3(y) - base).abs().flatten(2).amax(2)[0] > 0
        assert changed.tolist() == [i in t for t in LENET5_C3_TABLE]


def test_lenet5_trains_on_digits(tmp_path):
    """sklearn's 8x8 digits resized to 28 px and centred in 32x32 grey images, as the paper
    puts its 28x28 MNIST digits in a 32x32 field; two epochs of the digits recipe."""
    from cnnzoo.data.digits import load_digits
    from cnnzoo.data.stats import channel_stats
    from cnnzoo.data.types import DataBundle, ImageTensors
    from cnnzoo.train.config import TrainConfig
    from cnnzoo.train.trainer import train

    b = load_digits(image_size=28)

    def grey32(t: ImageTensors) -> ImageTensors:
        return ImageTensors(F.pad(t.images[:, :1], (2, 2, 2, 2)), t.labels)

    train_part, val_part = grey32(b.train), grey32(b.val)
    mean, std = channel_stats(train_part.images)
    bundle = DataBundle("digits", b.classes, train_part, val_part, b.val_name, 32, mean, std)
    cfg = TrainConfig(model="lenet5", data="digits", out=str(tmp_path / "run"), epochs=2)
    result = train(cfg, bundle, progress=False)
    assert result.history[-1]["val_acc"] >= 90, result.history


# the paper's Table 1 (output channels of stages 2-4) and Table 2 (MFLOPs at 1x, 224 px)
SHUFFLENET_V1 = {
    1: ((144, 288, 576), 143),
    2: ((200, 400, 800), 140),
    3: ((240, 480, 960), 137),
    4: ((272, 544, 1088), 133),
    8: ((384, 768, 1536), 137),
}


@pytest.mark.parametrize("groups", sorted(SHUFFLENET_V1))
def test_shufflenet_v1_follows_the_papers_tables(groups):
    widths, mflops = SHUFFLENET_V1[groups]
    model = _meta(f"shufflenet_v1_x1_0_g{groups}")
    assert tuple(model.feature_info.channels()[2:]) == widths
    assert [len(getattr(model, f"stage{i}")) for i in (2, 3, 4)] == [4, 8, 4]
    macs = cnnzoo.summary(model, (1, 3, 224, 224), device="meta").macs / 1e6
    assert abs(macs - mflops) <= 0.02 * mflops, f"{macs:.1f} MFLOPs vs the paper's {mflops}"
    half = _meta(f"shufflenet_v1_x0_5_g{groups}")
    assert tuple(half.feature_info.channels()[2:]) == tuple(w // 2 for w in widths)
    # the paper's 0.5x models cost about a quarter (Table 2: 38-40 MFLOPs)
    half_macs = cnnzoo.summary(half, (1, 3, 224, 224), device="meta").macs / 1e6
    assert 36 <= half_macs <= 42


def test_shufflenet_v1_unit_adds_or_concatenates():
    torch.manual_seed(0)
    model = cnnzoo.create_model("shufflenet_v1_x0_5_g3", num_classes=5).eval()
    first, second = model.stage3[0], model.stage3[1]
    assert first.shortcut is not None and second.shortcut is None
    x = torch.randn(1, 120, 8, 8)
    with torch.no_grad():
        y = first(x)
    assert y.shape == (1, 240, 4, 4)
    # the stride-2 unit's first channels are the pooled input, after the ReLU
    pooled = F.avg_pool2d(x, 3, 2, 1)
    torch.testing.assert_close(y[:, :120], pooled.relu())


def test_vgg_configurations_and_batch_norm_switch():
    convs = {
        name: sum(isinstance(m, torch.nn.Conv2d) for m in _meta(name).features)
        for name in ("vgg11", "vgg13", "vgg16", "vgg19")
    }
    assert convs == {"vgg11": 8, "vgg13": 10, "vgg16": 13, "vgg19": 16}  # + 3 linear layers
    bn = _meta("vgg11", batch_norm=True)
    assert sum(p.numel() for p in bn.parameters()) == sum(
        p.numel() for p in _meta("vgg11_bn").parameters()
    )
    assert _meta("vgg16").feature_info.reduction() == [1, 2, 4, 8, 16, 32]
