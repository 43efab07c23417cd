"""Batch transforms on uint8 image tensors, run on the batch's own device (CPU or GPU).

Training: per-sample random crop (random-resized via one affine `grid_sample`, or pad-and-crop
via index arithmetic), per-sample horizontal flip folded into the crop, optional
TrivialAugment / RandAugment (`cnnzoo.data.autoaugment`), normalisation, optional random
erasing. Every random number comes from the `generator` argument, drawn in a fixed order, so a
batch is a pure function of (images, cfg, generator state): resumed training is bit-exact.

Evaluation: resize the shorter side to image_size / crop_pct (bilinear, antialiased), centre
crop image_size, normalise.

Sizes are an int (a square) or (H, W). A rectangle is reached by one rule everywhere: resize,
aspect kept, until the image covers the box (H, W) / crop_pct, then centre-crop H x W
(`cnnzoo.cfg.resized_shape`); random-resized crops draw their box's aspect around the
output's (W / H times a ratio from `ratio`), pad-crop pads and crops H x W.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnzoo.cfg import (  # noqa: F401 (resize_side kept here too)
    IMAGENET_MEAN,
    IMAGENET_STD,
    Size,
    resize_box,
    resize_side,
    resized_shape,
    size_hw,
)
from cnnzoo.data.autoaugment import POLICIES, auto_augment
from cnnzoo.errors import CnnzooError

CROPS = ("random-resized", "pad-crop", "none")

# Random erasing (one box per chosen sample): area fraction and aspect-ratio range of the box
_ERASE_AREA = (0.02, 1 / 3)
_ERASE_RATIO = (0.3, 1 / 0.3)


@dataclass
class AugmentCfg:
    """What `train_transform` does. `crop`: "random-resized" (area fraction `scale`, aspect
    `ratio`, relative to the output's W / H), "pad-crop" (zero-pad by `pad`, crop back at a
    random offset) or "none" (resize only). `image_size`: an int (square) or (H, W). `auto_augment`: None, "trivial" (TrivialAugment-wide) or "rand" (RandAugment,
    `rand_ops` ops at `rand_magnitude` of 30). `random_erasing`: probability per sample."""

    image_size: Size
    crop: str = "random-resized"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    pad: int = 4
    hflip: bool = True
    auto_augment: str | None = None
    random_erasing: float = 0.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    rand_ops: int = 2
    rand_magnitude: int = 9

    def __post_init__(self) -> None:
        if min(size_hw(self.image_size)) < 1:
            raise CnnzooError(f"image size must be positive, got {self.image_size}")
        if self.crop not in CROPS:
            raise CnnzooError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROPS)}")
        if self.auto_augment not in (None, *POLICIES):
            raise CnnzooError(
                f"unknown auto-augment {self.auto_augment!r}; choose one of {', '.join(POLICIES)}"
            )
        if not 0.0 <= self.random_erasing <= 1.0:
            raise CnnzooError(f"random erasing is a probability, got {self.random_erasing}")
        if not (0 < self.scale[0] <= self.scale[1] <= 1):
            raise CnnzooError(f"crop scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise CnnzooError(f"crop ratio must satisfy 0 < min <= max, got {self.ratio}")
        if self.pad < 0:
            raise CnnzooError(f"pad must be >= 0, got {self.pad}")
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise CnnzooError("mean and std need one positive std per mean")
        if not 0 <= self.rand_magnitude <= 30 or self.rand_ops < 1:
            raise CnnzooError("RandAugment needs rand_ops >= 1 and 0 <= rand_magnitude <= 30")


def default_augment(
    image_size: Size,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    *,
    hflip: bool = True,
) -> AugmentCfg:
    """The usual recipe for a size: up to 64 px (CIFAR-like), pad by image_size // 8 and
    crop back, plus flips; larger, random-resized crops (scale 0.08..1) plus flips.
    Pass hflip=False where a mirror changes the class (digits, text)."""
    side = min(size_hw(image_size))
    if side <= 64:
        return AugmentCfg(
            image_size, crop="pad-crop", pad=side // 8, hflip=hflip, mean=mean, std=std
        )
    return AugmentCfg(image_size, crop="random-resized", hflip=hflip, mean=mean, std=std)


def _check_batch(batch: torch.Tensor) -> None:
    if batch.dtype != torch.uint8 or batch.dim() != 4:
        raise ValueError(
            f"expected uint8 [N, C, H, W] images, got {batch.dtype} {tuple(batch.shape)}"
        )


def _device_generator(
    generator: torch.Generator | None, device: torch.device
) -> torch.Generator | None:
    """A generator that can draw on `device`: the given one, or one seeded from it (one draw)
    when it lives elsewhere (a CPU generator driving a GPU batch)."""
    if generator is None or generator.device == device:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """0..255 float -> (x / 255 - mean) / std, in place."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    if m.shape[1] != x.shape[1]:
        raise ValueError(f"{len(mean)} mean values for {x.shape[1]}-channel images")
    return x.mul_(1 / (255 * s)).sub_(m / s)


