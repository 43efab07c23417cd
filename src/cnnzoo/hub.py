"""Published ImageNet weights by model name and tag: where each reference file is, its SHA-256,
the eval transform it was published with, its top-1 and licence, and a local cache, so that
`create_model(name, pretrained=True)` (or `create_model("resnet50.a1_in1k", pretrained=True)`,
a tag as timm spells it) needs no hunting for files.

- The table holds, per model, torchvision's weight sets (torchvision 0.29.1: file, top-1,
  resize / crop / interpolation), the first being the default, then timm 1.0.31's tags
  (`hub_timm.py`); a model without torchvision weights defaults to its first timm tag.
- Every file is pinned by its SHA-256 where one is published, and always checked here
  (torchvision and timm leave their own check off by default): torchvision's and timm's
  GitHub files carry its first hex digits in their name (`resnet50-11ad3fa6.pth`, the
  torch.hub convention), Hugging Face lists each file's full SHA-256 (`hub_timm.HF_SHA256`;
  no revision is pinned, as timm's configs name none: the SHA-256 pins the content).
  Where none is known (some Hugging Face-only timm tags) the entry says so (`sha256` None,
  "none known" in `cnnzoo models --pretrained`): the file must parse as safetensors, its
  SHA-256 is recorded on first download and checked on every later use.
- Each tag has its own eval transform (`PublishedWeights.model_cfg`): a model built from a tag,
  and a run fine-tuned from it, preprocess as that tag was evaluated.
- Files are cached in `$CNNZOO_HOME/weights` (default `~/.cache/cnnzoo/weights`), downloaded
  atomically and resumably (see `download.download`); a cached file needs no network.
- `$CNNZOO_WEIGHTS_URL`, when set, is a base URL that serves the same file names (a local
  mirror, or the tests' server): every file is fetched from `$CNNZOO_WEIGHTS_URL/<file>`.

This module imports no torch: `cnnzoo models --pretrained` lists the table in a blink.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open

from cnnzoo.cfg import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INCEPTION_MEAN,
    INCEPTION_STD,
    ModelCfg,
    resize_side,
)
from cnnzoo.download import download, file_digest
from cnnzoo.errors import CnnzooError
from cnnzoo.hub_timm import HF_SHA256, TIMM_TAGS, URL_PREFIXES

log = logging.getLogger("cnnzoo")

_TV = "https://download.pytorch.org/models/"
_TIMM_HF = "https://huggingface.co/timm/"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.[a-z]+$")
_NORMS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "inception": (INCEPTION_MEAN, INCEPTION_STD)}
NON_COMMERCIAL = ("cc-by-nc-4.0",)


@dataclass(frozen=True)
class PublishedWeights:
    """One published weight file of a model, and how it was evaluated.

    The transform fields are None for a row that gives none: the model's ModelCfg applies."""

    model: str
    tag: str  # the reference's name for this weight set: IMAGENET1K_V1, a1_in1k, ...
    url: str
    file: str  # name in the cache (and on a $CNNZOO_WEIGHTS_URL mirror)
    sha256: str | None = None  # the published SHA-256, or its first hex digits; None: unknown
    source: str = "torchvision"  # or "timm"
    input_size: int | None = None
    crop_pct: float | None = None  # resize the shorter side to input_size / crop_pct, crop
    interpolation: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    top1: float | None = None  # published ImageNet-1k top-1 (%) with this transform
    licence: str | None = None
    file_mb: float | None = None  # published file size (MB), where the reference gives one

    @property
    def name(self) -> str:
        """`model.tag`, as timm spells a pretrained tag."""
        return f"{self.model}.{self.tag}"

    @property
    def non_commercial(self) -> bool:
        return self.licence in NON_COMMERCIAL

    def model_cfg(self, cfg: ModelCfg) -> ModelCfg:
        """`cfg` (the model's) with this tag's eval transform."""
        own = {
            k: getattr(self, k)
            for k in ("input_size", "crop_pct", "interpolation", "mean", "std")
            if getattr(self, k) is not None
        }
        return dataclasses.replace(cfg, **own)

    @property
    def resize(self) -> int | None:
        """The shorter side before the centre crop, when the row gives its transform."""
        if self.input_size is None or self.crop_pct is None:
            return None
        return resize_side(self.input_size, self.crop_pct)

    def cached(self) -> bool:
        return (cache_dir() / self.file).is_file()


