"""ShuffleNetV2, DenseNet and the Inception line beyond the generic fidelity test: batch 1 and
non-square inputs, memory-efficient DenseNet, auxiliary heads, CIFAR stems, the shared blocks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.layers import (
    DenseBlock,
    Inception,
    InceptionResidual,
    ShuffleV2Unit,
    four_branch,
)
from cnnzoo.layers.inception import IR_A_BRANCHES, Branch, Conv, Fork, Pool
from cnnzoo.models.densenet import DenseNet, DenseNetSpec
from cnnzoo.models.inception import GoogLeNetOutputs, InceptionOutputs


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# non-square sizes, multiples of 32; the 299 models' valid (unpadded) convs and pools give them
# odd grids, and 160x128 is small enough to keep the test fast
NON_SQUARE = [
    ("shufflenet_v2_x0_5", (224, 160), (7, 5)),
    ("densenet121", (224, 160), (7, 5)),
    ("googlenet", (224, 160), (7, 5)),
    ("inception_v3", (160, 128), (3, 2)),
    ("inception_v4", (160, 128), (3, 2)),
    ("inception_resnet_v2", (160, 128), (3, 2)),
]


@pytest.mark.parametrize(("name", "size", "grid"), NON_SQUARE)
def test_batch1_non_square(name, size, grid):
    model = cnnzoo.create_model(name, num_classes=7).eval()
    with torch.no_grad():
        feats = model.forward_features(_randn(1, 3, *size))
        logits = model.forward_head(feats)
    assert feats.shape[0] == 1 and tuple(feats.shape[2:]) == grid
    assert feats.shape[1] == model.num_features
    assert logits.shape == (1, 7) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("name", "grid"),
    [
        ("shufflenet_v2_x0_5", 4),
        ("densenet121", 4),
        ("googlenet", 8),
        ("inception_v3", 7),
        ("inception_v4", 7),
        ("inception_resnet_v2", 7),
    ],
)
def test_cifar_stem_at_32(name, grid):
    model = cnnzoo.create_model(name, num_classes=10, stem="cifar").eval()
    with torch.no_grad():
        feats = model.forward_features(_randn(1, 3, 32, 32))
        logits = model.forward_head(feats)
    assert tuple(feats.shape[2:]) == (grid, grid)
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()


def test_bad_stem_is_refused():
    with pytest.raises(ValueError, match="stem"):
        cnnzoo.create_model("densenet121", stem="tiny")
    with pytest.raises(ValueError, match="17x17"):
        cnnzoo.create_model("inception_v3", stem="cifar", aux_logits=True)


# ---------------------------------------------------------------- memory-efficient DenseNet
def _saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Forward pass; bytes of activations autograd keeps for the backward pass (outside
    checkpointed regions), each storage counted once, parameters not counted."""
    params = {p.data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = model(x)
    return y, sum(storages.values())


def test_memory_efficient_densenet_same_outputs_and_gradients():
    spec = DenseNetSpec(growth=12, init_features=24, blocks=(4, 6, 4))
    torch.manual_seed(0)
    plain = DenseNet(spec, num_classes=10, stem="cifar")
    lean = DenseNet(spec, num_classes=10, stem="cifar", memory_efficient=True)
    lean.load_state_dict(plain.state_dict())
    x = _randn(4, 3, 32, 32)
    outs, grads, saved = [], [], []
    for model in (plain, lean):
        model.train()
        xi = x.clone().requires_grad_(True)
        y, nbytes = _saved_bytes(model, xi)
        y.square().mean().backward()
        outs.append(y.detach())
        grads.append([xi.grad] + [p.grad for p in model.parameters()])
        saved.append(nbytes)
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    for g_lean, g_plain in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_lean, g_plain, rtol=1e-5, atol=1e-6)
    # the recomputation must not update the BN running statistics a second time
    for (k, a), b in zip(plain.state_dict().items(), lean.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=k)
    assert saved[1] < 0.75 * saved[0], saved  # the concat + BN + ReLU outputs are not kept


def test_memory_efficient_densenet121_loads_the_same_weights():
    plain = cnnzoo.create_model("densenet121").eval()
    lean = cnnzoo.create_model("densenet121", memory_efficient=True).eval()
    lean.load_state_dict(plain.state_dict(), strict=True)
    x = _randn(1, 3, 32, 32).requires_grad_(True)  # grad on: the checkpointed path runs
    torch.testing.assert_close(lean(x), plain(x), rtol=0, atol=0)


