"""Loading checkpoints: a cnnzoo checkpoint's sidecar gives create_model its class count, input
channels and options; a headless model (num_classes=0) loads a full checkpoint."""

from __future__ import annotations

import logging
import re

import pytest
import torch

from cnnzoo import CnnzooError, create_model
from cnnzoo.artifacts.sidecar import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _save_run(run, model, name, overrides, in_chans):
    info = {
        "model": name,
        "model_overrides": overrides,
        "num_classes": model.num_classes,
        "in_chans": in_chans,
        "classes": [f"c{i}" for i in range(model.num_classes)],
        "input_size": 16,
        "mean": [0.5] * in_chans,
        "std": [0.25] * in_chans,
    }
    save_checkpoint(run / "best.safetensors", model, info)


def test_cnnzoo_checkpoint_brings_its_head_and_options(tmp_path, caplog):
    """A run folder (or its .safetensors, or its sidecar) builds the trained network: 5
    classes, one input channel, the CIFAR stem; nothing re-initialised."""
    torch.manual_seed(0)
    trained = create_model("resnet18", num_classes=5, in_chans=1, stem="cifar").eval()
    _save_run(tmp_path, trained, "resnet18", {"stem": "cifar"}, 1)
    x = torch.randn(2, 1, 16, 16)
    for weights in (tmp_path, tmp_path / "best.safetensors", tmp_path / "best.json"):
        with caplog.at_level(logging.INFO, logger="cnnzoo"):
            model = create_model("resnet18", weights=weights).eval()
        assert model.num_classes == 5 and model.model_overrides == {"stem": "cifar"}
        assert torch.equal(model(x), trained(x))
        assert not [r for r in caplog.records if "re-initialised" in r.getMessage()]


def test_caller_options_win_over_the_sidecar(tmp_path, caplog):
    torch.manual_seed(0)
    trained = create_model("resnet20", num_classes=5).eval()
    _save_run(tmp_path, trained, "resnet20", {}, 3)
    with caplog.at_level(logging.WARNING, logger="cnnzoo"):
        model = create_model("resnet20", num_classes=3, weights=tmp_path)
    assert model.num_classes == 3 and model(torch.randn(1, 3, 16, 16)).shape == (1, 3)
    assert [r for r in caplog.records if "classifier re-initialised" in r.getMessage()]
    # a checkpoint of another model gives no defaults: its keys are what is refused
    with pytest.raises(CnnzooError, match="does not fit resnet32"):
        create_model("resnet32", weights=tmp_path)


@pytest.mark.parametrize("name", ["resnet18", "resnetv2_50", "mobilenet_v3_small", "convnext_tiny"])
def test_headless_model_loads_a_full_checkpoint(tmp_path, name, caplog):
    """num_classes=0 drops the file's classifier (said once) and returns the full model's
    pre-logits features; reset_classifier then gives a working classifier again."""
    torch.manual_seed(0)
    full = create_model(name).eval()
    path = tmp_path / "full.pth"
    torch.save(full.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="cnnzoo"):
        headless = create_model(name, num_classes=0, weights=path).eval()
    said = [r.getMessage() for r in caplog.records if "classifier dropped" in r.getMessage()]
    assert len(said) == 1, said
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = full.forward_head(full.forward_features(x), pre_logits=True)
        torch.testing.assert_close(headless(x), want)
        headless.reset_classifier(5)
        assert headless(x).shape == (2, 5)


def test_resnetv2_headless_then_reset_classifier():
    """The crash the issue names: ResNetV2's classifier is a 1x1 convolution on the pooled map."""
    model = create_model("resnetv2_50", num_classes=0).eval()
    x = torch.randn(1, 3, 32, 32)
    assert model(x).shape == (1, 2048)
    model.reset_classifier(5)
    assert isinstance(model.get_classifier(), torch.nn.Conv2d)
    assert model(x).shape == (1, 5)
    model.reset_classifier(0)
    assert model(x).shape == (1, 2048)


def test_torchvision_densenet_file_layout_loads(tmp_path):
    """torchvision's DenseNet files name layers `denselayer1.norm.1` (today `norm1`) and, like
    other old files, carry no BatchNorm counters: both load."""
    torch.manual_seed(0)
    src = create_model("densenet121")
    old = {
        re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
        for k, v in src.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    path = tmp_path / "densenet121-old.pth"
    torch.save(old, path)
    model = create_model("densenet121", weights=path)
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(model.state_dict()[k], v), k
