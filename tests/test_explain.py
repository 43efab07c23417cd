"""Class-activation maps mean something: a model trained to find a coloured patch at a random
place looks at the patch (an untrained one does not); every family gives a map of the input's
size from a layer outside its head; `cnnzoo explain` draws them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnzoo import create_model
from cnnzoo.cli.main import main
from cnnzoo.data import DataBundle, ImageTensors
from cnnzoo.infer import load_checkpoint
from cnnzoo.infer.evaluate import Preprocess
from cnnzoo.insight.cam import CamExplainer, find_target_layer, head_names
from cnnzoo.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE, PATCH = 24, 7
COLOURS = torch.tensor([[220, 30, 30], [30, 30, 220], [30, 200, 30]], dtype=torch.float32)
NAMES = ["red", "blue", "green"]


def patch_images(n: int, seed: int):
    """Grey noise with one coloured PATCH x PATCH square at a random place; the colour is the
    class. Returns uint8 images, labels and the patches' top-left corners."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, SIDE, SIDE, generator=g) * 255).expand(n, 3, SIDE, SIDE).clone()
    y = torch.randint(0, len(NAMES), (n,), generator=g)
    corner = torch.randint(0, SIDE - PATCH + 1, (n, 2), generator=g)
    for i in range(n):
        r, c = corner[i].tolist()
        x[i, :, r : r + PATCH, c : c + PATCH] = COLOURS[y[i]].view(3, 1, 1)
    return x.to(torch.uint8), y, corner


def peak_inside(maps: torch.Tensor, corner: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).argmax(1)
    row, col = peak // maps.shape[-1], peak % maps.shape[-1]
    r0, c0 = corner[:, 0], corner[:, 1]
    return (row >= r0) & (row < r0 + PATCH) & (col >= c0) & (col < c0 + PATCH)


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cam")
    x, y, _ = patch_images(600, seed=0)
    vx, vy, _ = patch_images(60, seed=1)
    bundle = DataBundle(
        "patches", NAMES, ImageTensors(x, y), ImageTensors(vx, vy), "val", SIDE, (0.5,) * 3,
        (0.25,) * 3,
    )  # fmt: skip
    cfg = TrainConfig(model="resnet20", data="patches", out=str(root / "run"), epochs=3,
                      batch_size=32, lr=0.05, device="cpu", augment="none")  # fmt: skip
    result = train(cfg, bundle, progress=False)
    assert result.best_val_acc > 90
    return root, result.best_checkpoint


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_the_map_peaks_on_the_patch_that_decides_the_class(patch_run, method):
    _, ckpt = patch_run
    model, meta = load_checkpoint(ckpt)
    x, y, corner = patch_images(100, seed=2)
    maps = CamExplainer(model, method=method)(Preprocess.from_meta(meta)(x), y).maps
    hits = peak_inside(maps, corner).float().mean()
    assert hits >= 0.75, f"{method}: the peak is on the patch for only {hits:.0%} of images"
    # the same architecture untrained: its peaks are no better than chance-like
    torch.manual_seed(0)
    fresh = create_model("resnet20", num_classes=3)
    chance = peak_inside(CamExplainer(fresh, method=method)(x.float() / 255, y).maps, corner)
    assert hits > chance.float().mean() + 0.4


FAMILIES = [  # (model, input side): one of each family, small enough to run in a second
    ("resnet20", 32), ("resnet18", 64), ("seresnet50", 64), ("resnetv2_50", 64),
    ("densenet121", 64), ("mobilenet_v2", 64), ("mobilenet_v3_small", 64),
    ("efficientnet_b0", 64), ("convnext_tiny", 64), ("shufflenet_v2_x0_5", 64),
    ("googlenet", 64), ("inception_v3", 160), ("inception_v4", 160),
    ("inception_resnet_v2", 160), ("resnet18d", 64), ("regnet_y_400mf", 64),
    ("efficientnet_v2_s", 64), ("mnasnet0_5", 64),
    ("inception_resnet_v2", 160), ("alexnet", 96), ("vgg11", 64), ("squeezenet1_1", 64),
    ("mobilenetv1_100", 64), ("shufflenet_v1_x0_5_g3", 64), ("lenet5", 32),
]  # fmt: skip


@pytest.mark.parametrize("name,side", FAMILIES)
def test_every_family_gives_a_map_of_the_input_size(name, side):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4)
    x = torch.randn(2, 3, side, side)
    explainer = CamExplainer(model, method="gradcam++")
    result = explainer(x)
    assert result.maps.shape == (2, side, side)
    assert torch.isfinite(result.maps).all() and result.maps.min() >= 0 and result.maps.max() <= 1
    layer = result.layer
    assert not any(layer == h or layer.startswith(h + ".") for h in head_names(model))
    # the layer's output is a map with more than one position, and no module that runs
    # after it (outside the head) still has one: it is the last spatial layer
    out = {}
    model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.setdefault("y", o))
    model.eval()(x)
    assert out["y"].dim() == 4 and out["y"].shape[-1] * out["y"].shape[-2] > 1


def test_the_layer_moves_up_when_the_last_stage_is_one_pixel():
    # resnet18's ImageNet stem at 32 px leaves layer4 at 1x1: the map comes from layer3
    model = create_model("resnet18", num_classes=10)
    assert find_target_layer(model, torch.randn(1, 3, 224, 224)) == "layer4"
    assert find_target_layer(model, torch.randn(1, 3, 32, 32)) == "layer3"


def test_layer_override_and_bad_layer():
    from cnnzoo.errors import CnnzooError

    model = create_model("resnet20", num_classes=3)
    assert CamExplainer(model, layer="layer2")(torch.randn(1, 3, 32, 32)).layer == "layer2"
    with pytest.raises(CnnzooError, match="not a module"):
        CamExplainer(model, layer="layer9")


def test_explain_command_draws_each_image(patch_run, tmp_path, capsys):
    root, ckpt = patch_run
    x, y, _ = patch_images(3, seed=3)
    files = []
    for i in range(3):
        f = tmp_path / "in" / f"{i}.png"
        f.parent.mkdir(exist_ok=True)
        Image.fromarray(x[i].permute(1, 2, 0).numpy()).save(f)
        files.append(str(f))
    out = tmp_path / "cams"
    assert main(["explain", str(ckpt.parent), *files, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "gradcam at layer layer3: 3 image(s)" in printed
    pictures = sorted(out.glob("*.png"))
    assert len(pictures) == 3
    lines = printed.splitlines()
    for i, (p, label) in enumerate(zip(pictures, y.tolist(), strict=True)):
        with Image.open(p) as im:
            assert min(im.size) >= 224  # 24 px enlarged to a readable size
        assert f"  {NAMES[label]} " in lines[i]  # the trained model names each patch's colour
    # a class the model does not know: one line, exit 2
    assert main(["explain", str(ckpt.parent), files[0], "--class", "purple"]) == 2
    assert "purple" in capsys.readouterr().err
    assert main(["explain", files[0], "--out", str(out)]) == 2  # no checkpoint at all
    assert "which checkpoint" in capsys.readouterr().err
    assert Path(files[0]).is_file()
