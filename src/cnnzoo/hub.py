"""Published ImageNet weights by model name: where each reference file is, its checksum, and a
local cache, so that `create_model(name, pretrained=True)` needs no hunting for files.

- The table below holds, per model, the weight sets its reference publishes (torchvision's
  files, or timm's), the first being the default. A file named `<name>-<hex>.<ext>` carries the
  start of its SHA-256 (torchvision and timm check it the same way); it is checked here too.
  inception_v4, inception_resnet_v2 and mobilenetv1_100 are published only on timm's Hugging
  Face repos, with no checksum that could be found: their file must parse as safetensors, and
  its SHA-256 is recorded on first download and checked on every later use.
- Files are cached in `$CNNZOO_HOME/weights` (default `~/.cache/cnnzoo/weights`), downloaded
  atomically and resumably (see `download.download`); a cached file needs no network.
- Each weight set carries the eval transform it was published with (`Transform`: input size,
  crop_pct, interpolation, mean / std) where the model's cfg does not already say it for every
  set: the cfg describes the default (first) set, `models.factory.weights_cfg(model, tag)` any of them. The
  table's older rows, one set per model or sets sharing the cfg's transform but for the
  resize (torchvision's V1 / V2 files of ResNet and friends), carry none.
- `$CNNZOO_WEIGHTS_URL`, when set, is a base URL that serves the same file names (a local
  mirror, or the tests' server): every file is fetched from `$CNNZOO_WEIGHTS_URL/<file>`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cnnzoo.cfg import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, INCEPTION_STD
from cnnzoo.download import download, file_digest
from cnnzoo.errors import CnnzooError

log = logging.getLogger("cnnzoo")

_TV = "https://download.pytorch.org/models/"
_TIMM_GH = "https://github.com/rwightman/pytorch-image-models/releases/download/"
_TIMM_HF = "https://huggingface.co/timm/"
_TIMM_GH_HF = "https://github.com/huggingface/pytorch-image-models/releases/download/"
_GLUON = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/v0.1/"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.[a-z]+$")


@dataclass(frozen=True)
class Transform:
    """The eval transform a weight set was published with: resize the short side to
    input_size / crop_pct (`interpolation`), centre-crop input_size, normalise."""

    input_size: int
    crop_pct: float
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


# torchvision's: V1 weights resize 256, V2 232 (crop 224, bilinear); SWAG end-to-end at 384 and
# SWAG linear-probe at 224, bicubic, no crop margin
_V1 = Transform(224, 224 / 256)
_V2 = Transform(224, 224 / 232)
_SWAG384 = Transform(384, 1.0, "bicubic")
_SWAG224 = Transform(224, 1.0, "bicubic")
_HALF = (INCEPTION_MEAN, INCEPTION_STD)  # timm's ra4 tags normalise with mean = std = 0.5


def _timm(size: int, crop_pct: float, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Transform:
    return Transform(size, crop_pct, "bicubic", mean, std)


@dataclass(frozen=True)
class PublishedWeights:
    """One published weight file of a model."""

    model: str
    tag: str  # the reference's name for this weight set: IMAGENET1K_V1, a1_in1k, ...
    url: str
    file: str  # name in the cache
    transform: Transform | None = None  # its eval transform; None: the model's cfg says it

    @property
    def sha256(self) -> str | None:
        """The SHA-256 prefix the file name carries, or None when none was published."""
        m = _HASH_IN_NAME.search(self.file)
        return m.group(1) if m else None


# model -> [(tag, url[, transform])], default first: torchvision's default weights (its best,
# IMAGENET1K_V2 where it exists, but for RegNetY-16GF / 32GF, whose default is V2 and not the
# better SWAG sets) or timm's default tag, whose eval transform the registry's ModelCfg describes.
_TABLE: dict[str, list[tuple]] = {
    "resnet18": [("IMAGENET1K_V1", _TV + "resnet18-f37072fd.pth")],
    "resnet34": [("IMAGENET1K_V1", _TV + "resnet34-b627a593.pth")],
    "resnet50": [
        ("IMAGENET1K_V2", _TV + "resnet50-11ad3fa6.pth"),
        ("IMAGENET1K_V1", _TV + "resnet50-0676ba61.pth"),
    ],
    "resnet101": [
        ("IMAGENET1K_V2", _TV + "resnet101-cd907fc2.pth"),
        ("IMAGENET1K_V1", _TV + "resnet101-63fe2227.pth"),
    ],
    "resnet152": [
        ("IMAGENET1K_V2", _TV + "resnet152-f82ba261.pth"),
        ("IMAGENET1K_V1", _TV + "resnet152-394f9c45.pth"),
    ],
    "resnext50_32x4d": [
        ("IMAGENET1K_V2", _TV + "resnext50_32x4d-1a0047aa.pth"),
        ("IMAGENET1K_V1", _TV + "resnext50_32x4d-7cdf4587.pth"),
    ],
    "resnext101_32x8d": [
        ("IMAGENET1K_V2", _TV + "resnext101_32x8d-110c445d.pth"),
        ("IMAGENET1K_V1", _TV + "resnext101_32x8d-8ba56ff5.pth"),
    ],
    "resnext101_64x4d": [("IMAGENET1K_V1", _TV + "resnext101_64x4d-173b62eb.pth")],
    "wide_resnet50_2": [
        ("IMAGENET1K_V2", _TV + "wide_resnet50_2-9ba9bcbe.pth"),
        ("IMAGENET1K_V1", _TV + "wide_resnet50_2-95faca4d.pth"),
    ],
    "wide_resnet101_2": [
        ("IMAGENET1K_V2", _TV + "wide_resnet101_2-d733dc28.pth"),
        ("IMAGENET1K_V1", _TV + "wide_resnet101_2-32ee1156.pth"),
    ],
    "convnext_tiny": [("IMAGENET1K_V1", _TV + "convnext_tiny-983f1562.pth")],
    "convnext_small": [("IMAGENET1K_V1", _TV + "convnext_small-0c510722.pth")],
    "convnext_base": [("IMAGENET1K_V1", _TV + "convnext_base-6075fbad.pth")],
    "convnext_large": [("IMAGENET1K_V1", _TV + "convnext_large-ea097f82.pth")],
    "mobilenet_v2": [
        ("IMAGENET1K_V2", _TV + "mobilenet_v2-7ebf99e0.pth"),
        ("IMAGENET1K_V1", _TV + "mobilenet_v2-b0353104.pth"),
    ],
    "mobilenet_v3_small": [("IMAGENET1K_V1", _TV + "mobilenet_v3_small-047dcff4.pth")],
    "mobilenet_v3_large": [
        ("IMAGENET1K_V2", _TV + "mobilenet_v3_large-5c1a4163.pth"),
        ("IMAGENET1K_V1", _TV + "mobilenet_v3_large-8738ca79.pth"),
    ],
    "efficientnet_b0": [("IMAGENET1K_V1", _TV + "efficientnet_b0_rwightman-7f5810bc.pth")],
    "efficientnet_b1": [
        ("IMAGENET1K_V2", _TV + "efficientnet_b1-c27df63c.pth"),
        ("IMAGENET1K_V1", _TV + "efficientnet_b1_rwightman-bac287d4.pth"),
    ],
    "efficientnet_b2": [("IMAGENET1K_V1", _TV + "efficientnet_b2_rwightman-c35c1473.pth")],
    "efficientnet_b3": [("IMAGENET1K_V1", _TV + "efficientnet_b3_rwightman-b3899882.pth")],
    "efficientnet_b4": [("IMAGENET1K_V1", _TV + "efficientnet_b4_rwightman-23ab8bcd.pth")],
    "efficientnet_b5": [("IMAGENET1K_V1", _TV + "efficientnet_b5_lukemelas-1a07897c.pth")],
    "efficientnet_b6": [("IMAGENET1K_V1", _TV + "efficientnet_b6_lukemelas-24a108a5.pth")],
    "efficientnet_b7": [("IMAGENET1K_V1", _TV + "efficientnet_b7_lukemelas-c5b4e57e.pth")],
    "shufflenet_v2_x0_5": [("IMAGENET1K_V1", _TV + "shufflenetv2_x0.5-f707e7126e.pth")],
    "shufflenet_v2_x1_0": [("IMAGENET1K_V1", _TV + "shufflenetv2_x1-5666bf0f80.pth")],
    "shufflenet_v2_x1_5": [("IMAGENET1K_V1", _TV + "shufflenetv2_x1_5-3c479a10.pth")],
    "shufflenet_v2_x2_0": [("IMAGENET1K_V1", _TV + "shufflenetv2_x2_0-8be3c8ee.pth")],
    "densenet121": [("IMAGENET1K_V1", _TV + "densenet121-a639ec97.pth")],
    "densenet161": [("IMAGENET1K_V1", _TV + "densenet161-8d451a50.pth")],
    "densenet169": [("IMAGENET1K_V1", _TV + "densenet169-b2777c0a.pth")],
    "densenet201": [("IMAGENET1K_V1", _TV + "densenet201-c1103571.pth")],
    "googlenet": [("IMAGENET1K_V1", _TV + "googlenet-1378be20.pth")],
    "inception_v3": [("IMAGENET1K_V1", _TV + "inception_v3_google-0cc3c7bd.pth")],
    "alexnet": [("IMAGENET1K_V1", _TV + "alexnet-owt-7be5be79.pth")],
    "vgg11": [("IMAGENET1K_V1", _TV + "vgg11-8a719046.pth")],
    "vgg11_bn": [("IMAGENET1K_V1", _TV + "vgg11_bn-6002323d.pth")],
    "vgg13": [("IMAGENET1K_V1", _TV + "vgg13-19584684.pth")],
    "vgg13_bn": [("IMAGENET1K_V1", _TV + "vgg13_bn-abd245e5.pth")],
    "vgg16": [
        ("IMAGENET1K_V1", _TV + "vgg16-397923af.pth"),
        # the original Caffe VGG-16's features (ported by amdegroot): its classifier holds no
        # trained values and its input is 0-255 pixels less their mean (torchvision's
        # transforms for it); for backbones (features_only), not for classifying
        ("IMAGENET1K_FEATURES", _TV + "vgg16_features-amdegroot-88682ab5.pth"),
    ],
    "vgg16_bn": [("IMAGENET1K_V1", _TV + "vgg16_bn-6c64b313.pth")],
    "vgg19": [("IMAGENET1K_V1", _TV + "vgg19-dcbb9e9d.pth")],
    "vgg19_bn": [("IMAGENET1K_V1", _TV + "vgg19_bn-c79401a0.pth")],
    "squeezenet1_0": [("IMAGENET1K_V1", _TV + "squeezenet1_0-b66bff10.pth")],
    "squeezenet1_1": [("IMAGENET1K_V1", _TV + "squeezenet1_1-b8a52dc0.pth")],
    # timm: its default tag per model. The GitHub release files are the ones timm's own
    # pretrained configs name for these tags (their names carry a SHA-256 prefix); timm also
    # mirrors them as safetensors on Hugging Face, with no checksum published beside them.
    "seresnet50": [("a1_in1k", _TIMM_GH + "v0.1-rsb-weights/seresnet50_a1_0-ffa00869.pth")],
    "seresnext50_32x4d": [
        ("racm_in1k", _TIMM_GH + "v0.1-weights/seresnext50_32x4d_racm-a304a460.pth")
    ],
    "seresnext101_32x8d": [
        ("ah_in1k", _TIMM_GH + "v0.1-tpu-weights/seresnext101_32x8d_ah-e6bc4c0a.pth")
    ],
    "resnetv2_50": [("a1h_in1k", _TIMM_GH + "v0.1-rsb-weights/resnetv2_50_a1h-000cdf49.pth")],
    "resnetv2_101": [("a1h_in1k", _TIMM_GH + "v0.1-rsb-weights/resnetv2_101_a1h-5d01f016.pth")],
    "inception_v4": [("tf_in1k", _TIMM_HF + "inception_v4.tf_in1k/resolve/main/model.safetensors")],
    "inception_resnet_v2": [
        ("tf_in1k", _TIMM_HF + "inception_resnet_v2.tf_in1k/resolve/main/model.safetensors")
    ],
    "mobilenetv1_100": [
        (
            "ra4_e3600_r224_in1k",
            _TIMM_HF + "mobilenetv1_100.ra4_e3600_r224_in1k/resolve/main/model.safetensors",
        )
    ],
    # the second part of the zoo: every set with its own transform
    "mnasnet0_5": [
        ("IMAGENET1K_V1", _TV + "mnasnet0.5_top1_67.823-3ffadce67e.pth", _V1),
    ],
    "mnasnet0_75": [
        ("IMAGENET1K_V1", _TV + "mnasnet0_75-7090bc5f.pth", _V2),
    ],
    "mnasnet1_0": [
        ("IMAGENET1K_V1", _TV + "mnasnet1.0_top1_73.512-f206786ef8.pth", _V1),
    ],
    "mnasnet1_3": [
        ("IMAGENET1K_V1", _TV + "mnasnet1_3-a4c69d6f.pth", _V2),
    ],
    "regnet_x_400mf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_400mf-62229a5f.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_400mf-adf1edd5.pth", _V1),
    ],
    "regnet_x_800mf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_800mf-94a99ebd.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_800mf-ad17e45c.pth", _V1),
    ],
    "regnet_x_1_6gf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_1_6gf-a12f2b72.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_1_6gf-e3633e7f.pth", _V1),
    ],
    "regnet_x_3_2gf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_3_2gf-7071aa85.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_3_2gf-f342aeae.pth", _V1),
    ],
    "regnet_x_8gf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_8gf-2b70d774.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_8gf-03ceed89.pth", _V1),
    ],
    "regnet_x_16gf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_16gf-ba3796d7.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_16gf-2007eb11.pth", _V1),
    ],
    "regnet_x_32gf": [
        ("IMAGENET1K_V2", _TV + "regnet_x_32gf-6eb8fdc6.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_x_32gf-9d47f8d0.pth", _V1),
    ],
    "regnet_y_400mf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_400mf-e6988f5f.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_400mf-c65dace8.pth", _V1),
    ],
    "regnet_y_800mf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_800mf-58fc7688.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_800mf-1b27b58c.pth", _V1),
    ],
    "regnet_y_1_6gf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_1_6gf-0d7bc02a.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_1_6gf-b11a554e.pth", _V1),
    ],
    "regnet_y_3_2gf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_3_2gf-9180c971.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_3_2gf-b5a9779c.pth", _V1),
    ],
    "regnet_y_8gf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_8gf-dc2b1b54.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_8gf-d0d0e4a8.pth", _V1),
    ],
    "regnet_y_16gf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_16gf-3e4a00f9.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_16gf-9e6ed7dd.pth", _V1),
        ("IMAGENET1K_SWAG_E2E_V1", _TV + "regnet_y_16gf_swag-43afe44d.pth", _SWAG384),
        ("IMAGENET1K_SWAG_LINEAR_V1", _TV + "regnet_y_16gf_lc_swag-f3ec0043.pth", _SWAG224),
    ],
    "regnet_y_32gf": [
        ("IMAGENET1K_V2", _TV + "regnet_y_32gf-8db6d4b5.pth", _V2),
        ("IMAGENET1K_V1", _TV + "regnet_y_32gf-4dee3f7a.pth", _V1),
        ("IMAGENET1K_SWAG_E2E_V1", _TV + "regnet_y_32gf_swag-04fdfa75.pth", _SWAG384),
        ("IMAGENET1K_SWAG_LINEAR_V1", _TV + "regnet_y_32gf_lc_swag-e1583746.pth", _SWAG224),
    ],
    "regnet_y_128gf": [
        ("IMAGENET1K_SWAG_E2E_V1", _TV + "regnet_y_128gf_swag-c8ce3e52.pth", _SWAG384),
        ("IMAGENET1K_SWAG_LINEAR_V1", _TV + "regnet_y_128gf_lc_swag-cbe8ce12.pth", _SWAG224),
    ],
    "efficientnet_v2_s": [
        ("IMAGENET1K_V1", _TV + "efficientnet_v2_s-dd5fe13b.pth", Transform(384, 1.0)),
    ],
    "efficientnet_v2_m": [
        ("IMAGENET1K_V1", _TV + "efficientnet_v2_m-dc08266a.pth", Transform(480, 1.0)),
    ],
    "efficientnet_v2_l": [
        ("IMAGENET1K_V1", _TV + "efficientnet_v2_l-59c71312.pth", Transform(480, 1.0, "bicubic")),
    ],
    "resnet18d": [
        ("ra2_in1k", _TIMM_GH + "v0.1-weights/resnet18d_ra2-48a79e06.pth", _timm(224, 0.875)),
        (
            "ra4_e3600_r224_in1k",
            _TIMM_HF + "resnet18d.ra4_e3600_r224_in1k/resolve/main/model.safetensors",
            _timm(224, 0.9, *_HALF),
        ),
    ],
    "resnet26d": [
        ("bt_in1k", _TIMM_GH + "v0.1-weights/resnet26d-69e92c46.pth", _timm(224, 0.875)),
    ],
    "resnet34d": [
        ("ra2_in1k", _TIMM_GH + "v0.1-weights/resnet34d_ra2-f8dcfcaf.pth", _timm(224, 0.875)),
    ],
    "resnet50d": [
        ("ra2_in1k", _TIMM_GH + "v0.1-weights/resnet50d_ra2-464e36ba.pth", _timm(224, 0.875)),
        ("a1_in1k", _TIMM_GH_HF + "v0.1-rsb-weights/resnet50d_a1_0-e20cff14.pth", _timm(224, 0.95)),
        ("a2_in1k", _TIMM_GH_HF + "v0.1-rsb-weights/resnet50d_a2_0-a3adc64d.pth", _timm(224, 0.95)),
        ("a3_in1k", _TIMM_GH_HF + "v0.1-rsb-weights/resnet50d_a3_0-403fdfad.pth", _timm(160, 0.95)),
        ("gluon_in1k", _GLUON + "gluon_resnet50_v1d-818a1b1b.pth", _timm(224, 0.875)),
        (
            "ra4_e3600_r224_in1k",
            _TIMM_HF + "resnet50d.ra4_e3600_r224_in1k/resolve/main/model.safetensors",
            _timm(224, 0.95, *_HALF),
        ),
    ],
    "resnet101d": [
        ("ra2_in1k", _TIMM_GH + "v0.1-weights/resnet101d_ra2-2803ffab.pth", _timm(256, 0.95)),
        ("gluon_in1k", _GLUON + "gluon_resnet101_v1d-0f9c8644.pth", _timm(224, 0.875)),
    ],
    "resnet152d": [
        ("ra2_in1k", _TIMM_GH + "v0.1-weights/resnet152d_ra2-5cac0439.pth", _timm(256, 0.95)),
        ("gluon_in1k", _GLUON + "gluon_resnet152_v1d-bd354e12.pth", _timm(224, 0.875)),
    ],
    "resnet200d": [
        ("ra2_in1k", _TIMM_GH + "v0.1-weights/resnet200d_ra2-bdba9bf9.pth", _timm(256, 0.95)),
    ],
}


def _cache_name(model: str, tag: str, url: str) -> str:
    # Hugging Face files are all called model.safetensors: name them after model and tag
    name = url.rsplit("/", 1)[1]
    return f"{model}.{tag}.safetensors" if name == "model.safetensors" else name


PUBLISHED: dict[str, list[PublishedWeights]] = {
    model: [
        PublishedWeights(model, tag, url, _cache_name(model, tag, url), *rest)
        for tag, url, *rest in rows
    ]
    for model, rows in _TABLE.items()
}


def cache_dir() -> Path:
    """Where downloaded weights live: `$CNNZOO_HOME/weights`, default ~/.cache/cnnzoo/weights."""
    home = os.environ.get("CNNZOO_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "cnnzoo"
    )
    return Path(home).expanduser() / "weights"


def published_weights(model: str, tag: str | None = None) -> PublishedWeights:
    """The table's entry for `model` (its default weights, or the set named `tag`)."""
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
        f"{model} has no weights named {tag!r}; choose from {', '.join(r.tag for r in rows)}"
    )


