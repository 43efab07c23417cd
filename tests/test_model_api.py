"""The model API every family shares: feature maps (features_only / feature_info), headless
models, heads, the small-image stem, option errors, and the import structure."""

from __future__ import annotations

import ast
import logging
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.errors import OptionError
from cnnzoo.registry import REGISTRY, ModelEntry

ALL = cnnzoo.list_models()
SRC = Path(cnnzoo.__file__).parent
# one small model per family, for the tests that run real numbers
PER_FAMILY = [
    "resnet18", "resnet20", "seresnet50", "resnetv2_50", "convnext_tiny", "mobilenet_v2",
    "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "densenet121", "googlenet",
    "inception_v3", "inception_v4", "inception_resnet_v2", "resnet18d", "regnet_x_400mf",
    "efficientnet_v2_s", "mnasnet0_5", "alexnet", "vgg11", "squeezenet1_1",
    "mobilenetv1_100", "shufflenet_v1_x0_5_g3", "lenet5",
]  # fmt: skip
# valid (unpadded) convolutions lose border pixels: maps are a little smaller than size / stride
VALID_PADDING = {
    "inception_v3", "inception_v4", "inception_resnet_v2", "alexnet", "squeezenet1_0",
    "squeezenet1_1", "lenet5",
}  # fmt: skip
# the deepest default map is taken before the end of forward_features (as timm's is)
# (LeNet-5's C5 is a full connection to S4 in conv form: S4 is its deepest map)
DEEPEST_BEFORE_END = {
    "resnetv2",
    "efficientnet",
    "efficientnet_v2",
    "mobilenet_v2",
    "mnasnet",
    "lenet",
}

