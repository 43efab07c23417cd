"""TrivialAugment-wide and RandAugment on whole batches: one op per sample per round.

Each sample draws its op (and, for TrivialAugment, its magnitude) from the generator; the
batch is then sorted by op and every op runs once, vectorised, on the samples that drew it.
All five geometric ops share one `grid_sample` call. Pixel values stay on the uint8 scale
(0..255, rounded after every op) as in the papers' PIL pipelines.

Strongest setting of each op (magnitude 30 of 30; the sign of the signed ops is random):

| op                          | trivial (wide)    | rand                |
| --------------------------- | ----------------- | ------------------- |
| shear x / y                 | 0.99              | 0.3                 |
| translate x / y             | 32/224 of side    | 150/331 of side     |
| rotate                      | 135 deg           | 30 deg              |
| brightness, color, contrast, sharpness | factor 1 +- 0.99 | factor 1 +- 0.9 |
| posterize                   | 8 -> 2 bits       | 8 -> 4 bits         |
| solarize                    | threshold 255 -> 0 | threshold 255 -> 0 |
| identity, autocontrast, equalize | no magnitude |                     |

Areas that geometric ops uncover are filled with grey (128).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

POLICIES = ("trivial", "rand")
OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)
_GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
_GEO_SPAN = (OPS.index(_GEOMETRIC[0]), OPS.index(_GEOMETRIC[-1]) + 1)
assert OPS[slice(*_GEO_SPAN)] == _GEOMETRIC
_RANGES = {
    "trivial": {"shear": 0.99, "translate": 32 / 224, "rotate": 135.0, "enhance": 0.99, "bits": 2},
    "rand": {"shear": 0.3, "translate": 150 / 331, "rotate": 30.0, "enhance": 0.9, "bits": 4},
}
FILL = 128.0
_BINS = 30  # magnitudes are 0..30, as in the RandAugment paper


def _col(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return 0.299 * r + 0.587 * g + 0.114 * b
    return x.mean(dim=1, keepdim=True)


def _blend(img: torch.Tensor, base: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """factor 0 gives `base`, 1 gives `img`, beyond 1 pushes away from `base`."""
    return base + _col(factor) * (img - base)


def _sharpen_base(x: torch.Tensor) -> torch.Tensor:
    """The image smoothed by the 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, borders kept."""
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        return x
    k = torch.ones(1, 1, 3, 3, dtype=x.dtype, device=x.device)
    k[0, 0, 1, 1] = 5.0
    inner = F.conv2d(x.reshape(n * c, 1, h, w), k / 13.0).view(n, c, h - 2, w - 2)
    out = x.clone()
    out[..., 1:-1, 1:-1] = inner
    return out


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel of 0..255 integer-valued floats: the
    lookup table spreads the cumulative count over 0..255, leaving out the top value's own
    count; a channel with one value, or too few pixels to spread, is left as it is."""
    n, c, h, w = x.shape
    flat = x.reshape(n * c, h * w).long()
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    levels = torch.arange(256, device=x.device)
    top = ((hist > 0) * levels).amax(dim=1, keepdim=True)
    step = (h * w - hist.gather(1, top)) // 255
    before = hist.cumsum(1) - hist
    lut = ((step // 2 + before) // step.clamp(min=1)).clamp(max=255)
    lut = torch.where(step > 0, lut, levels.expand_as(lut))
    return lut.gather(1, flat).view(n, c, h, w).to(x.dtype)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel so its darkest value becomes 0 and its brightest 255."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    flat = hi <= lo
    scale = torch.where(flat, torch.ones_like(hi), 255.0 / (hi - lo).clamp(min=1e-6))
    return torch.where(flat, x, (x - lo) * scale)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top `bits` bits of every value (per sample)."""
    q = _col(torch.pow(2.0, 8 - bits.to(x.dtype)))
    return torch.floor(x / q) * q


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert values at or above the threshold (per sample)."""
    return torch.where(x >= _col(threshold), 255.0 - x, x)


def _geometric(x: torch.Tensor, op: torch.Tensor, amount: torch.Tensor, rng: dict) -> torch.Tensor:
    """Shear / translate / rotate about the image centre, one affine map per sample."""
    n, c, h, w = x.shape
    a = amount.to(x.dtype)

    def only(name: str) -> torch.Tensor:  # the amount where the sample drew `name`, else 0
        return a * (op == OPS.index(name)).to(a.dtype)

    # pixel-space map from output to input, about the centre: p_in = A p_out + t
    ang = only("rotate") * math.radians(rng["rotate"])
    cos, sin = torch.cos(ang), torch.sin(ang)
    shx, shy = only("shear_x") * rng["shear"], only("shear_y") * rng["shear"]
    tx, ty = only("translate_x") * rng["translate"] * w, only("translate_y") * rng["translate"] * h
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    # rotation (identity when the op is a shear or translation) with the shear added on
    a00, a01, a10, a11 = cos, -sin + shx, sin + shy, cos
    # to normalised coordinates: divide x by w / 2 and y by h / 2
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = a00, a01 * h / w, 2 * tx / w
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = a10 * w / h, a11, 2 * ty / h
    grid = F.affine_grid(theta, [n, c + 1, h, w], align_corners=False)
    with_mask = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    out = F.grid_sample(with_mask, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    img, inside = out[:, :c], out[:, c:]
    return img + (1 - inside) * FILL


def _color_op(
    name: str, x: torch.Tensor, mag: torch.Tensor, sign: torch.Tensor, rng: dict
) -> torch.Tensor:
    factor = 1 + sign * mag * rng["enhance"]
    if name == "brightness":
        return x * _col(factor)
    if name == "color":
        return _blend(x, _grey(x), factor)
    if name == "contrast":
        return _blend(x, _grey(x).mean(dim=(-3, -2, -1), keepdim=True), factor)
    if name == "sharpness":
        return _blend(x, _sharpen_base(x), factor)
    if name == "posterize":
        return posterize(x, 8 - torch.round(mag * (8 - rng["bits"])))
    if name == "solarize":
        return solarize(x, 255.0 * (1 - mag))
    if name == "autocontrast":
        return autocontrast(x)
    if name == "equalize":
        return equalize(x)
    raise ValueError(f"unknown op {name}")


def apply_ops(
    x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor, sign: torch.Tensor, policy: str
) -> torch.Tensor:
    """Apply OPS[op[i]] at magnitude mag[i] (0..1) and sign[i] (+-1) to sample i of the
    0..255 float batch `x`; returns the rounded, clamped result."""
    rng = _RANGES[policy]
    out = x.clone()
    order = torch.argsort(op, stable=True)
    counts = torch.bincount(op, minlength=len(OPS)).tolist()  # the one host sync per round
    starts = [sum(counts[:k]) for k in range(len(OPS) + 1)]
    for k, name in enumerate(OPS):
        if counts[k] and name != "identity" and name not in _GEOMETRIC:
            idx = order[starts[k] : starts[k + 1]]
            out[idx] = _color_op(name, x[idx], mag[idx], sign[idx], rng)
    # the geometric ops are neighbours in OPS, so their samples are one run of `order`
    lo, hi = _GEO_SPAN
    if starts[hi] > starts[lo]:
        idx = order[starts[lo] : starts[hi]]
        out[idx] = _geometric(x[idx], op[idx], mag[idx] * sign[idx], rng)
    return out.round_().clamp_(0, 255)


def auto_augment(
    x: torch.Tensor,
    policy: str,
    generator: torch.Generator | None,
    *,
    ops: int = 2,
    magnitude: int = 9,
) -> torch.Tensor:
    """TrivialAugment ("trivial": one op per sample at a random magnitude 0..30) or
    RandAugment ("rand": `ops` ops in a row, each at `magnitude` of 30) on a float batch
    holding 0..255 values."""
    if policy not in _RANGES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    n, dev = x.shape[0], x.device
    x = x.round().clamp_(0, 255)
    for _ in range(1 if policy == "trivial" else ops):
        op = torch.randint(len(OPS), (n,), generator=generator, device=dev)
        if policy == "trivial":
            level = torch.randint(_BINS + 1, (n,), generator=generator, device=dev)
        else:
            level = torch.full((n,), magnitude, device=dev)
        sign = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0)
        x = apply_ops(x, op, level.to(x.dtype) / _BINS, sign.to(x.dtype), policy)
    return x
