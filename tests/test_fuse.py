"""Conv + activation / residual-add fusion (engine/fuse.py): what it fuses in the zoo, that the
outputs stay the model's, and that it leaves alone what it must not touch."""

from __future__ import annotations

import pytest
import torch
from helpers import smallest_per_family, trained_like
from torch import nn

import cnnzoo
from cnnzoo.infer.fast import fast_form, fold_batchnorm
from cnnzoo.infer.fuse import FusedConv2d, fuse_conv_ops

pytestmark = pytest.mark.usefixtures("one_thread")


def count(model: nn.Module, kind: type) -> int:
    return sum(type(m) is kind for m in model.modules())


def folded(name: str, size: int = 64) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = trained_like(cnnzoo.create_model(name, num_classes=10))
    x = torch.randn(2, 3, size, size)
    fold_batchnorm(model, x[:1])
    return model.requires_grad_(False), x


def test_resnet50_fuses_every_conv_but_the_shortcut_projections():
    model, x = folded("resnet50")
    with torch.inference_mode():
        ref = model(x)
        fused, n = fuse_conv_ops(model, x[:1])
        got = fused(x)
    # stem conv + relu, and per block conv1 + relu, conv2 + relu, conv3 + add + relu: 1 + 16 * 3
    assert n == 49 and count(fused, FusedConv2d) == 49
    assert sum(m.add for m in fused.modules() if isinstance(m, FusedConv2d)) == 16
    # the four 1x1 projections of the shortcut are added to, so they stay plain convolutions
    assert count(fused, nn.Conv2d) == 4
    assert (got - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize("name", smallest_per_family())
def test_fused_form_in_every_family(name):
    """Every family that can be traced fuses something and keeps the exact model's outputs
    (fast_form checks and `test_fast_fp32_equals_the_model_in_every_family` too)."""
    size = 32 if "resnet20" in name else 96 if "inception" in name else 64
    model, x = folded(name, size)
    with torch.inference_mode():
        ref = model(x)
        fused, n = fuse_conv_ops(model, x[:1])
        got = fused(x)
    assert (got - ref).abs().max() <= 1e-4 * max(1.0, ref.abs().max().item())
    if name.startswith("convnext"):  # depthwise conv -> LayerNorm: nothing reads a conv alone
        assert n == 0
    elif name.startswith("resnetv2"):  # weight-standardised convs: not plain nn.Conv2d
        assert n == 0 and fused is model
    elif name == "lenet5":  # its activation, 1.7159 tanh(2x/3), is no oneDNN post-op
        assert n == 0 and fused is model
    else:
        assert n > 0 and count(fused, FusedConv2d) == n


def fuse_small(module: nn.Module):
    """(model, its output, the fused form, how many fused, the fused form's output) of a small
    hand-built module on a seeded 8x8 input."""
    torch.manual_seed(0)
    model = module.eval().requires_grad_(False)
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        fused, n = fuse_conv_ops(model, x)
        return model, model(x), fused, n, fused(x)


class Branches(nn.Module):
    """A conv read by two ops, an add that broadcasts, and a subclassed activation."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Conv2d(3, 4, 3, padding=1)
        self.bcast = nn.Conv2d(3, 4, 3, padding=1)
        self.odd = nn.Conv2d(3, 4, 3, padding=1)
        self.plain = nn.Conv2d(3, 4, 3, padding=1)
        self.bias = nn.Parameter(torch.randn(1, 4, 1, 1))
        self.leaky = LeakyAsReLU()

    def forward(self, x):
        y = self.shared(x)
        a = torch.relu(y) + y  # read twice: fusing the relu would lose y
        b = torch.relu(self.bcast(x) + self.bias)  # [1, 4, 1, 1] broadcast over the map
        c = self.leaky(self.odd(x))
        d = torch.relu(self.plain(x))
        return a + b + c + d


class LeakyAsReLU(nn.ReLU):
    def forward(self, x):
        return nn.functional.leaky_relu(x, 0.1)


def test_only_safe_chains_are_fused():
    model, ref, fused, n, got = fuse_small(Branches())
    assert n == 1  # only `plain` -> relu
    assert torch.allclose(got, ref, atol=1e-5)


def test_a_backbone_with_hooks_is_left_alone():
    backbone = cnnzoo.create_model("resnet18", features_only=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        ref = backbone(x)
        out, n = fuse_conv_ops(backbone, x)
        assert n == 0 and out is backbone
        fast = fast_form(backbone, x)  # the fast form of a backbone: folded, not fused
        got = fast.model(x.contiguous(memory_format=torch.channels_last))
    assert len(got) == len(ref)
    assert all(
        (g - r).abs().max() < 1e-4 * max(1, r.abs().max()) for g, r in zip(got, ref, strict=True)
    )


def test_a_fused_graph_that_disagrees_is_refused(monkeypatch):
    model, x = folded("resnet18")
    monkeypatch.setattr(FusedConv2d, "forward", lambda self, x, other=None: x * 0 + 1)
    with torch.inference_mode():
        out, n = fuse_conv_ops(model, x[:1])
    assert n == 0 and out is model


def test_fast_bf16_is_fused_too():
    torch.manual_seed(0)
    model = trained_like(cnnzoo.create_model("resnet18", num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        ref = model(x)
        fast = fast_form(model, x[:1], torch.bfloat16)
        got = fast(x)
    fused = [m for m in fast.modules() if isinstance(m, FusedConv2d)]
    assert len(fused) == 17 and all(m.weight.dtype == torch.bfloat16 for m in fused)
    assert (got - ref).abs().max() <= 0.1 * max(1.0, ref.abs().max().item())


class AddInto(nn.Module):
    """`z += conv(x)` writes into y (z is y), which the output reads again; torch.fx traces
    `+=` as an out-of-place add, so the traced graph computes something else."""

    def __init__(self) -> None:
        super().__init__()
        self.pre = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.plain = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.pre(x) * 1.0
        z = y
        z += self.conv(x)
        return torch.relu(z) + y + torch.relu(self.plain(x))


def test_a_model_its_trace_gets_wrong_is_left_unfused():
    model, ref, fused, n, got = fuse_small(AddInto())
    assert n == 0 and fused is model  # the output check caught it: nothing fused
    assert torch.equal(got, ref)


def test_squeeze_excite_convs_on_a_1x1_map_stay_plain():
    """mobilenet_v3's squeeze-excite convs read a 1x1 map, where the fused op costs several
    times the plain convolution: the 16 convs of its 8 SE blocks stay plain, every other conv
    followed by an activation is fused."""
    model, x = folded("mobilenet_v3_large", 64)
    with torch.inference_mode():
        ref = model(x)
        fused, n = fuse_conv_ops(model, x[:1])
        assert (fused(x) - ref).abs().max() <= 1e-4 * max(1.0, ref.abs().max().item())
    se = [name for name, m in model.named_modules() if type(m).__name__ == "SqueezeExcite"]
    assert len(se) == 8  # the trace keeps each leaf module under its path in the model
    for name in se:
        assert type(fused.get_submodule(f"{name}.fc1")) is nn.Conv2d
        assert type(fused.get_submodule(f"{name}.fc2")) is nn.Conv2d
    assert n == count(fused, FusedConv2d) > 0
