"""Registry, checkpoint loading, the table-driven ResNet builder and the per-layer summary."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
from conftest import need_reference, parity_module, reference_models
from safetensors.torch import save_file

import cnnzoo
from cnnzoo import CnnzooError, build_resnet, create_model


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- registry
def test_list_models_glob():
    names = cnnzoo.list_models("resnext*")
    assert names == ["resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d"]
    assert "resnet50" in cnnzoo.list_models()


def test_unknown_model_suggests_close_names():
    with pytest.raises(CnnzooError, match="did you mean.*resnet50"):
        create_model("resnet05")


def test_bad_override_is_user_error():
    with pytest.raises(CnnzooError, match="resnet18 takes no option no_such_option"):
        create_model("resnet18", no_such_option=3)
    # a value the builder rejects is a user error too (and still the builder's ValueError)
    with pytest.raises(CnnzooError, match="bad option for resnet20: unknown stem") as e:
        create_model("resnet20", stem="tiny")
    assert isinstance(e.value, ValueError)
    with pytest.raises(CnnzooError, match="num_classes"):
        create_model("resnet20", num_classes=-1)
    with pytest.raises(CnnzooError, match="in_chans"):
        create_model("resnet20", in_chans=0)


def test_cfg_and_head_api():
    m = create_model("resnet18", num_classes=7)
    assert m.cfg.input_size == 224 and m.cfg.source == "torchvision"
    x = torch.randn(2, 3, 64, 64)
    feats = m.forward_features(x)
    assert feats.shape == (2, 512, 2, 2)
    assert m.forward_head(feats, pre_logits=True).shape == (2, 512)
    assert m(x).shape == (2, 7)
    m.reset_classifier(3)
    assert m(x).shape == (2, 3)
    m.reset_classifier(0)
    assert m(x).shape == (2, 512)


# ---------------------------------------------------------------- the table
def test_seed002_table_is_resnet18():
    # seed 002's filter_list_resnet18: four stages of two 3x3/3x3 blocks, 64..512 filters
    table = [(2, 64), (2, 128), (2, 256), (2, 512)]
    m = build_resnet(table, block="basic")
    ref = create_model("resnet18")
    assert n_params(m) == n_params(ref) == 11_689_512
    assert list(m.state_dict()) == list(ref.state_dict())


def test_resnext_from_table_matches_paper_shapes():
    m = build_resnet([(3, 64), (4, 128), (6, 256), (3, 512)], groups=32, width_per_group=4)
    assert n_params(m) == 25_028_904  # not seed 000's 39.7M
    s = cnnzoo.summary(m, (1, 3, 224, 224), depth=1)
    shapes = {k: v[1:] for k, v in s.stage_shapes.items() if k.startswith("layer")}
    assert shapes == {
        "layer1": (256, 56, 56),
        "layer2": (512, 28, 28),
        "layer3": (1024, 14, 14),
        "layer4": (2048, 7, 7),
    }


@pytest.mark.parametrize(
    "name,params",
    [
        ("resnet20", 269_722),
        ("resnet32", 464_154),
        ("resnet44", 658_586),
        ("resnet56", 853_018),
        ("resnet110", 1_727_962),
    ],
)
def test_cifar_resnets_match_paper(name, params):
    # the ResNet paper's table: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M (option A shortcuts)
    m = create_model(name)
    assert m.num_classes == 10 and n_params(m) == params
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert m.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 64, 8, 8)


def test_cifar_stem_keeps_resolution():
    m = create_model("resnet18", num_classes=10, stem="cifar")
    assert m.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 4, 4)
    imagenet = create_model("resnet18", num_classes=10).eval()
    assert imagenet.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 1, 1)
    # only the stem conv differs: 3x3 instead of 7x7
    assert n_params(imagenet) - n_params(m) == 64 * 3 * (49 - 9)


def test_bad_table_values_are_clear():
    with pytest.raises(ValueError, match="unknown block"):
        build_resnet([(2, 64)], block="triple")
    with pytest.raises(ValueError, match="groups"):
        build_resnet([(2, 64)], block="basic", groups=32)


def test_drop_path_only_in_training():
    # zero_init_last=False: zero-initialised branches would make dropping them invisible
    m = create_model("resnet18", num_classes=4, drop_path_rate=0.5, zero_init_last=False).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(m(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    assert not torch.equal(a, m(x))


# ---------------------------------------------------------------- summary
def test_summary_counts_and_table():
    m = create_model("resnet50")
    s = cnnzoo.summary(m, (1, 3, 224, 224), depth=2)
    assert s.total_params == 25_557_032 == s.trainable_params
    assert abs(s.gmacs - 4.089) < 0.01
    text = s.table()
    assert "layer4.2" in text and "Total params:          25,557,032" in text
    # rows' parameters add up at each depth
    assert sum(r.params for r in s.rows if r.depth == 1) == s.total_params
    assert sum(r.macs for r in s.rows if r.depth == 1) == s.macs


def test_summary_seed004_param_example():
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1, bias=True))
    assert cnnzoo.summary(conv, (1, 3, 8, 8)).total_params == 1_792
    sep = cnnzoo.layers.DepthwiseSeparableConv(3, 64, norm=False, act=None, pw_bias=True)
    assert cnnzoo.summary(sep, (1, 3, 8, 8)).total_params == 283


def test_summary_frozen_params_are_non_trainable():
    m = create_model("resnet18", num_classes=5)
    for p in m.parameters():
        p.requires_grad_(False)
    for p in m.fc.parameters():
        p.requires_grad_(True)
    s = cnnzoo.summary(m, 64)
    assert s.trainable_params == 512 * 5 + 5


# ---------------------------------------------------------------- checkpoints
def _save_pth(obj, path):
    torch.save(obj, path)
    return path


def test_load_torchvision_style_checkpoint_roundtrip(tmp_path):
    src = create_model("resnet18")
    sd = src.state_dict()
    for path in (
        _save_pth(sd, tmp_path / "plain.pth"),
        _save_pth(
            {"state_dict": {"module." + k: v for k, v in sd.items()}}, tmp_path / "wrapped.pth"
        ),
    ):
        m = create_model("resnet18", weights=path)
        assert all(torch.equal(m.state_dict()[k], v) for k, v in sd.items())
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "w.safetensors")
    m = create_model("resnet18", weights=tmp_path / "w.safetensors")
    assert torch.equal(m.conv1.weight, src.conv1.weight)


def test_reference_schema_checkpoint_loads(tmp_path):
    """A file with exactly the reference's keys (as timm writes it) loads with no conversion."""
    need_reference()
    schema = reference_models()["seresnext50_32x4d"]["state_dict"]
    sd = parity_module().parity_state_dict(schema)
    torch.save(sd, tmp_path / "timm.pth")
    m = create_model("seresnext50_32x4d", weights=tmp_path / "timm.pth")
    assert torch.equal(m.layer1[0].se.fc1.weight, sd["layer1.0.se.fc1.weight"])