# what timm's features_only gives for the architectures it has (channels, reductions)
TIMM_FEATURES = {
    "resnet50": ([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
    "resnet18": ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
    "convnext_tiny": ([96, 192, 384, 768], [4, 8, 16, 32]),
    "efficientnet_b0": ([16, 24, 40, 112, 320], [2, 4, 8, 16, 32]),
    "mobilenet_v2": ([16, 24, 32, 96, 320], [2, 4, 8, 16, 32]),
    "mobilenet_v3_large": ([16, 24, 40, 112, 960], [2, 4, 8, 16, 32]),
    "mobilenet_v3_small": ([16, 16, 24, 48, 576], [2, 4, 8, 16, 32]),
    "densenet121": ([64, 256, 512, 1024, 1024], [2, 4, 8, 16, 32]),
    "inception_v3": ([64, 192, 288, 768, 2048], [2, 4, 8, 16, 32]),
    "inception_v4": ([64, 160, 384, 1024, 1536], [2, 4, 8, 16, 32]),
    "inception_resnet_v2": ([64, 192, 320, 1088, 1536], [2, 4, 8, 16, 32]),
    "resnetv2_50": ([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
    # timm's resnet*d, regnety_004 / regnetx_004 (the same rows), efficientnetv2_s / _m / _l
    # (tf_efficientnetv2_*), mnasnet_100 / mnasnet_050 (timm's width rounding: MNASNet's)
    "resnet18d": ([64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
    "resnet50d": ([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32]),
    "regnet_y_400mf": ([32, 48, 104, 208, 440], [2, 4, 8, 16, 32]),
    "regnet_x_400mf": ([32, 32, 64, 160, 400], [2, 4, 8, 16, 32]),
    "efficientnet_v2_s": ([24, 48, 64, 160, 256], [2, 4, 8, 16, 32]),
    "efficientnet_v2_m": ([24, 48, 80, 176, 512], [2, 4, 8, 16, 32]),
    "efficientnet_v2_l": ([32, 64, 96, 224, 640], [2, 4, 8, 16, 32]),
    "mnasnet1_0": ([16, 24, 40, 96, 320], [2, 4, 8, 16, 32]),
    "vgg16": ([64, 128, 256, 512, 512, 512], [1, 2, 4, 8, 16, 32]),
    "vgg11_bn": ([64, 128, 256, 512, 512, 512], [1, 2, 4, 8, 16, 32]),
    "mobilenetv1_100": ([64, 128, 256, 512, 1024], [2, 4, 8, 16, 32]),
}


def meta_model(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kw).eval()


def expected_side(side: int, reduction: int, name: str) -> range:
    exact = math.ceil(side / reduction)
    return range(exact - 4, exact + 1) if name in VALID_PADDING else range(exact, exact + 1)


@pytest.mark.parametrize("name", sorted(TIMM_FEATURES))
def test_default_maps_are_timms(name):
    info = meta_model(name).feature_info
    assert (info.channels(), info.reduction()) == TIMM_FEATURES[name]


@pytest.mark.parametrize("name", ALL)
def test_every_map_matches_feature_info(name):
    """Shapes only (meta device): at the native size and at a non-square size."""
    model = meta_model(name, features_only=True)
    native = model.cfg.input_size
    for h, w in ((native, native), (native + 32, native - 32 if native > 64 else native + 16)):
        maps = model(torch.empty(2, 3, h, w, device="meta"))
        info = model.feature_info
        assert len(maps) == len(info) >= 3
        for m, f in zip(maps, info, strict=True):
            assert m.shape[:2] == (2, f.channels), (f.module, m.shape)
            assert m.shape[2] in expected_side(h, f.reduction, name), (f, m.shape, h)
            assert m.shape[3] in expected_side(w, f.reduction, name), (f, m.shape, w)
        assert info.reduction() == sorted(info.reduction())


def _hooked_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The maps of the full classifier, copied the moment each module returns them."""
    out: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(f.module).register_forward_hook(
            lambda _m, _a, y, name=f.module: out.setdefault(name, y.clone())
        )
        for f in model.feature_info
    ]
    with torch.no_grad():
        logits = model(x)
    for h in handles:
        h.remove()
    return [out[f.module] for f in model.feature_info], logits


@pytest.mark.parametrize("name", PER_FAMILY)
def test_maps_equal_the_classifiers_own_and_checkpoint_loads(name, tmp_path, caplog):
    """A classifier checkpoint loads into the backbone (its head said dropped, once), and the
    backbone's maps equal the classifier's intermediate outputs; the deepest map equals
    forward_features exactly where both end at the same layer."""
    torch.manual_seed(0)
    full = cnnzoo.create_model(name, num_classes=7).eval()
    size = 96 if name.startswith("inception") else 64
    x = torch.randn(2, 3, size, size + 32)
    want, _ = _hooked_maps(full, x)
    path = tmp_path / "full.pth"
    torch.save(full.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="cnnzoo"):
        backbone = cnnzoo.create_model(name, num_classes=7, weights=path, features_only=True)
    dropped = [r.message for r in caplog.records if "features_only" in r.message]
    assert len(dropped) == 1 and full.classifier_name.split(".")[0] in dropped[0]
    names = {k for k in backbone.state_dict()}
    assert names < set(full.state_dict()), "the backbone keeps the reference key names"
    assert not any(k.startswith(full.classifier_name) for k in names)
    with torch.no_grad():
        maps = backbone.eval()(x)
        deepest = full.forward_features(x)
    for got, ref in zip(maps, want, strict=True):
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
    same_end = torch.equal(maps[-1], deepest) if maps[-1].shape == deepest.shape else False
    assert same_end == (full.cfg.family not in DEEPEST_BEFORE_END)


def test_out_indices_pick_maps_and_bad_ones_are_refused():
    model = cnnzoo.create_model("resnet18", features_only=True, out_indices=(1, -1))
    assert model.feature_info.channels() == [64, 512]
    assert [m.shape[1] for m in model(torch.randn(1, 3, 64, 64))] == [64, 512]
    assert not hasattr(model, "fc") or isinstance(model.fc, nn.Identity)
    with pytest.raises(OptionError, match="out_indices"):
        cnnzoo.create_model("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(OptionError, match="features_only"):
        cnnzoo.create_model("resnet18", out_indices=(1,))


@pytest.mark.parametrize("name", ALL)
def test_headless_and_reset_classifier(name):
    """num_classes=0: pooled features of head_hidden_size; forward_features returns
    num_features channels; a classifier can be put back."""
    model = meta_model(name, num_classes=0)
    size = model.cfg.input_size
    x = torch.empty(2, 3, size, size, device="meta")
    assert model.num_classes == 0
    assert model(x).shape == (2, model.head_hidden_size)
    assert model.forward_features(x).shape[1] == model.num_features
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (
        2,
        model.head_hidden_size,
    )
    model.reset_classifier(5)
    assert model(x).shape == (2, 5) and model.num_classes == 5


def test_mobilenet_v3_feature_and_head_widths_differ():
    model = meta_model("mobilenet_v3_large")
    assert (model.num_features, model.head_hidden_size) == (960, 1280)


@pytest.mark.parametrize("name", ALL)
def test_cifar_stem_on_every_family(name):
    """stem="cifar" keeps a 32x32 image's deepest map bigger than 1x1 on every family."""
    model = meta_model(name, num_classes=10, stem="cifar")
    out = model.forward_features(torch.empty(1, 3, 32, 32, device="meta"))
    assert min(out.shape[2:]) >= 2, out.shape
    assert model(torch.empty(1, 3, 32, 32, device="meta")).shape == (1, 10)


def test_one_place_refuses_a_bad_stem():
    for name in ("resnet18", "convnext_tiny", "mobilenet_v3_small", "inception_v4"):
        with pytest.raises(OptionError, match="unknown stem 'tiny'.*'cifar'"):
            meta_model(name, stem="tiny")


def test_unknown_option_is_one_line_and_a_builder_bug_is_not_an_option_error():
    with pytest.raises(OptionError, match="no option drop_rat .*did you mean drop_rate"):
        cnnzoo.create_model("resnet18", drop_rat=0.1)

    def broken(**kw):
        raise TypeError("a bug inside the builder")

    REGISTRY["broken_test_model"] = ModelEntry(
        "broken_test_model", broken, cnnzoo.get_model_cfg("resnet18")
    )
    try:
        with pytest.raises(TypeError, match="a bug inside"):
            cnnzoo.create_model("broken_test_model")
    finally:
        del REGISTRY["broken_test_model"]


def test_build_resnet_knows_its_classes_and_cfg():
    net = cnnzoo.build_resnet(
        [(2, 16), (2, 32)], block="basic", stem="cifar", stem_width=16, num_classes=3
    )
    assert net.num_classes == 3 and net.cfg.input_size == 32
    assert net.feature_info.channels() == [16, 16, 32]
    big = cnnzoo.build_resnet([(1, 64), (1, 128)], block="bottleneck", num_classes=4)
    assert big.cfg.input_size == 224 and big.num_classes == 4


def test_resnet_d_is_two_options_of_the_residual_table():
    d = cnnzoo.build_resnet([(3, 64), (4, 128), (6, 256), (3, 512)], deep_stem=32, shortcut="avg")
    assert sum(p.numel() for p in d.parameters()) == 25_576_264  # timm's resnet50d
    assert isinstance(d.layer2[0].downsample[0], nn.AvgPool2d)
    assert isinstance(d.layer1[0].downsample[0], nn.Identity)  # stride 1: no pooling
    with pytest.raises(OptionError, match="unknown shortcut"):
        cnnzoo.build_resnet([(1, 64)], shortcut="pool")


def test_regnet_stages_come_from_the_design_parameters():
    from cnnzoo.models.regnet import ROWS, stage_plan

    # the paper's RegNetY-400MF: depths 1, 3, 6, 6 and widths 48, 104, 208, 440 (groups of 8)
    assert stage_plan(ROWS["regnet_y_400mf"]) == [(48, 1, 8), (104, 3, 8), (208, 6, 8), (440, 6, 8)]
    # a stage narrower than the group width is one group: RegNetX-8GF's 80 < 120
    assert stage_plan(ROWS["regnet_x_8gf"])[0] == (80, 2, 80)


def test_registered_cfg_is_the_references_eval_transform():
    """eval and predict resize with the reference weights' interpolation and crop."""
    from cnnzoo.infer.evaluate import Preprocess

    pre = Preprocess.from_cfg(cnnzoo.get_model_cfg("efficientnet_b3"))
    assert (pre.input_size, round(pre.input_size / pre.crop_pct), pre.interpolation) == (
        300,
        320,
        "bicubic",
    )
    img = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8)
    small = Preprocess(16, (0.0,) * 3, (1 / 255,) * 3, 1.0, "bicubic")(img)
    bilinear = Preprocess(16, (0.0,) * 3, (1 / 255,) * 3, 1.0, "bilinear")(img)
    assert not torch.allclose(small, bilinear) and small.min() >= 0 and small.max() <= 255


def test_inception_pools_are_modules():
    model = meta_model("inception_v3")
    pools = [n for n, m in model.named_modules() if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    # 2 stem max-pools, 8 branch average pools (Mixed_5b-d, 6b-e, 7b-c... less the reductions'
    # max-pools counted apart), 2 grid-reduction max-pools
    assert "Mixed_5b.pool0" in pools and "Mixed_6a.pool0" in pools and len(pools) == 13
    assert "AvgPool2d" in repr(model.Mixed_7c)


def test_no_import_cycle_and_data_knows_no_models():
    cfg_imports = [
        n
        for n in ast.walk(ast.parse((SRC / "cfg.py").read_text()))
        if isinstance(n, ast.ImportFrom)
    ]
    assert all(not (i.level or (i.module or "").startswith("cnnzoo")) for i in cfg_imports)
    for path in (SRC / "data").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "models" not in (node.module or ""), f"{path.name} imports models"


def test_every_model_name_is_a_definition():
    """One registration idiom: each registered name is a `def NAME(` in models/."""
    text = "".join(p.read_text() for p in (SRC / "models").glob("*.py"))
    assert [n for n in ALL if f"\ndef {n}(" not in text] == []
