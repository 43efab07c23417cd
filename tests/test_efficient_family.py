"""ConvNeXt, MobileNetV2/V3 and EfficientNet beyond the generic fidelity test: odd input shapes,
the CIFAR option, width scaling, stochastic depth, configs, and the seed-003 parameter gap."""

from __future__ import annotations

import pytest
import torch

import cnnzoo
from cnnzoo.layers import DropPath, InvertedResidual, make_divisible
from cnnzoo.models.factory import get_model_cfg

SMALL = [
    "convnext_tiny",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
]


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", SMALL)
def test_batch_one_and_non_square_input(name):
    model = cnnzoo.create_model(name, num_classes=7).eval()
    with torch.no_grad():
        for shape in [(1, 3, 224, 160), (2, 3, 192, 256)]:
            feats = model.forward_features(torch.randn(shape))
            # every family downsamples 32x: 224x160 -> 7x5, 192x256 -> 6x8
            assert feats.shape[-2:] == (shape[2] // 32, shape[3] // 32)
            assert model.forward_head(feats).shape == (shape[0], 7)
            assert feats.shape[1] == model.num_features
            assert model.forward_head(feats, pre_logits=True).shape == (
                shape[0],
                model.head_hidden_size,
            )


@pytest.mark.parametrize(
    "name, side",
    [("mobilenet_v2", 2), ("mobilenet_v3_small", 2), ("efficientnet_b0", 2), ("convnext_tiny", 4)],
)
def test_cifar_option(name, side):
    x = torch.randn(2, 3, 32, 32)
    default = cnnzoo.create_model(name, num_classes=10).eval()
    cifar = cnnzoo.create_model(name, num_classes=10, stem="cifar")
    with torch.no_grad():
        assert default.forward_features(x).shape[-1] == 1  # ImageNet stride leaves 1x1 at 32x32
        assert cifar.eval().forward_features(x).shape[-2:] == (side, side)
    cifar.train()
    cifar(x).logsumexp(1).mean().backward()  # it trains: gradients reach the stem
    assert cifar.features[0][0].weight.grad is not None


def test_cifar_option_convnext_keeps_every_pixel():
    model = cnnzoo.create_model("convnext_tiny", num_classes=10, stem="cifar").eval()
    conv = model.features[0][0]
    assert (conv.kernel_size, conv.stride) == ((3, 3), (1, 1))


# MobileNetV2's Table 2 (t, c, n, s), counted by hand: the expected parameters of any width.
V2_TABLE = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
V2_TABLE += [(6, 160, 3, 2), (6, 320, 1, 1)]


def _v2_params(width: float, num_classes: int = 1000) -> int:
    cin = make_divisible(32 * width, 8)
    total = 3 * 9 * cin + 2 * cin  # stem conv + BN
    for t, c, n, _ in V2_TABLE:
        cout = make_divisible(c * width, 8)
        for _ in range(n):
            hid = int(round(cin * t))
            if t != 1:
                total += cin * hid + 2 * hid  # expand 1x1 + BN
            total += 9 * hid + 2 * hid + hid * cout + 2 * cout  # depthwise + BN, project + BN
            cin = cout
    last = make_divisible(1280 * max(1.0, width), 8)
    return total + cin * last + 2 * last + last * num_classes + num_classes


def test_v2_count_formula_matches_reference():
    assert _v2_params(1.0) == 3_504_872  # torchvision mobilenet_v2


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.4])
def test_width_mult(width):
    model = cnnzoo.create_model("mobilenet_v2", width_mult=width)
    assert _params(model) == _v2_params(width)
    assert model.features[0][0].out_channels == make_divisible(32 * width, 8)
    assert model.num_features == (1280 if width <= 1 else make_divisible(1280 * width, 8))


def test_width_mult_v3_scales_params():
    counts = [
        _params(cnnzoo.create_model("mobilenet_v3_large", width_mult=w)) for w in (0.5, 1, 1.25)
    ]
    assert counts[0] < counts[1] == 5_483_032 < counts[2]