# ---------------------------------------------------------------- auxiliary heads
def test_googlenet_aux_heads_in_training_only():
    model = cnnzoo.create_model("googlenet", num_classes=10, aux_logits=True)
    keys = model.state_dict().keys()
    assert {"aux1.fc2.weight", "aux2.conv.conv.weight"} <= set(keys)
    assert not any(k.startswith("aux") for k in cnnzoo.create_model("googlenet").state_dict())
    x = _randn(2, 3, 224, 224)
    with torch.no_grad():
        out = model.train()(x)
        assert isinstance(out, GoogLeNetOutputs)
        assert [t.shape for t in out] == [(2, 10)] * 3
        assert isinstance(model.eval()(x), torch.Tensor)
    model.reset_classifier(5)
    assert model.aux1.fc2.out_features == 5 and model.fc.out_features == 5


def test_checkpoint_with_aux_heads_loads_into_model_without():
    """torchvision's pretrained GoogLeNet / Inception-v3 files hold the auxiliary heads."""
    for name in ("googlenet", "inception_v3"):
        with_aux = cnnzoo.create_model(name, aux_logits=True).state_dict()
        model = cnnzoo.create_model(name)
        assert len(with_aux) > len(model.state_dict())
        model.load_state_dict(with_aux, strict=True)


def test_inception_v3_aux_head_in_training():
    model = cnnzoo.create_model("inception_v3", num_classes=10, aux_logits=True).train()
    with torch.no_grad():
        out = model(_randn(2, 3, 299, 299))
    assert isinstance(out, InceptionOutputs)
    assert out.logits.shape == out.aux_logits.shape == (2, 10)
    assert "AuxLogits.conv1.conv.weight" in model.state_dict()


def test_transform_input_equals_inception_normalisation():
    model = cnnzoo.create_model("googlenet", num_classes=10).eval()
    shifted = cnnzoo.create_model("googlenet", num_classes=10, transform_input=True).eval()
    shifted.load_state_dict(model.state_dict())
    img = torch.rand(1, 3, 64, 64)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    with torch.no_grad():
        a = model((img - 0.5) / 0.5)
        b = shifted((img - mean) / std)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- shared blocks
def test_four_branch_block_is_seed_004s():
    block = Inception(192, four_branch(64, 96, 128, 16, 32, 32))
    assert block.out_channels == 64 + 128 + 32 + 32
    assert block.branch3[1].conv.kernel_size == (5, 5)  # the paper's 5x5 by default
    y = block(_randn(1, 192, 28, 20))
    assert y.shape == (1, 256, 28, 20)


def test_unnamed_branches_name_each_conv():
    fork = Fork((Branch((Conv(4, (1, 3), name="a_2a"),)), Branch((Conv(4, (3, 1), name="a_2b"),))))
    branches = (
        Branch((Conv(8, name="a_1"), fork)),
        Branch((Pool("avg", 3, 1, 1), Conv(6, name="pool_proj"))),
    )
    block = Inception(16, branches)
    assert {k.split(".")[0] for k in block.state_dict()} == {"a_1", "a_2a", "a_2b", "pool_proj"}
    assert block.out_channels == 14 and block(_randn(2, 16, 9, 7)).shape == (2, 14, 9, 7)
    with pytest.raises(ValueError, match="name"):
        Inception(16, (Branch((Conv(8),)),))


def test_inception_resnet_block_is_a_residual():
    block = InceptionResidual(64, IR_A_BRANCHES, 0.17).eval()
    assert isinstance(block, InceptionResidual) and block.scale == pytest.approx(0.17)
    nn.init.zeros_(block.conv2d.weight)
    nn.init.zeros_(block.conv2d.bias)
    x = _randn(1, 64, 11, 13)
    torch.testing.assert_close(block(x), torch.relu(x))


def test_shuffle_unit_shapes():
    x = _randn(1, 48, 14, 10)
    assert ShuffleV2Unit(48, 48)(x).shape == (1, 48, 14, 10)
    assert ShuffleV2Unit(48, 96, stride=2)(x).shape == (1, 96, 7, 5)
    with pytest.raises(ValueError):
        ShuffleV2Unit(48, 64)


def test_dense_block_width():
    block = DenseBlock(3, 16, growth=8)
    assert block.out_channels == 40
    assert block(_randn(1, 16, 6, 6)).shape == (1, 40, 6, 6)


def test_inception_block_copies_and_swaps_children():
    block = Inception(8, four_branch(4, 4, 6, 2, 3, 2)).eval()
    x = _randn(1, 8, 5, 5)
    twin = copy.deepcopy(block)
    torch.testing.assert_close(twin(x), block(x))
    twin.branch1 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())  # children are looked up by name
    assert not torch.allclose(twin(x)[:, :4], block(x)[:, :4])
