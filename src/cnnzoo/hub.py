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

from .download import download, file_digest
from .errors import CnnzooError

log = logging.getLogger("cnnzoo")

_TV = "https://download.pytorch.org/models/"
_TIMM_GH = "https://github.com/rwightman/pytorch-image-models/releases/download/"
_TIMM_HF = "https://huggingface.co/timm/"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.[a-z]+$")


@dataclass(frozen=True)
class PublishedWeights:
    """One published weight file of a model."""

    model: str
    tag: str  # the reference's name for this weight set: IMAGENET1K_V1, a1_in1k, ...
    url: str
    file: str  # name in the cache

    @property
    def sha256(self) -> str | None:
        """The SHA-256 prefix the file name carries, or None when none was published."""
        m = _HASH_IN_NAME.search(self.file)
        return m.group(1) if m else None


# model -> [(tag, url)], default first: torchvision's best weights (IMAGENET1K_V2 where it
# exists), whose resize / crop / interpolation the registry's ModelCfg describes.
_TABLE: dict[str, list[tuple[str, str]]] = {
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
}


def _cache_name(model: str, tag: str, url: str) -> str:
    # Hugging Face files are all called model.safetensors: name them after model and tag
    name = url.rsplit("/", 1)[1]
    return f"{model}.{tag}.safetensors" if name == "model.safetensors" else name


PUBLISHED: dict[str, list[PublishedWeights]] = {
    model: [PublishedWeights(model, tag, url, _cache_name(model, tag, url)) for tag, url in rows]
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