def test_other_num_classes_reinitialises_head(tmp_path, caplog):
    src = create_model("resnet18")
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    with caplog.at_level(logging.WARNING, logger="cnnzoo"):
        m = create_model("resnet18", num_classes=5, weights=tmp_path / "r18.pth")
    assert "classifier re-initialised (checkpoint has 1000 outputs, model has 5)" in caplog.text
    assert m.fc.weight.shape == (5, 512)
    assert torch.equal(m.layer4[1].conv2.weight, src.layer4[1].conv2.weight)


def test_mismatching_backbone_names_keys(tmp_path):
    torch.save(create_model("resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(CnnzooError, match=r"does not fit resnet18: layer1\.2\..* not in model"):
        create_model("resnet18", weights=tmp_path / "r34.pth")


def test_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CnnzooError, match="refused to load"):
        create_model("resnet18", weights=path)


def test_missing_and_corrupt_weight_files(tmp_path):
    with pytest.raises(CnnzooError, match="weights file not found"):
        create_model("resnet18", weights=tmp_path / "nope.pth")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CnnzooError, match="not a readable safetensors"):
        create_model("resnet18", weights=bad)


def test_checkpoint_with_aux_heads_loads_into_model_without(tmp_path):
    """torchvision's googlenet file carries aux1/aux2; the default model (no aux heads) takes it."""
    full = create_model("googlenet", aux_logits=True)
    torch.save(full.state_dict(), tmp_path / "googlenet.pth")
    assert any(k.startswith("aux1.") for k in full.state_dict())
    m = create_model("googlenet", weights=tmp_path / "googlenet.pth")
    assert not any(k.startswith("aux") for k in m.state_dict())
    assert torch.equal(m.fc.weight, full.fc.weight)


def test_the_old_engine_names_still_resolve_with_a_deprecation_warning():
    """`cnnzoo.engine` moved to train / infer / insight / artifacts; its public names keep
    working for one release and say where they went."""
    import importlib
    import sys

    from cnnzoo.infer import Predictor
    from cnnzoo.train import TrainConfig, train

    with pytest.warns(DeprecationWarning, match=r"cnnzoo\.train\.TrainConfig"):
        from cnnzoo.engine import TrainConfig as old_config
    with pytest.warns(DeprecationWarning, match=r"cnnzoo\.train\.train"):
        from cnnzoo.engine import train as old_train
    assert old_config is TrainConfig and old_train is train
    sys.modules.pop("cnnzoo.engine.predict", None)
    with pytest.warns(DeprecationWarning, match=r"cnnzoo\.infer\.predict"):
        old = importlib.import_module("cnnzoo.engine.predict")
    assert old.Predictor is Predictor
    with pytest.raises(AttributeError):
        _ = importlib.import_module("cnnzoo.engine").no_such_name