def resize_cover(x: torch.Tensor, box: Size, interpolation: str = "bilinear") -> torch.Tensor:
    """Float 0..255 images resized, aspect kept, to cover `box` (an int: the shorter side
    becomes it; (H, W): `resized_shape`), bilinear or bicubic, antialiased; bicubic overshoot
    clamped to 0..255, as an 8-bit image would be."""
    if interpolation not in ("bilinear", "bicubic"):
        raise CnnzooError(f"interpolation must be bilinear or bicubic, got {interpolation!r}")
    h, w = x.shape[-2:]
    size = resized_shape(h, w, size_hw(box))
    if size == (h, w):
        return x
    x = F.interpolate(x, size=size, mode=interpolation, antialias=True, align_corners=False)
    return x.clamp_(0, 255) if interpolation == "bicubic" else x


def resize_shorter(x: torch.Tensor, side: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Float 0..255 images with their shorter side resized to `side` (`resize_cover` of a
    square box)."""
    return resize_cover(x, side, interpolation)


def center_crop(x: torch.Tensor, size: Size) -> torch.Tensor:
    """The centre H x W of each image (top-left offset (extra // 2)); an int is a square."""
    ch, cw = size_hw(size)
    h, w = x.shape[-2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def resize_uint8(images: torch.Tensor, size: Size, chunk: int = 1024) -> torch.Tensor:
    """uint8 images resized to H x W (an int: a square): resized to cover it, aspect kept,
    then centre-cropped; in chunks so a whole dataset never exists as float."""
    _check_batch(images)
    n, c = images.shape[:2]
    out = torch.empty((n, c, *size_hw(size)), dtype=torch.uint8, device=images.device)
    for s in range(0, images.shape[0], chunk):
        x = center_crop(resize_cover(images[s : s + chunk].float(), size), size)
        out[s : s + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _crop_boxes(
    n: int, h: int, w: int, scale, ratio, gen, device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random-resized-crop boxes (x0, y0, bw, bh) in pixels, one per sample, of aspect
    (width / height) in `ratio`. Ten candidate boxes per sample are drawn at once; the first
    that fits is used, else the centre crop of the whole image clamped to the ratio range."""
    tries = 10
    u = torch.rand(n, tries, 4, generator=gen, device=device)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u[..., 1])
    bw, bh = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (bw <= w) & (bh <= h)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first fitting try
    pick = lambda t: t.gather(1, first).squeeze(1)  # noqa: E731
    bw, bh, ux, uy = pick(bw), pick(bh), pick(u[..., 2]), pick(u[..., 3])
    # fallback: whole image, ratio clamped into range
    in_ratio = w / h
    fw, fh = (float(w), float(h))
    if in_ratio < ratio[0]:
        fh = w / ratio[0]
    elif in_ratio > ratio[1]:
        fw = h * ratio[1]
    ok = fits.any(dim=1)
    bw = torch.where(ok, bw, torch.full_like(bw, fw))
    bh = torch.where(ok, bh, torch.full_like(bh, fh))
    ux = torch.where(ok, ux, torch.full_like(ux, 0.5))
    uy = torch.where(ok, uy, torch.full_like(uy, 0.5))
    return (w - bw) * ux, (h - bh) * uy, bw, bh


def _pixel_centres(k: int, device: torch.device) -> torch.Tensor:
    """The centres of k pixels in [-1, 1] (align_corners=False)."""
    return (torch.arange(k, device=device, dtype=torch.float32) * 2 + 1) / k - 1


def _sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _random_resized_crop(
    batch: torch.Tensor, cfg: AugmentCfg, flip: torch.Tensor | None, gen
) -> torch.Tensor:
    n, c, h, w = batch.shape
    oh, ow = size_hw(cfg.image_size)
    # the box's aspect is drawn around the output's, so a box of ratio 1 is not distorted
    aspect = ow / oh
    ratio = (cfg.ratio[0] * aspect, cfg.ratio[1] * aspect)
    x0, y0, bw, bh = _crop_boxes(n, h, w, cfg.scale, ratio, gen, batch.device)
    # boxes as an affine map from output [-1, 1] to input [-1, 1] (pixel edges, align_corners
    # False); a flip is the same map with the x axis negated
    sx, sy = bw / w, bh / h
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    cx, cy = (x0 + bw / 2) / w * 2 - 1, (y0 + bh / 2) / h * 2 - 1
    # the map is axis-aligned, so the sampling grid is separable: x depends on the column
    # only, y on the row only (cheaper than F.affine_grid's full matrix product)
    gx = sx[:, None] * _pixel_centres(ow, batch.device) + cx[:, None]
    gy = sy[:, None] * _pixel_centres(oh, batch.device) + cy[:, None]
    grid = torch.stack((gx[:, None, :].expand(n, oh, ow), gy[:, :, None].expand(n, oh, ow)), dim=-1)
    # bilinear sampling aliases when a box shrinks more than 2x, so each sample reads from
    # the level of an antialiased half-size pyramid where its box is at most 2x the output
    # (the normalised grid is the same on every level)
    shrink = torch.maximum(bw / ow, bh / oh)
    level = torch.log2(shrink / 2).ceil().clamp(min=0).long()
    top = int(level.max()) if n else 0
    if top == 0:  # every box at the stored resolution (images at most 2x the crop): one call
        return _sample(batch.float(), grid)
    # x: the samples still needing level k or coarser (uint8 until first shrunk: cheaper to
    # select from); ids: their places in the batch
    x, ids = batch, torch.arange(n, device=batch.device)
    out = torch.empty(n, c, oh, ow, device=batch.device)
    for k in range(top + 1):
        if k:
            deeper = level[ids] >= k
            if not bool(deeper.all()):
                x, ids = x[deeper], ids[deeper]
            side = (max(1, x.shape[-2] // 2), max(1, x.shape[-1] // 2))
            x = F.interpolate(x.float(), size=side, mode="bilinear", antialias=True)
        at = level[ids] == k
        if bool(at.all()):
            out[ids] = _sample(x.float(), grid[ids])
        elif at.any():
            out[ids[at]] = _sample(x[at].float(), grid[ids[at]])
    return out


def _pad_crop(batch: torch.Tensor, cfg: AugmentCfg, flip: torch.Tensor | None, gen) -> torch.Tensor:
    n, c, h, w = batch.shape
    (oh, ow), p = size_hw(cfg.image_size), cfg.pad
    if (h, w) != (oh, ow):
        batch = resize_uint8(batch, (oh, ow))
    padded = F.pad(batch, (p, p, p, p)) if p else batch
    width = ow + 2 * p
    off = torch.randint(0, 2 * p + 1, (n, 2), generator=gen, device=batch.device)
    ar_h, ar_w = torch.arange(oh, device=batch.device), torch.arange(ow, device=batch.device)
    rows = off[:, :1] + ar_h
    cols = off[:, 1:] + ar_w
    if flip is not None:  # a mirrored crop reads its columns right to left
        cols = torch.where(flip[:, None], off[:, 1:] + (ow - 1 - ar_w), cols)
    # one gather over the flattened padded image: index of (row, col) is row * width + col
    lin = (rows[:, :, None] * width + cols[:, None, :]).view(n, 1, oh * ow).expand(n, c, -1)
    out = padded.reshape(n, c, (oh + 2 * p) * width).gather(2, lin)
    return out.view(n, c, oh, ow).float()


def _random_erase(x: torch.Tensor, p: float, gen) -> torch.Tensor:
    """Replace one random box per chosen sample with N(0, 1) noise (normalised space)."""
    n, c, h, w = x.shape
    dev = x.device
    u = torch.rand(n, 5, generator=gen, device=dev)
    chosen = torch.nonzero(u[:, 0] < p).flatten()
    if chosen.numel() == 0:
        return x
    u = u[chosen]
    area = h * w * (_ERASE_AREA[0] + (_ERASE_AREA[1] - _ERASE_AREA[0]) * u[:, 1])
    lo, hi = math.log(_ERASE_RATIO[0]), math.log(_ERASE_RATIO[1])
    aspect = torch.exp(lo + (hi - lo) * u[:, 2])
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = ((h - eh + 1) * u[:, 3]).floor().clamp(max=h - 1)
    left = ((w - ew + 1) * u[:, 4]).floor().clamp(max=w - 1)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    t, le = top.view(-1, 1, 1), left.view(-1, 1, 1)
    box = (ys >= t) & (ys < t + eh.view(-1, 1, 1)) & (xs >= le) & (xs < le + ew.view(-1, 1, 1))
    noise = torch.randn(chosen.numel(), c, h, w, generator=gen, device=dev, dtype=x.dtype)
    x[chosen] = torch.where(box[:, None], noise, x[chosen])
    return x


def train_transform(
    batch: torch.Tensor, cfg: AugmentCfg, generator: torch.Generator | None = None
) -> torch.Tensor:
    """uint8 [N, C, H, W] -> augmented, normalised float32 [N, C, S, S] on the same device.

    Random numbers are drawn from `generator` (the global generator when None) in a fixed
    order; a CPU generator also drives a GPU batch (through one seed drawn from it)."""
    _check_batch(batch)
    gen = _device_generator(generator, batch.device)
    n, dev = batch.shape[0], batch.device
    flip = None
    if cfg.hflip:
        flip = torch.rand(n, generator=gen, device=dev) < 0.5
    if cfg.crop == "random-resized":
        x = _random_resized_crop(batch, cfg, flip, gen)
    elif cfg.crop == "pad-crop":
        x = _pad_crop(batch, cfg, flip, gen)
    else:
        x = batch.float()
        if tuple(x.shape[-2:]) != size_hw(cfg.image_size):
            x = center_crop(resize_cover(x, cfg.image_size), cfg.image_size).contiguous()
        if flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if cfg.auto_augment:
        x = auto_augment(x, cfg.auto_augment, gen, ops=cfg.rand_ops, magnitude=cfg.rand_magnitude)
    x = _normalise(x.contiguous(), cfg.mean, cfg.std)
    if cfg.random_erasing > 0:
        x = _random_erase(x, cfg.random_erasing, gen)
    return x


def eval_transform(
    batch: torch.Tensor,
    image_size: Size,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    crop_pct: float = 1.0,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """uint8 [N, C, H, W] -> normalised float32 [N, C, S, S] (or [N, C, H', W'] for a
    rectangular image_size (H', W')): resized (`interpolation`, antialiased, aspect kept) to
    cover floor(image_size / crop_pct), which for a square is the shorter side to it; centre
    crop of image_size (top-left offset (extra // 2)), then (x / 255 - mean) / std."""
    _check_batch(batch)
    if not 0 < crop_pct <= 1:
        raise CnnzooError(f"crop_pct must be in (0, 1], got {crop_pct}")
    box = resize_box(image_size, crop_pct)
    x = center_crop(resize_cover(batch.float(), box, interpolation), image_size)
    return _normalise(x.contiguous(), mean, std)