def _drop_rates(model):
    return [m.p for m in model.modules() if isinstance(m, DropPath)]


def test_drop_path_rates_grow_linearly():
    # ConvNeXt-T: 18 blocks, rate * k / 17, the first block (rate 0) has none
    rates = _drop_rates(cnnzoo.create_model("convnext_tiny"))
    assert rates == pytest.approx([0.1 * k / 17 for k in range(1, 18)])
    # EfficientNet-B0: 16 blocks, 0.2 * k / 16, only on the blocks with a residual
    model = cnnzoo.create_model("efficientnet_b0")
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    expected = [0.2 * k / 16 for k, b in enumerate(blocks) if b.use_residual and k > 0]
    assert _drop_rates(model) == pytest.approx(expected)
    assert _drop_rates(cnnzoo.create_model("efficientnet_b0", drop_path_rate=0.0)) == []
    assert _drop_rates(cnnzoo.create_model("mobilenet_v2")) == []


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    model = cnnzoo.create_model("convnext_tiny", num_classes=10, drop_path_rate=0.5)
    plain = cnnzoo.create_model("convnext_tiny", num_classes=10, drop_path_rate=0.0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("layer_scale"):
                p.fill_(1.0)  # make every branch count, so dropping one shows
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        ref = plain.eval()(x)
        assert torch.equal(model.eval()(x), ref)  # eval: drop path is the identity
        model.train()  # ConvNeXt has no BN or dropout: only drop path differs in training
        torch.manual_seed(1)
        a = model(x)
        torch.manual_seed(2)
        b = model(x)
    assert not torch.allclose(a, ref) and not torch.allclose(a, b)


def test_convnext_tiny_vs_seed_003_parameter_gap():
    """Seed 003's Keras ConvNeXt-T reports 28,582,504 parameters, torchvision 28,589,128: the
    6,624 missing are the layer-scale gammas (one per channel per block), which the seed creates
    on a Layer outside its model, so Keras does not count them."""
    model = cnnzoo.create_model("convnext_tiny")
    gammas = sum(p.numel() for n, p in model.named_parameters() if n.endswith("layer_scale"))
    assert gammas == 3 * 96 + 3 * 192 + 9 * 384 + 3 * 768 == 6_624
    assert _params(model) == 28_589_128
    assert _params(model) - gammas == 28_582_504


def test_configs():
    sizes = [get_model_cfg(f"efficientnet_b{i}").input_size for i in range(8)]
    assert sizes == [224, 240, 288, 300, 380, 456, 528, 600]  # torchvision's eval crops
    b0 = get_model_cfg("efficientnet_b0")
    assert b0.interpolation == "bicubic" and b0.crop_pct == pytest.approx(0.875)
    assert get_model_cfg("convnext_tiny").crop_pct == pytest.approx(224 / 236)
    bn = [
        m
        for m in cnnzoo.create_model("efficientnet_b5").modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert {m.eps for m in bn} == {1e-3}  # B5-B7 keep the TensorFlow ports' BN eps


@pytest.mark.parametrize("name", ["convnext_tiny", "mobilenet_v3_small", "efficientnet_b0"])
def test_reset_classifier(name):
    model = cnnzoo.create_model(name).eval()
    model.reset_classifier(5)
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 5)
    model.reset_classifier(0)
    assert model(x).shape == (1, model.head_hidden_size)


def test_inverted_residual_shortcut():
    x = torch.randn(2, 16, 8, 8)
    same = InvertedResidual(16, 16, 64, 3, 1, act="relu6")
    down = InvertedResidual(16, 24, 64, 5, 2, act="hswish", se_chs=16, se_gate="hsigmoid")
    assert same.use_residual and not down.use_residual
    assert same(x).shape == x.shape and down(x).shape == (2, 24, 4, 4)
