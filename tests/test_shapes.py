"""Rectangular inputs in data loading and the batch transforms: the one resize rule (cover the
box with the aspect kept, then centre-crop H x W), which for a square is the old shorter-side
rule exactly; every training crop and the eval transform give H x W; folders are stored with
the input's aspect."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_images
from PIL import Image

from cnnzoo.cfg import is_size, resize_box, resize_side, resized_shape, scaled_size, size_value
from cnnzoo.data.folders import load_folder
from cnnzoo.data.images import decode_square
from cnnzoo.data.transforms import (
    AugmentCfg,
    center_crop,
    default_augment,
    eval_transform,
    resize_uint8,
    train_transform,
)


def test_resize_rule_square_is_the_shorter_side_rule():
    for h, w in [(10, 10), (10, 37), (37, 10), (3, 1000), (999, 4)]:
        for s in (8, 24, 57):
            want = (s, round(w * s / h)) if h <= w else (round(h * s / w), s)
            assert resized_shape(h, w, (s, s)) == want
    assert resize_side(224, 0.875) == 256 == min(resize_box(224, 0.875))


def test_resize_rule_rectangle_covers_the_box_with_the_aspect_kept():
    rng = np.random.default_rng(0)
    for _ in range(500):
        h, w, bh, bw = (int(v) for v in rng.integers(1, 400, 4))
        nh, nw = resized_shape(h, w, (bh, bw))
        assert nh >= bh and nw >= bw  # covers the box
        assert nh == bh or nw == bw  # one side fits it exactly
        # the aspect is kept up to the rounding of one side
        assert abs(nh / nw - h / w) <= (h / w) / min(nh, nw) + 1e-9
    assert resize_box((24, 40), 0.8) == (30, 50)
    assert scaled_size((24, 40), 48) == [48, 80] and scaled_size((40, 24), 12) == [20, 12]
    assert size_value((5, 5)) == 5 and size_value([24, 40]) == [24, 40]
    assert is_size(24) and is_size([24, 40]) and not is_size([24]) and not is_size(True)
    assert not is_size([24, 0]) and not is_size(5000) and not is_size("24")


def test_eval_transform_rectangle_is_cover_then_centre_crop():
    x, _ = make_images(2, size=30)  # 30 x 30 squares
    wide = F.pad(x, (0, 20))  # 30 x 50
    for src in (x, wide):
        out = eval_transform(src, (24, 40), (0.0,) * 3, (1 / 255,) * 3)
        assert out.shape == (src.shape[0], 3, 24, 40)
        nh, nw = resized_shape(*src.shape[-2:], (24, 40))
        ref = F.interpolate(src.float(), size=(nh, nw), mode="bilinear", antialias=True)
        torch.testing.assert_close(out, center_crop(ref, (24, 40)))
    # a square size is exactly what it was: shorter side to floor(S / crop_pct), centre crop
    out = eval_transform(wide, 16, (0.0,) * 3, (1 / 255,) * 3, crop_pct=0.8)
    ref = F.interpolate(wide.float(), size=(20, 33), mode="bilinear", antialias=True)
    torch.testing.assert_close(out, center_crop(ref, 16))


@pytest.mark.parametrize("crop", ["random-resized", "pad-crop", "none"])
def test_training_crops_give_h_by_w_and_are_seeded(crop):
    x, _ = make_images(3, size=32)
    cfg = AugmentCfg((24, 40), crop=crop, pad=3, auto_augment="trivial", random_erasing=0.5)
    a = train_transform(x, cfg, torch.Generator().manual_seed(1))
    b = train_transform(x, cfg, torch.Generator().manual_seed(1))
    assert a.shape == (9, 3, 24, 40) and torch.equal(a, b) and torch.isfinite(a).all()


def test_random_resized_box_aspect_follows_the_output():
    """The box's aspect is drawn around the output's: with scale 1 and ratio 1 an image of the
    output's shape comes back as it was (no stretching), flipped or not."""
    x, _ = make_images(2, size=40)
    x = x[:, :, 8:32, :]  # 24 x 40
    cfg = AugmentCfg((24, 40), crop="random-resized", scale=(1, 1), ratio=(1, 1), hflip=False,
                     mean=(0.0,) * 3, std=(1 / 255,) * 3)  # fmt: skip
    out = train_transform(x, cfg, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x.float(), atol=1e-3, rtol=0)
    # larger stored images read from the pyramid and still give the full H x W
    big = resize_uint8(x, (96, 160))
    assert train_transform(big, cfg, torch.Generator().manual_seed(0)).shape == (6, 3, 24, 40)