def _source_url(entry: PublishedWeights) -> str:
    mirror = os.environ.get("CNNZOO_WEIGHTS_URL")
    return f"{mirror.rstrip('/')}/{entry.file}" if mirror else entry.url


def _check_safetensors(path: Path) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError) as e:
        raise CnnzooError(f"{path}: not a readable safetensors file ({e}); delete it") from None


def fetch_weights(model: str, tag: str | None = None, progress: bool = True) -> Path:
    """The local path of `model`'s published weights, downloaded (and checked) when not cached.

    A cached file is checked once against the published checksum; the result is kept in
    `<file>.sha256` beside it (for a file without a published checksum, the digest of its first
    download, checked on every later use).
    """
    entry = published_weights(model, tag)
    path = cache_dir() / entry.file
    stamp = path.with_name(path.name + ".sha256")
    recorded = json.loads(stamp.read_text()) if stamp.is_file() else {}
    if path.is_file():
        if recorded.get("size") == path.stat().st_size and entry.sha256 is not None:
            return path  # checked when it was stored
        digest = file_digest(path)
        expected = entry.sha256 or recorded.get("sha256")
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
            "%s: no published checksum; recorded its SHA-256 %s to check it from now on",
            entry.file,
            digest,
        )
    stamp.write_text(json.dumps({"sha256": digest, "size": path.stat().st_size}) + "\n")
    return path
