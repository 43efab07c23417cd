"""RGB weights into a model with other input channels: the first convolution is adapted (summed
for one channel, repeated and rescaled for more) and said once, for every family."""

from __future__ import annotations

import logging

import pytest
import torch

from cnnzoo import create_model
from cnnzoo.models.factory import get_model_cfg, list_models
from cnnzoo.weights import adapt_input_conv, load_weights

pytestmark = pytest.mark.usefixtures("one_thread")

# the smallest model of each family
FAMILIES = {
    "resnet": "resnet18",
    "resnext": "resnext50_32x4d",
    "wide": "wide_resnet50_2",
    "seresnet": "seresnet50",
    "resnet-cifar": "resnet20",
    "resnetv2": "resnetv2_50",
    "convnext": "convnext_tiny",
    "densenet": "densenet121",
    "efficientnet": "efficientnet_b0",
    "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3_small",
    "shufflenet_v2": "shufflenet_v2_x0_5",
    "googlenet": "googlenet",
    "inception_v3": "inception_v3",
    "inception_v4": "inception_v4",
    "inception_resnet_v2": "inception_resnet_v2",
    "resnet-d": "resnet18d",
    "regnet": "regnet_y_400mf",
    "efficientnet_v2": "efficientnet_v2_s",
    "mnasnet": "mnasnet0_5",
    "alexnet": "alexnet",
    "vgg": "vgg11",
    "squeezenet": "squeezenet1_1",
    "mobilenet_v1": "mobilenetv1_100",
    "shufflenet_v1": "shufflenet_v1_x0_5_g3",
    "lenet": "lenet5",
}
# the grey-image check runs a forward pass: on a few families with different stems
FORWARD = ["resnet18", "resnet20", "efficientnet_b0", "mobilenet_v3_small", "densenet121",
           "shufflenet_v2_x0_5", "googlenet", "resnet18d", "squeezenet1_1", "lenet5"]  # fmt: skip


def test_every_family_is_covered():
    assert {get_model_cfg(m).family for m in list_models()} == set(FAMILIES)


def test_adapt_rules():
    w = torch.randn(8, 3, 3, 3)
    assert torch.allclose(adapt_input_conv(w, 1), w.sum(1, keepdim=True))
    w6 = adapt_input_conv(w, 6)
    assert torch.allclose(w6, torch.cat([w, w], 1) / 2)
    w4 = adapt_input_conv(w, 4)
    assert w4.shape == (8, 4, 3, 3)
    assert torch.allclose(w4, torch.cat([w, w[:, :1]], 1) * 0.75)
    # a constant image gives the RGB response for one channel and for multiples of three
    for n in (1, 3, 6, 9):
        assert torch.allclose(adapt_input_conv(w, n).sum(1), w.sum(1), atol=1e-5)


def _rgb_file(tmp_path, name):
    torch.manual_seed(0)
    rgb = create_model(name, num_classes=10).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(rgb.state_dict(), path)
    return rgb, path


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_first_conv_adapted_once(family, caplog):
    """Every family: RGB weights load into a one-channel model of it, with one log line
    naming the adapted convolution; the model's first convolution gets the summed RGB filters
    and everything else loads unchanged."""
    name = FAMILIES[family]
    grey = create_model(name, num_classes=10, in_chans=1)
    first = next(k for k, m in grey.named_modules() if isinstance(m, torch.nn.Conv2d))
    assert grey.get_submodule(first).in_channels == 1
    key = first + ".weight"
    sd = {k: v + 1 if v.is_floating_point() else v for k, v in grey.state_dict().items()}
    rgb_filters = torch.randn(sd[key].shape[0], 3, *sd[key].shape[2:])
    with caplog.at_level(logging.INFO, logger="cnnzoo"):
        load_weights(grey, {**sd, key: rgb_filters})
    lines = [r.getMessage() for r in caplog.records if "input channels" in r.getMessage()]
    assert len(lines) == 1 and key in lines[0] and "summed" in lines[0], lines
    loaded = grey.state_dict()
    assert torch.equal(loaded[key], rgb_filters.sum(1, keepdim=True))
    assert all(torch.equal(v, sd[k]) for k, v in loaded.items() if k != key)


@pytest.mark.parametrize("name", FORWARD)
def test_grey_model_matches_rgb_model_on_grey_image(tmp_path, name):
    """One channel, sum rule: the grey model on a grey image gives what the RGB model gives on
    that image repeated on three channels. Six channels: the RGB image twice gives the RGB
    model's output."""
    size = 16 if name == "resnet20" else 32
    rgb, path = _rgb_file(tmp_path, name)
    x = torch.randn(2, 1, size, size)
    grey = create_model(name, num_classes=10, in_chans=1, weights=path).eval()
    with torch.no_grad():
        want = rgb(x.expand(-1, 3, -1, -1))
        torch.testing.assert_close(grey(x), want, rtol=1e-4, atol=1e-4 * want.abs().max())
        if name in ("resnet18", "mobilenet_v3_small"):
            six = create_model(name, num_classes=10, in_chans=6, weights=path).eval()
            x3 = torch.randn(2, 3, size, size)
            want = rgb(x3)
            got = six(torch.cat([x3, x3], 1))
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max())