def tv(tag: str, file: str, top1: float, mb: float, *, resize: int = 256, crop: int = 224,
       interpolation: str = "bilinear", norm: str = "imagenet") -> dict:  # fmt: skip
    """A torchvision weight set: file name, published top-1 and size, eval transform (resize
    the shorter side to `resize`, centre-crop `crop`)."""
    mean, std = _NORMS[norm]
    return dict(tag=tag, url=_TV + file, top1=top1, file_mb=mb, input_size=crop,
                crop_pct=crop / resize, interpolation=interpolation, mean=mean, std=std,
                licence="bsd-3-clause", source="torchvision")  # fmt: skip


# model -> its torchvision weight sets, default first: torchvision's best (IMAGENET1K_V2 where
# it exists), whose transform the registry's ModelCfg describes. A new row: tv(TAG, FILE,
# TOP1, MB, resize=..., crop=..., interpolation=..., norm=...); a bare (TAG, URL) pair works
# too (SHA-256 from the file name, the model's ModelCfg as transform). timm tags: hub_timm.py.
# The norm of googlenet and inception_v3 is the zoo's (no transform_input: 0.5 / 0.5).
# fmt: off
_TABLE: dict[str, list] = {
    "resnet18": [tv("IMAGENET1K_V1", "resnet18-f37072fd.pth", 69.758, 44.661)],
    "resnet34": [tv("IMAGENET1K_V1", "resnet34-b627a593.pth", 73.314, 83.275)],
    "resnet50": [
        tv("IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 80.858, 97.79, resize=232),
        tv("IMAGENET1K_V1", "resnet50-0676ba61.pth", 76.13, 97.781),
    ],
    "resnet101": [
        tv("IMAGENET1K_V2", "resnet101-cd907fc2.pth", 81.886, 170.53, resize=232),
        tv("IMAGENET1K_V1", "resnet101-63fe2227.pth", 77.374, 170.511),
    ],
    "resnet152": [
        tv("IMAGENET1K_V2", "resnet152-f82ba261.pth", 82.284, 230.474, resize=232),
        tv("IMAGENET1K_V1", "resnet152-394f9c45.pth", 78.312, 230.434),
    ],
    "resnext50_32x4d": [
        tv("IMAGENET1K_V2", "resnext50_32x4d-1a0047aa.pth", 81.198, 95.833, resize=232),
        tv("IMAGENET1K_V1", "resnext50_32x4d-7cdf4587.pth", 77.618, 95.789),
    ],
    "resnext101_32x8d": [
        tv("IMAGENET1K_V2", "resnext101_32x8d-110c445d.pth", 82.834, 339.673, resize=232),
        tv("IMAGENET1K_V1", "resnext101_32x8d-8ba56ff5.pth", 79.312, 339.586),
    ],
    "resnext101_64x4d": [
        tv("IMAGENET1K_V1", "resnext101_64x4d-173b62eb.pth", 83.246, 319.318, resize=232),
    ],
    "wide_resnet50_2": [
        tv("IMAGENET1K_V2", "wide_resnet50_2-9ba9bcbe.pth", 81.602, 263.124, resize=232),
        tv("IMAGENET1K_V1", "wide_resnet50_2-95faca4d.pth", 78.468, 131.82),
    ],
    "wide_resnet101_2": [
        tv("IMAGENET1K_V2", "wide_resnet101_2-d733dc28.pth", 82.51, 484.747, resize=232),
        tv("IMAGENET1K_V1", "wide_resnet101_2-32ee1156.pth", 78.848, 242.896),
    ],
    "convnext_tiny": [tv("IMAGENET1K_V1", "convnext_tiny-983f1562.pth", 82.52, 109.119, resize=236)],
    "convnext_small": [tv("IMAGENET1K_V1", "convnext_small-0c510722.pth", 83.616, 191.703, resize=230)],
    "convnext_base": [tv("IMAGENET1K_V1", "convnext_base-6075fbad.pth", 84.062, 338.064, resize=232)],
    "convnext_large": [tv("IMAGENET1K_V1", "convnext_large-ea097f82.pth", 84.414, 754.537, resize=232)],
    "mobilenet_v2": [
        tv("IMAGENET1K_V2", "mobilenet_v2-7ebf99e0.pth", 72.154, 13.598, resize=232),
        tv("IMAGENET1K_V1", "mobilenet_v2-b0353104.pth", 71.878, 13.555),
    ],
    "mobilenet_v3_small": [tv("IMAGENET1K_V1", "mobilenet_v3_small-047dcff4.pth", 67.668, 9.829)],
    "mobilenet_v3_large": [
        tv("IMAGENET1K_V2", "mobilenet_v3_large-5c1a4163.pth", 75.274, 21.107, resize=232),
        tv("IMAGENET1K_V1", "mobilenet_v3_large-8738ca79.pth", 74.042, 21.114),
    ],
    "efficientnet_b0": [tv("IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth", 77.692, 20.451, interpolation="bicubic")],
    "efficientnet_b1": [
        tv("IMAGENET1K_V2", "efficientnet_b1-c27df63c.pth", 79.838, 30.136, resize=255, crop=240),
        tv("IMAGENET1K_V1", "efficientnet_b1_rwightman-bac287d4.pth", 78.642, 30.134, crop=240, interpolation="bicubic"),
    ],
    "efficientnet_b2": [tv("IMAGENET1K_V1", "efficientnet_b2_rwightman-c35c1473.pth", 80.608, 35.174, resize=288, crop=288, interpolation="bicubic")],
    "efficientnet_b3": [tv("IMAGENET1K_V1", "efficientnet_b3_rwightman-b3899882.pth", 82.008, 47.184, resize=320, crop=300, interpolation="bicubic")],
    "efficientnet_b4": [tv("IMAGENET1K_V1", "efficientnet_b4_rwightman-23ab8bcd.pth", 83.384, 74.489, resize=384, crop=380, interpolation="bicubic")],
    "efficientnet_b5": [tv("IMAGENET1K_V1", "efficientnet_b5_lukemelas-1a07897c.pth", 83.444, 116.864, resize=456, crop=456, interpolation="bicubic")],
    "efficientnet_b6": [tv("IMAGENET1K_V1", "efficientnet_b6_lukemelas-24a108a5.pth", 84.008, 165.362, resize=528, crop=528, interpolation="bicubic")],
    "efficientnet_b7": [tv("IMAGENET1K_V1", "efficientnet_b7_lukemelas-c5b4e57e.pth", 84.122, 254.675, resize=600, crop=600, interpolation="bicubic")],
    "shufflenet_v2_x0_5": [tv("IMAGENET1K_V1", "shufflenetv2_x0.5-f707e7126e.pth", 60.552, 5.282)],
    "shufflenet_v2_x1_0": [tv("IMAGENET1K_V1", "shufflenetv2_x1-5666bf0f80.pth", 69.362, 8.791)],
    "shufflenet_v2_x1_5": [tv("IMAGENET1K_V1", "shufflenetv2_x1_5-3c479a10.pth", 72.996, 13.557, resize=232)],
    "shufflenet_v2_x2_0": [tv("IMAGENET1K_V1", "shufflenetv2_x2_0-8be3c8ee.pth", 76.23, 28.433, resize=232)],
    "densenet121": [tv("IMAGENET1K_V1", "densenet121-a639ec97.pth", 74.434, 30.845)],
    "densenet161": [tv("IMAGENET1K_V1", "densenet161-8d451a50.pth", 77.138, 110.369)],
    "densenet169": [tv("IMAGENET1K_V1", "densenet169-b2777c0a.pth", 75.6, 54.708)],
    "densenet201": [tv("IMAGENET1K_V1", "densenet201-c1103571.pth", 76.896, 77.373)],
    "googlenet": [tv("IMAGENET1K_V1", "googlenet-1378be20.pth", 69.778, 49.731, norm="inception")],
    "inception_v3": [tv("IMAGENET1K_V1", "inception_v3_google-0cc3c7bd.pth", 77.294, 103.903, resize=342, crop=299, norm="inception")],
    # the second part of the zoo (torchvision 0.29.1; zoo2/published.json): default first
    "alexnet": [tv("IMAGENET1K_V1", "alexnet-owt-7be5be79.pth", 56.522, 233.087)],
    "vgg11": [tv("IMAGENET1K_V1", "vgg11-8a719046.pth", 69.02, 506.84)],
    "vgg11_bn": [tv("IMAGENET1K_V1", "vgg11_bn-6002323d.pth", 70.37, 506.881)],
    "vgg13": [tv("IMAGENET1K_V1", "vgg13-19584684.pth", 69.928, 507.545)],
    "vgg13_bn": [tv("IMAGENET1K_V1", "vgg13_bn-abd245e5.pth", 71.586, 507.59)],
    "vgg16": [
        tv("IMAGENET1K_V1", "vgg16-397923af.pth", 71.592, 527.796),
        tv("IMAGENET1K_FEATURES", "vgg16_features-amdegroot-88682ab5.pth", None, 527.802),
    ],
    "vgg16_bn": [tv("IMAGENET1K_V1", "vgg16_bn-6c64b313.pth", 73.36, 527.866)],
    "vgg19": [tv("IMAGENET1K_V1", "vgg19-dcbb9e9d.pth", 72.376, 548.051)],
    "vgg19_bn": [tv("IMAGENET1K_V1", "vgg19_bn-c79401a0.pth", 74.218, 548.143)],
    "squeezenet1_0": [tv("IMAGENET1K_V1", "squeezenet1_0-b66bff10.pth", 58.092, 4.778)],
    "squeezenet1_1": [tv("IMAGENET1K_V1", "squeezenet1_1-b8a52dc0.pth", 58.178, 4.729)],
    "mnasnet0_5": [tv("IMAGENET1K_V1", "mnasnet0.5_top1_67.823-3ffadce67e.pth", 67.734, 8.591)],
    "mnasnet0_75": [tv("IMAGENET1K_V1", "mnasnet0_75-7090bc5f.pth", 71.18, 12.303, resize=232)],
    "mnasnet1_0": [tv("IMAGENET1K_V1", "mnasnet1.0_top1_73.512-f206786ef8.pth", 73.456, 16.915)],
    "mnasnet1_3": [tv("IMAGENET1K_V1", "mnasnet1_3-a4c69d6f.pth", 76.506, 24.246, resize=232)],
    "regnet_x_400mf": [
        tv("IMAGENET1K_V2", "regnet_x_400mf-62229a5f.pth", 74.864, 21.257, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_400mf-adf1edd5.pth", 72.834, 21.258),
    ],
    "regnet_x_800mf": [
        tv("IMAGENET1K_V2", "regnet_x_800mf-94a99ebd.pth", 77.522, 27.945, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_800mf-ad17e45c.pth", 75.212, 27.945),
    ],
    "regnet_x_1_6gf": [
        tv("IMAGENET1K_V2", "regnet_x_1_6gf-a12f2b72.pth", 79.668, 35.339, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_1_6gf-e3633e7f.pth", 77.04, 35.339),
    ],
    "regnet_x_3_2gf": [
        tv("IMAGENET1K_V2", "regnet_x_3_2gf-7071aa85.pth", 81.196, 58.756, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_3_2gf-f342aeae.pth", 78.364, 58.756),
    ],
    "regnet_x_8gf": [
        tv("IMAGENET1K_V2", "regnet_x_8gf-2b70d774.pth", 81.682, 151.456, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_8gf-03ceed89.pth", 79.344, 151.456),
    ],
    "regnet_x_16gf": [
        tv("IMAGENET1K_V2", "regnet_x_16gf-ba3796d7.pth", 82.716, 207.627, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_16gf-2007eb11.pth", 80.058, 207.627),
    ],
    "regnet_x_32gf": [
        tv("IMAGENET1K_V2", "regnet_x_32gf-6eb8fdc6.pth", 83.014, 412.039, resize=232),
        tv("IMAGENET1K_V1", "regnet_x_32gf-9d47f8d0.pth", 80.622, 412.039),
    ],
    "regnet_y_400mf": [
        tv("IMAGENET1K_V2", "regnet_y_400mf-e6988f5f.pth", 75.804, 16.806, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_400mf-c65dace8.pth", 74.046, 16.806),
    ],
    "regnet_y_800mf": [
        tv("IMAGENET1K_V2", "regnet_y_800mf-58fc7688.pth", 78.828, 24.774, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_800mf-1b27b58c.pth", 76.42, 24.774),
    ],
    "regnet_y_1_6gf": [
        tv("IMAGENET1K_V2", "regnet_y_1_6gf-0d7bc02a.pth", 80.876, 43.152, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_1_6gf-b11a554e.pth", 77.95, 43.152),
    ],
    "regnet_y_3_2gf": [
        tv("IMAGENET1K_V2", "regnet_y_3_2gf-9180c971.pth", 81.982, 74.567, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_3_2gf-b5a9779c.pth", 78.948, 74.567),
    ],
    "regnet_y_8gf": [
        tv("IMAGENET1K_V2", "regnet_y_8gf-dc2b1b54.pth", 82.828, 150.701, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_8gf-d0d0e4a8.pth", 80.032, 150.701),
    ],
    "regnet_y_16gf": [
        tv("IMAGENET1K_V2", "regnet_y_16gf-3e4a00f9.pth", 82.886, 319.49, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_16gf-9e6ed7dd.pth", 80.424, 319.49),
        tv("IMAGENET1K_SWAG_E2E_V1", "regnet_y_16gf_swag-43afe44d.pth", 86.012, 319.49, resize=384, crop=384, interpolation="bicubic"),
        tv("IMAGENET1K_SWAG_LINEAR_V1", "regnet_y_16gf_lc_swag-f3ec0043.pth", 83.976, 319.49, resize=224, interpolation="bicubic"),
    ],
    "regnet_y_32gf": [
        tv("IMAGENET1K_V2", "regnet_y_32gf-8db6d4b5.pth", 83.368, 554.076, resize=232),
        tv("IMAGENET1K_V1", "regnet_y_32gf-4dee3f7a.pth", 80.878, 554.076),
        tv("IMAGENET1K_SWAG_E2E_V1", "regnet_y_32gf_swag-04fdfa75.pth", 86.838, 554.076, resize=384, crop=384, interpolation="bicubic"),
        tv("IMAGENET1K_SWAG_LINEAR_V1", "regnet_y_32gf_lc_swag-e1583746.pth", 84.622, 554.076, resize=224, interpolation="bicubic"),
    ],
    "regnet_y_128gf": [
        tv("IMAGENET1K_SWAG_E2E_V1", "regnet_y_128gf_swag-c8ce3e52.pth", 88.228, 2461.564, resize=384, crop=384, interpolation="bicubic"),
        tv("IMAGENET1K_SWAG_LINEAR_V1", "regnet_y_128gf_lc_swag-cbe8ce12.pth", 86.068, 2461.564, resize=224, interpolation="bicubic"),
    ],
    "efficientnet_v2_s": [
        tv("IMAGENET1K_V1", "efficientnet_v2_s-dd5fe13b.pth", 84.228, 82.704, resize=384, crop=384),
    ],
    "efficientnet_v2_m": [
        tv("IMAGENET1K_V1", "efficientnet_v2_m-dc08266a.pth", 85.112, 208.01, resize=480, crop=480),
    ],
    "efficientnet_v2_l": [
        tv("IMAGENET1K_V1", "efficientnet_v2_l-59c71312.pth", 85.808, 454.573, resize=480, crop=480, interpolation="bicubic"),
    ],
}
# fmt: on


def _timm_row(model: str, row: tuple) -> dict:
    tag, top1, licence, size, crop_pct, interpolation, norm, url = row
    for prefix, base in URL_PREFIXES.items():
        if url.startswith(prefix):
            url = base + url[len(prefix) :]
    sha = HF_SHA256.get(f"{model}.{tag}")
    if not url:  # Hugging Face only: every file there is called model.safetensors
        url = f"{_TIMM_HF}{model}.{tag}/resolve/main/model.safetensors"
    mean, std = _NORMS[norm]
    return dict(tag=tag, url=url, sha256=sha, top1=top1, licence=licence, input_size=size,
                crop_pct=crop_pct, interpolation=interpolation, mean=mean, std=std,
                source="timm")  # fmt: skip


def _entry(model: str, row: tuple | dict) -> PublishedWeights:
    if isinstance(row, tuple):  # (tag, url): the model's ModelCfg, the SHA-256 in the name
        row = dict(tag=row[0], url=row[1], source="timm" if "timm" in row[1] else "torchvision")
    name = row["url"].rsplit("/", 1)[1]
    # Hugging Face files are all called model.safetensors: name them after model and tag
    file = f"{model}.{row['tag']}.safetensors" if name == "model.safetensors" else name
    if row.get("sha256") is None:
        m = _HASH_IN_NAME.search(name)
        row = {**row, "sha256": m.group(1) if m else None}
    return PublishedWeights(model=model, file=file, **row)


PUBLISHED: dict[str, list[PublishedWeights]] = {
    model: [_entry(model, r) for r in _TABLE.get(model, [])]
    + [_entry(model, _timm_row(model, r)) for r in TIMM_TAGS.get(model, [])]
    for model in {**_TABLE, **TIMM_TAGS}
}


def split_name(name: str) -> tuple[str, str | None]:
    """`resnet50.a1_in1k` -> ("resnet50", "a1_in1k"); a plain name -> (name, None)."""
    model, dot, tag = name.partition(".")
    return (model, tag) if dot and tag else (name, None)


def cache_dir() -> Path:
    """Where downloaded weights live: `$CNNZOO_HOME/weights`, default ~/.cache/cnnzoo/weights."""
    home = os.environ.get("CNNZOO_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "cnnzoo"
    )
    return Path(home).expanduser() / "weights"


def published_weights(model: str, tag: str | None = None) -> PublishedWeights:
    """The table's entry for `model` (its default weights, or the set named `tag`, any case)."""
    rows = PUBLISHED.get(model)
    if not rows:
        raise CnnzooError(
            f"{model} has no published ImageNet weights (cnnzoo.hub.PUBLISHED lists the "
            f"{len(PUBLISHED)} models that have); train it from scratch, or start from a file "
            "(--weights FILE, weights=FILE)"
        )
    if tag is None:
        return rows[0]
    for row in rows:
        if row.tag.lower() == tag.lower():
            return row
    raise CnnzooError(
        f"{model} has no weights named {tag!r}; choose from {', '.join(r.tag for r in rows)} "
        f"(`cnnzoo models --pretrained {model}` lists them with top-1 and licence)"
    )


def _source_url(entry: PublishedWeights) -> str:
    mirror = os.environ.get("CNNZOO_WEIGHTS_URL")
    return f"{mirror.rstrip('/')}/{entry.file}" if mirror else entry.url


def _check_safetensors(path: Path) -> None:

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as e:
        raise CnnzooError(f"{path}: not a readable safetensors file ({e}); delete it") from None


def fetch_weights(model: str, tag: str | None = None, progress: bool = True) -> Path:
    """The local path of `model`'s published weights (default, or the set named `tag`),
    downloaded and checked when not cached.

    A cached file is checked once against the published SHA-256; the result is kept in
    `<file>.sha256` beside it. For a file whose SHA-256 is not known, the digest of its first
    download is recorded there and checked on every later use (said once, as a warning).
    """
    entry = published_weights(model, tag)
    path = cache_dir() / entry.file
    stamp = path.with_name(path.name + ".sha256")
    try:
        recorded = json.loads(stamp.read_text()) if stamp.is_file() else {}
    except (ValueError, OSError):
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    expected = (entry.sha256 or "").lower()
    if path.is_file():
        digest = str(recorded.get("sha256", ""))
        if not (expected and digest.startswith(expected)
                and recorded.get("size") == path.stat().st_size):  # fmt: skip
            digest = file_digest(path)  # not checked since it was stored: check it now
        expected = expected or str(recorded.get("sha256", ""))
        if expected and not digest.startswith(expected):
            raise CnnzooError(
                f"{path} does not match the published {entry.file} (SHA-256 {digest[:12]}, "
                f"expected {expected[:12]}); delete it to download it again"
            )
    else:
        url = _source_url(entry)
        hint = f"without network, download {url} elsewhere and put it at {path}"
        digest = download(url, path, checksum=entry.sha256, progress=progress, hint=hint)
    if path.suffix == ".safetensors":
        _check_safetensors(path)
    if entry.sha256 is None and not recorded:
        log.warning(
            "%s: no published SHA-256 is known for this file; recorded its SHA-256 %s to "
            "check it from now on",
            entry.name,
            digest,
        )
    stamp.write_text(json.dumps({"sha256": digest, "size": path.stat().st_size}) + "\n")
    return path
