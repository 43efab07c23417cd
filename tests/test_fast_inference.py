"""The fast inference form: BatchNorm folding keeps fp32 outputs (every family), only folds
what is safe, and `prepare_inference` returns what it says it ran."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.fast import (
    FastModel,
    fast_form,
    find_conv_norm_pairs,
    fold_batchnorm,
    prepare_inference,
)
from cnnzoo.infer.fuse import FusedConv2d
from cnnzoo.zoo_table import ZOO_TABLE

pytestmark = pytest.mark.usefixtures("one_thread")


def smallest_per_family() -> list[str]:
    best: dict[str, str] = {}
    for name, (family, _, params, _) in ZOO_TABLE.items():
        if family not in best or params < ZOO_TABLE[best[family]][2]:
            best[family] = name
    return sorted(best.values())


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm statistics and affine weights far from the identity, as training
    would, so that folding them is tested for real."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))
    return model.eval()


@pytest.mark.parametrize("name", smallest_per_family())
def test_fast_fp32_equals_the_model_in_every_family(name):
    torch.manual_seed(0)
    model = trained_like(cnnzoo.create_model(name, num_classes=10))
    size = 32 if model.cfg.input_size == 32 else 96 if "inception" in name else 64
    x = torch.randn(2, 3, size, size)
    with torch.inference_mode():
        ref = model(x)
        fast = fast_form(model, x[:1])
        got = fast(x)
    assert got.dtype == torch.float32 and got.shape == ref.shape
    assert (got - ref).abs().max() <= 1e-4 * max(1.0, ref.abs().max().item())

    with torch.inference_mode():  # bf16 (classifier kept fp32) runs in every family too
        low = fast_form(model, x[:1], torch.bfloat16)(x)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).abs().max() <= 0.1 * max(1.0, ref.abs().max().item())

    def plain_norms(m: nn.Module) -> int:  # subclasses (ResNetV2's BatchNormReLU) never fold
        return sum(type(x) is nn.BatchNorm2d for x in m.modules())

    norms = plain_norms(model)
    assert plain_norms(fast) < norms or norms == 0  # something folded where there are any
    assert plain_norms(model) == norms  # the model itself is left as it was


def test_every_post_conv_norm_folds_and_pre_activation_norms_stay():
    resnet = cnnzoo.create_model("resnet50", num_classes=10)
    assert len(find_conv_norm_pairs(resnet, torch.randn(1, 3, 64, 64))) == 53  # all of them
    dense = cnnzoo.create_model("densenet121", num_classes=10)
    pairs = dict((n, c) for c, n in find_conv_norm_pairs(dense, torch.randn(1, 3, 64, 64)))
    # a dense layer normalises its concatenated input before its first conv: not foldable
    assert "features.denseblock1.denselayer1.norm1" not in pairs
    assert pairs["features.denseblock1.denselayer1.norm2"] == (
        "features.denseblock1.denselayer1.conv1"
    )


class NormReLU(nn.BatchNorm2d):
    def forward(self, x):
        return torch.relu(super().forward(x))


def test_a_norm_subclass_is_not_folded():
    model = trained_like(nn.Sequential(nn.Conv2d(3, 4, 3), NormReLU(4)))
    assert fold_batchnorm(model, torch.randn(1, 3, 8, 8)) == 0


class TwoReaders(nn.Module):
    """The conv output feeds the norm and also a second branch: folding would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y + self.bn2(self.conv2(x))


def test_a_conv_output_read_twice_is_not_folded():
    model = trained_like(TwoReaders())
    x = torch.randn(2, 3, 8, 8)
    ref = model(x)
    assert fold_batchnorm(model, x) == 1
    assert isinstance(model.bn, nn.BatchNorm2d) and isinstance(model.bn2, nn.Identity)
    assert torch.allclose(model(x), ref, atol=1e-5)


def test_prepare_inference_paths():
    torch.manual_seed(0)
    model = trained_like(cnnzoo.create_model("resnet20", num_classes=10))
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        ref = model(x)
        exact = prepare_inference(model, x, "fp32")
        assert exact.model is model and exact.name == "fp32 (exact)"
        bf16 = prepare_inference(model, x, "bf16")
        assert isinstance(bf16.model, FastModel) and bf16.model.dtype == torch.bfloat16
        inner = bf16.model.model
        convs = [m for m in inner.modules() if isinstance(m, (nn.Conv2d, FusedConv2d))]
        assert convs and all(m.weight.dtype == torch.bfloat16 for m in convs)
        assert inner.get_submodule("fc.layer").weight.dtype == torch.float32  # logits in fp32
        out = bf16.model(x)
        assert out.dtype == torch.float32
        assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # bf16: 8 bits of mantissa
        auto = prepare_inference(model, x, "auto")
        assert auto.name in auto.timings_ms and auto.timings_ms[auto.name] == min(
            auto.timings_ms.values()
        )
        assert {"fp32 (exact)", "fast fp32"} <= set(auto.timings_ms)
        assert auto.name in auto.describe()
    with pytest.raises(CnnzooError, match="unknown precision"):
        prepare_inference(model, x, "fp8")


class OtherRuntime(nn.Module):
    """Stands for a model another runtime runs (no weights torch could fold or cast)."""

    def forward(self, x):
        return x.mean((2, 3))


def test_another_runtime_runs_as_loaded():
    model, x = OtherRuntime(), torch.randn(2, 3, 8, 8)
    path = prepare_inference(model, x, "auto")
    assert path.model is model and path.name == "OtherRuntime as loaded"
    with pytest.raises(CnnzooError, match="runs as loaded"):
        prepare_inference(model, x, "bf16")
