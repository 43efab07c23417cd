"""Batch transforms: crops, flips, auto-augment ops, erasing, eval resize / crop, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from cnnzoo.data import AugmentCfg, default_augment, eval_transform, train_transform
from cnnzoo.data.autoaugment import OPS, apply_ops, autocontrast, equalize, posterize, solarize
from cnnzoo.data.transforms import _crop_boxes, resize_uint8
from cnnzoo.errors import CnnzooError

# normalisation that leaves 0..255 values as they are, so outputs compare with pixels
RAW = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255, 1 / 255, 1 / 255)}


def batch(n=16, size=16, seed=0, c=3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), generator=g, dtype=torch.uint8)


def gen(seed=0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_default_augment_per_size():
    small = default_augment(32, (0.5,) * 3, (0.25,) * 3)
    assert small.crop == "pad-crop" and small.pad == 4 and small.hflip
    assert small.mean == (0.5,) * 3 and small.std == (0.25,) * 3
    assert default_augment(64).pad == 8 and default_augment(64).crop == "pad-crop"
    big = default_augment(224, hflip=False)
    assert big.crop == "random-resized" and not big.hflip and big.scale == (0.08, 1.0)


@pytest.mark.parametrize(
    "kw",
    [
        {"crop": "zoom"},
        {"auto_augment": "auto"},
        {"random_erasing": 1.5},
        {"scale": (0.5, 0.2)},
        {"pad": -1},
        {"image_size": 0},
    ],
)
def test_bad_cfg_is_a_user_error(kw):
    args = {"image_size": 32, **kw}
    with pytest.raises(CnnzooError):
        AugmentCfg(**args)


CFGS = [
    AugmentCfg(12, crop="pad-crop", pad=2),
    AugmentCfg(12, crop="random-resized"),
    AugmentCfg(12, crop="none", auto_augment="trivial"),
    AugmentCfg(12, crop="random-resized", auto_augment="rand", random_erasing=0.5),
]


@pytest.mark.parametrize("cfg", CFGS, ids=lambda c: f"{c.crop}-{c.auto_augment}")
def test_same_seed_same_batch(cfg):
    x = batch(32, 16)
    a = train_transform(x, cfg, gen(5))
    b = train_transform(x, cfg, gen(5))
    c = train_transform(x, cfg, gen(6))
    assert a.dtype == torch.float32 and a.shape == (32, 3, 12, 12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the generator drives everything: the global RNG is left alone
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    train_transform(x, cfg, gen(5))
    assert torch.equal(torch.rand(3), expected)


def test_generator_state_continues_across_batches():
    """Resuming from a saved generator state reproduces the next batch exactly."""
    x, cfg = batch(8, 16), AugmentCfg(16, crop="random-resized", auto_augment="trivial")
    g = gen(1)
    train_transform(x, cfg, g)
    state = g.get_state()
    nxt = train_transform(x, cfg, g)
    g2 = torch.Generator()
    g2.set_state(state)
    assert torch.equal(train_transform(x, cfg, g2), nxt)


def test_flip_really_mirrors():
    x = batch(64, 8)
    y = train_transform(x, AugmentCfg(8, crop="none", hflip=True, **RAW), gen(0))
    flipped = [torch.equal(y[i], x[i].flip(-1).float()) for i in range(64)]
    kept = [torch.equal(y[i], x[i].float()) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 10 < sum(flipped) < 54  # about half of them
    y = train_transform(x, AugmentCfg(8, crop="none", hflip=False, **RAW), gen(0))
    assert torch.equal(y, x.float())


def test_pad_crop_keeps_content_shifted():
    x, p = batch(32, 10), 3
    cfg = AugmentCfg(10, crop="pad-crop", pad=p, hflip=True, **RAW)
    y = train_transform(x, cfg, gen(2))
    padded = F.pad(x, (p, p, p, p)).float()
    offsets = set()
    for i in range(32):
        hits = []
        for dy in range(2 * p + 1):
            for dx in range(2 * p + 1):
                window = padded[i, :, dy : dy + 10, dx : dx + 10]
                if torch.equal(y[i], window) or torch.equal(y[i], window.flip(-1)):
                    hits.append((dy, dx))
        assert hits, f"sample {i} is not a shifted window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 5  # the offsets really vary per sample


def test_random_resized_crop_identity_and_boxes():
    x = batch(4, 16)
    whole = AugmentCfg(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False, **RAW)
    y = train_transform(x, whole, gen(0))
    assert torch.allclose(y, x.float(), atol=1e-3)  # the whole image, sampled at its pixels
    mirrored = AugmentCfg(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), **RAW)
    y = train_transform(x, mirrored, gen(0))
    for i in range(4):
        assert torch.allclose(y[i], x[i].float(), atol=1e-3) or torch.allclose(
            y[i], x[i].flip(-1).float(), atol=1e-3
        )
    # boxes lie inside the image, with area and aspect in range
    x0, y0, bw, bh = _crop_boxes(2000, 40, 60, (0.2, 0.6), (0.5, 2.0), gen(3), "cpu")
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + bw <= 60 + 1e-9).all() and (y0 + bh <= 40 + 1e-9).all()
    area = bw * bh / (40 * 60)
    assert area.min() >= 0.2 - 1e-9 and area.max() <= 0.6 + 1e-9
    aspect = bw / bh
    assert aspect.min() >= 0.5 - 1e-9 and aspect.max() <= 2.0 + 1e-9
    # a 2x upscaled box: pixel values stay within the source's range, no dark borders
    y = train_transform(torch.full((2, 3, 32, 32), 200, dtype=torch.uint8), AugmentCfg(64, **RAW))
    assert torch.allclose(y, torch.full_like(y, 200.0), atol=1e-3)


def test_random_resized_crop_neither_aliases_nor_blurs():
    # 1-pixel stripes (0, 255, 0, ...): shrinking the whole 256 px image to 16 px must average
    # them to grey (plain bilinear sampling would read only whole stripes: 0 or 255)
    stripes = (torch.arange(256) % 2 * 255).to(torch.uint8).expand(1, 3, 256, 256).contiguous()
    whole = AugmentCfg(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=False, **RAW)
    y = train_transform(stripes, whole, gen(0))
    assert (y - 127.5).abs().max() < 5
    # a box the output's own size reads the stored pixels (at a sub-pixel offset), not a
    # shrunk copy of the image: the stripes keep most of their contrast
    small = AugmentCfg(16, scale=(1 / 256, 1 / 256), ratio=(1.0, 1.0), hflip=False, **RAW)
    y = train_transform(stripes, small, gen(0))
    assert y[0, 0, 0].max() - y[0, 0, 0].min() > 100
    # a batch mixes levels: the first sample (its box is the first drawn) comes out as when
    # cropped alone, whatever levels the others use
    mixed = AugmentCfg(16, scale=(1 / 256, 1.0), hflip=False, **RAW)
    x = batch(8, 200)
    for seed in range(6):
        y = train_transform(x, mixed, gen(seed))
        assert torch.allclose(y[0], train_transform(x[:1], mixed, gen(seed))[0], atol=1e-3)


def test_eval_transform_matches_hand_computation():
    # no resize needed: only the centre crop (offset (10 - 6) // 2 = 2 columns)
    x = torch.arange(6 * 10, dtype=torch.uint8).view(1, 1, 6, 10).repeat(1, 3, 1, 1)
    y = eval_transform(x, 6, **RAW)
    assert torch.equal(y, x[..., 2:8].float())
    # crop_pct 0.875 at 28: resize to floor(28 / 0.875) = 32 (already), crop 28 from offset 2
    x = batch(2, 32)
    y = eval_transform(x, 28, **RAW, crop_pct=0.875)
    assert torch.equal(y, x[..., 2:30, 2:30].float())
    # a real 2x shrink of a row [a a b b]: the antialiased bilinear (triangle) filter weighs
    # the two pixels under an output pixel 3/4 each, the next one 1/4, and renormalises
    a, b = 40.0, 200.0
    row = torch.tensor([a, a, b, b])
    x = row.view(1, 1, 1, 4).repeat(1, 3, 4, 1).to(torch.uint8)
    y = eval_transform(x, 2, **RAW)
    first = (0.75 * a + 0.75 * a + 0.25 * b) / 1.75
    second = (0.25 * a + 0.75 * b + 0.75 * b) / 1.75
    assert torch.allclose(y[0, 0, 0], torch.tensor([first, second]), atol=1e-3)
    # normalisation: (x / 255 - mean) / std
    x = torch.full((1, 3, 4, 4), 51, dtype=torch.uint8)
    y = eval_transform(x, 4, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.2, 0.0, -0.2]), atol=1e-6)


def test_eval_transform_resizes_shorter_side_then_crops():
    x = batch(2, 20)[..., :12, :]  # 12 high, 20 wide
    y = eval_transform(x, 8, **RAW, crop_pct=1.0)
    ref = F.interpolate(x.float(), size=(8, 13), mode="bilinear", antialias=True)
    assert y.shape == (2, 3, 8, 8) and torch.allclose(y, ref[..., :, 2:10], atol=1e-4)


def test_resize_uint8_keeps_flat_images_flat():
    x = torch.full((3, 3, 12, 12), 90, dtype=torch.uint8)
    y = resize_uint8(x, 5)
    assert y.dtype == torch.uint8 and y.shape == (3, 3, 5, 5) and (y == 90).all()


def _pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(x.permute(1, 2, 0).to(torch.uint8).numpy())


def _back(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float()


def test_pixel_ops_match_pil():
    x = batch(4, 24).float()
    x[1] = x[1] * 0.5 + 40  # a low-contrast image, where equalize / autocontrast matter
    x = x.round()
    for i in range(4):
        img = _pil(x[i])
        assert torch.equal(equalize(x[i : i + 1])[0], _back(ImageOps.equalize(img)))
        assert torch.equal(
            posterize(x[i : i + 1], torch.tensor([3]))[0], _back(ImageOps.posterize(img, 3))
        )
        assert torch.equal(
            solarize(x[i : i + 1], torch.tensor([128.0]))[0], _back(ImageOps.solarize(img, 128))
        )
        ours = autocontrast(x[i : i + 1])[0]
        assert (ours - _back(ImageOps.autocontrast(img))).abs().max() <= 1
    flat = torch.full((1, 3, 5, 5), 77.0)
    assert torch.equal(equalize(flat), flat) and torch.equal(autocontrast(flat), flat)


def test_ops_at_zero_magnitude_change_nothing():
    x = batch(len(OPS), 12).float()
    changes_anyway = {"autocontrast", "equalize", "solarize"}  # no magnitude, or 255 inverted
    op = torch.arange(len(OPS))
    y = apply_ops(x, op, torch.zeros(len(OPS)), torch.ones(len(OPS)), "trivial")
    for i, name in enumerate(OPS):
        if name not in changes_anyway:
            assert torch.equal(y[i], x[i]), name


def test_geometric_ops_move_content_and_fill_grey():
    x = torch.zeros(2, 3, 32, 32)
    x[:, :, 12:20, 12:20] = 255.0
    op = torch.tensor([OPS.index("translate_x"), OPS.index("rotate")])
    y = apply_ops(x, op, torch.tensor([0.5, 1.0]), torch.tensor([1.0, 1.0]), "rand")
    # translated by 0.5 * 0.45 * 32 = 7.2 px: the square keeps its width, moves 7 columns,
    # and the strip uncovered at one edge is filled with grey
    cols = (y[0, 0] == 255).any(dim=0).nonzero().flatten()
    assert abs(int(cols.min()) - 12) == 7 and int(cols.max() - cols.min()) == 7
    assert (y[0, :, :, 0] == 128).all() or (y[0, :, :, -1] == 128).all()
    # rotated by 30 degrees about the centre: the white area keeps its size roughly
    assert abs(int((y[1, 0] == 255).sum()) - 64) < 12


def test_auto_augment_output_range_and_mix_of_ops():
    x = batch(64, 16)
    for policy in ("trivial", "rand"):
        cfg = AugmentCfg(16, crop="none", hflip=False, auto_augment=policy, **RAW)
        y = train_transform(x, cfg, gen(0))
        assert y.min() >= 0 and y.max() <= 255 and torch.equal(y, y.round())
        changed = (y != x.float()).flatten(1).any(dim=1)
        assert 20 < int(changed.sum()) <= 64  # most samples changed, but not in one way


def test_random_erasing_boxes():
    x = batch(32, 20)
    base = AugmentCfg(20, crop="none", hflip=False)
    erased = AugmentCfg(20, crop="none", hflip=False, random_erasing=1.0)
    a, b = train_transform(x, base, gen(0)), train_transform(x, erased, gen(0))
    for i in range(32):
        diff = (a[i] != b[i]).any(dim=0)
        rows, cols = diff.any(dim=1).nonzero(), diff.any(dim=0).nonzero()
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(diff.sum()) >= 0.9 * h * w  # one rectangle (noise may hit a value twice)
        assert 0.01 <= h * w / 400 <= 0.4
    half = AugmentCfg(20, crop="none", hflip=False, random_erasing=0.5)
    changed = (train_transform(x, half, gen(1)) != train_transform(x, base, gen(1))).flatten(1)
    assert 4 < int(changed.any(dim=1).sum()) < 28


def test_one_channel_and_bad_input():
    x = batch(4, 8, c=1)
    cfg = AugmentCfg(8, crop="pad-crop", pad=1, auto_augment="trivial", mean=(0.5,), std=(0.5,))
    assert train_transform(x, cfg, gen(0)).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError):
        train_transform(x.float(), cfg, gen(0))
    assert train_transform(batch(0, 8), AugmentCfg(8), gen(0)).shape == (0, 3, 8, 8)