def test_default_augment_uses_the_shorter_side():
    assert default_augment((24, 40)).crop == "pad-crop" and default_augment((24, 40)).pad == 3
    assert default_augment((72, 200)).crop == "random-resized"


def test_decode_square_rectangle_and_square(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    rows, info = decode_square(str(path), (24, 40))
    assert rows.shape == (3, 24, 40) and info == (90, 50, "RGB")
    # the centred box of aspect 40 / 24 with the full height: 83.33 x 50
    bw = 50 * 40 / 24
    box = ((90 - bw) / 2, 0, (90 + bw) / 2, 50)
    want = np.asarray(Image.fromarray(arr).resize((40, 24), Image.Resampling.BILINEAR, box=box))
    assert np.array_equal(rows, want.transpose(2, 0, 1))
    square, _ = decode_square(str(path), 20)  # the centre square, as before rectangles
    box = (20, 0, 70, 50)
    want = np.asarray(Image.fromarray(arr).resize((20, 20), Image.Resampling.BILINEAR, box=box))
    assert np.array_equal(square, want.transpose(2, 0, 1))


def test_folder_stored_with_the_input_aspect(tmp_path):
    x, y = make_images(4, size=48)
    for i, (img, lab) in enumerate(zip(x, y, strict=True)):
        (tmp_path / str(int(lab))).mkdir(exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(tmp_path / str(int(lab)) / f"{i}.png")
    b = load_folder(tmp_path, aspect=(24, 40), progress=False, val_split=0.25)
    assert b.image_size == [48, 80] and b.train.images.shape[-2:] == (48, 80)
    b = load_folder(tmp_path, image_size=(20, 30), progress=False, val_split=0.25)
    assert b.image_size == [20, 30] and b.val.images.shape[-2:] == (20, 30)
    b = load_folder(tmp_path, image_size=16, aspect=(24, 40), progress=False, val_split=0.25)
    assert b.image_size == [16, 27]


def test_config_sizes_and_normalisation_are_checked():
    from cnnzoo.errors import CnnzooError
    from cnnzoo.train.config import TrainConfig, progressive_size, validate_config

    base = dict(model="resnet20", data="digits")
    assert TrainConfig(**base, image_size=[32]).image_size == 32
    assert TrainConfig(**base, image_size=[32, 32]).image_size == 32
    assert TrainConfig(**base, image_size=(24, 40)).image_size == [24, 40]
    validate_config(TrainConfig(**base, image_size=[24, 40], mean=[0.5], std=[0.2]))
    bad = [
        (dict(image_size=[24, 40, 8]), "--image-size takes one number"),
        (dict(image_size=[4, 40]), "each in [8, 4096]"),
        (dict(mean=[0.5, 0.5]), "--mean takes three numbers"),
        (dict(std=[0.2, 0.0, 0.2]), "--std values must be above 0"),
        (dict(std=[0.2, -1.0, 0.2]), "--std values must be above 0"),
        (dict(mean=[float("nan")] * 3), "--mean values must be finite"),
        (dict(mean=[0.5] * 3, stats=True), "not both"),
    ]
    for extra, words in bad:
        with pytest.raises(CnnzooError, match=words.replace("[", r"\[")):
            validate_config(TrainConfig(**base, **extra))
    # progressive: the shorter side grows from the start, the other in proportion
    assert progressive_size(0, 5, 16, [32, 64]) == [16, 32]
    assert progressive_size(4, 5, 16, [32, 64]) == [32, 64]
    assert progressive_size(0, 5, 16, 32) == 16


def test_sidecar_input_size_an_int_or_h_w():
    """Checkpoints from before rectangles (an int) still pass; [H, W] passes; else refused."""
    from cnnzoo.artifacts.sidecar import facts_problem

    meta = {"model": "resnet20", "num_classes": 2, "classes": ["a", "b"], "in_chans": 3,
            "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
    for ok in (32, [24, 40], [4096, 1]):
        assert facts_problem({**meta, "input_size": ok}) is None
    for bad in ([24], [24, 40, 3], [0, 40], "24x40", [24.0, 40], True, [True, 40], 5000):
        assert "input_size" in facts_problem({**meta, "input_size": bad})
