"""Building models by name: `create_model`, `list_models`, the option checks made before a
builder runs. Importing `cnnzoo.models` (this package) registers every family first."""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from torch import nn

import cnnzoo.models  # noqa: F401  (importing the package registers every family)
from cnnzoo.cfg import ModelCfg
from cnnzoo.errors import CnnzooError, OptionError
from cnnzoo.hub import fetch_weights, published_weights, split_name
from cnnzoo.models.features import to_features
from cnnzoo.registry import REGISTRY, ModelEntry
from cnnzoo.weights import checkpoint_defaults, load_weights

log = logging.getLogger("cnnzoo")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, sorted."""
    return sorted(n for n in REGISTRY if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    if name not in REGISTRY:
        model, tag = split_name(name)
        if tag and model in REGISTRY:  # a pretrained tag where only an architecture fits
            raise CnnzooError(
                f"{name} names published weights; give the model {model} and the tag "
                f"separately (cnnzoo train --model {model} --pretrained {tag})"
            )
        close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnzoo models`"
        raise CnnzooError(f"unknown model {name!r}{hint}")
    return REGISTRY[name]


def get_model_cfg(name: str) -> ModelCfg:
    return get_entry(name).cfg


def check_overrides(name: str, overrides: dict) -> None:
    """Values the builders would only trip over later, in the middle of training: a rate
    that is not a number in [0, 1), a number that is not finite."""
    for key, value in overrides.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise OptionError(f"bad option for {name}: {key}={value} is not a finite number")
        if key.endswith(("_rate", "dropout")) and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise OptionError(
                    f"bad option for {name}: {key} must be a number in [0, 1), got {value!r:.40}"
                )
            if not 0 <= value < 1:
                raise OptionError(f"bad option for {name}: {key} must be in [0, 1), got {value}")


def _check_options(entry: ModelEntry, options: dict) -> None:
    """Refuse options the builder does not take, in one line, before building: a TypeError
    raised *inside* a builder is a bug and must surface as one, not as "bad option"."""
    builder = inspect.unwrap(entry.builder)
    params = inspect.signature(builder).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        # the registered functions pass **kwargs on to their family's class: check that one
        target = inspect.signature(builder).return_annotation
        cls = _family_class(builder, target)
        if cls is None:
            return
        params = inspect.signature(cls).parameters
    known = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
    unknown = sorted(set(options) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        choices = ", ".join(sorted(known - {"spec", "cfg"}))
        raise OptionError(
            f"{entry.name} takes no option {', '.join(unknown)}{hint}; its options: {choices}"
        )


def _family_class(builder: Callable, annotation) -> type | None:
    if isinstance(annotation, str):
        annotation = builder.__globals__.get(annotation)
    return annotation if isinstance(annotation, type) else None


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | Path | None = None,
    pretrained: bool | str = False,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **overrides,
) -> nn.Module:
    """Build a registered model.

    `pretrained=True` loads the reference's published ImageNet weights (downloaded once and
    cached, see `cnnzoo.hub`; a string names another published set, e.g. "IMAGENET1K_V2").
    `weights`: a torchvision / timm / cnnzoo checkpoint (.pth, .pt, .safetensors or a cnnzoo
    run folder, whose sidecar gives the class count, input channels and model options the
    caller leaves out). A classifier of another size is re-initialised, a first convolution for
    other input channels adapted (each said once). `num_classes=0`: no classifier, the model
    returns pooled features. `features_only=True`: a backbone whose forward returns the feature
    maps at `out_indices` of `model.feature_info` (all by default); a classifier checkpoint loads
    into it, and the layers it no longer has are dropped and said once. `overrides` are the
    family's own options (drop_path_rate, stem="cifar", ...).

    `name` may carry a published tag as timm spells it, "resnet50.a1_in1k": the model is built
    with that tag's eval transform as `model.cfg` (and its weights when `pretrained=True`)."""
    tagged = None
    if name not in REGISTRY:
        arch, tag = split_name(name)
        if tag and arch in REGISTRY:
            if pretrained not in (True, False) and str(pretrained).lower() != tag.lower():
                raise CnnzooError(f"{name} names the tag {tag}; pretrained={pretrained!r} another")
            tagged = published_weights(arch, tag)
            name, pretrained = arch, (tagged.tag if pretrained else False)
    entry = get_entry(name)
    file_facts: dict = {}
    if pretrained and weights is not None:
        raise CnnzooError("give either pretrained or weights, not both")
    if weights is not None:
        weights, facts, file_facts = checkpoint_defaults(weights, name)
        if num_classes is None:
            num_classes = facts.get("num_classes")
        if in_chans is None:
            in_chans = facts.get("in_chans")
        overrides = {**facts.get("model_overrides", {}), **overrides}
    if num_classes is None:
        num_classes = entry.cfg.num_classes
    if in_chans is None:
        in_chans = 3
    if num_classes < 0:
        raise CnnzooError(f"num_classes must be >= 0 (0: no classifier), got {num_classes}")
    if in_chans < 1:
        raise CnnzooError(f"in_chans must be at least 1, got {in_chans}")
    check_overrides(name, overrides)
    if out_indices is not None and not features_only:
        raise OptionError("out_indices selects feature maps: pass features_only=True too")
    _check_options(entry, overrides)
    cfg = entry.cfg if tagged is None else tagged.model_cfg(entry.cfg)
    if pretrained:  # fetched once the options are known to be good
        tag = None if pretrained is True else str(pretrained)
        weights = fetch_weights(name, tag)
        cfg = published_weights(name, tag).model_cfg(entry.cfg)
    try:
        model = entry.builder(num_classes=num_classes, in_chans=in_chans, **overrides)
    except OptionError as e:  # the builders' own checks: unknown stem, bad table values, ...
        raise OptionError(f"bad option for {name}: {e}") from None
    model.cfg = cfg
    model.model_name = name
    model.model_overrides = dict(overrides)
    # what the weights file says of itself (a cnnzoo sidecar: normalisation, classes, ...),
    # read once here so that callers need not open the file again
    model.checkpoint_facts = file_facts if weights is not None else {}
    if weights is not None:
        load_weights(model, weights)
    if features_only:
        dropped = to_features(model, out_indices)
        if weights is not None and dropped:
            log.info(
                "%s features_only: the checkpoint's %s dropped (not part of the backbone)",
                name,
                ", ".join(dropped),
            )
    return model


def weights_cfg(model: str, tag: str | None = None) -> ModelCfg:
    """`model`'s cfg with the eval transform of its published weight set `tag` (default: the
    first, which the cfg itself describes)."""
    return published_weights(model, tag).model_cfg(get_model_cfg(model))
