"""Feature extraction: which intermediate maps a network offers (`FeatureInfo`) and how a
classifier becomes a backbone that returns them (`to_features`).

Each family lists its feature points while it builds: the module whose output is the map, its
channels and its reduction (input size / map size, nominally). The defaults follow timm's
`features_only` for the architectures timm has (the deepest map at each stride). A classifier is
turned into a backbone in place, so its parameters keep their reference names and a classifier
checkpoint loads into it: every module after the deepest selected map is replaced by an
Identity (its keys are gone), and forward hooks collect the selected maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.errors import OptionError


@dataclass(frozen=True)
class Feature:
    module: str  # dotted path of the module whose output is the map
    channels: int
    reduction: int


class FeatureInfo(list):
    """A list of `Feature`s with timm's accessors: `channels()`, `reduction()`, `module_name()`
    (all maps, or the one at `idx`)."""

    def channels(self, idx: int | None = None) -> list[int] | int:
        return [f.channels for f in self] if idx is None else self[idx].channels

    def reduction(self, idx: int | None = None) -> list[int] | int:
        return [f.reduction for f in self] if idx is None else self[idx].reduction

    def module_name(self, idx: int | None = None) -> list[str] | str:
        return [f.module for f in self] if idx is None else self[idx].module

    def select(self, out_indices: Sequence[int] | None) -> FeatureInfo:
        """The features at `out_indices` (negative counts from the deepest), in depth order."""
        if out_indices is None:
            return FeatureInfo(self)
        n = len(self)
        picked = []
        for i in out_indices:
            if not isinstance(i, int) or not -n <= i < n:
                raise OptionError(f"out_indices: {i!r} is not in 0..{n - 1} (or -{n}..-1)")
            picked.append(i % n)
        if not picked or len(set(picked)) != len(picked):
            raise OptionError(f"out_indices must name distinct maps in 0..{n - 1}: {out_indices}")
        return FeatureInfo(self[i] for i in sorted(picked))


def stage_end_features(points: Sequence[tuple[str, int, int]]) -> FeatureInfo:
    """Feature points of a plain stack: `points` are (module, out channels, stride) in order;
    a module is a feature point when it is the last one at its reduction."""
    info, reduction = FeatureInfo(), 1
    for i, (name, channels, stride) in enumerate(points):
        reduction *= stride
        next_stride = points[i + 1][2] if i + 1 < len(points) else 2
        if next_stride > 1:
            info.append(Feature(name, channels, reduction))
    return info


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def prune_after(model: nn.Module, last: str) -> list[str]:
    """Replace every module registered after `last` (and outside it) by an Identity; returns
    the replaced names. Registration order is execution order in every cnnzoo network, which the
    feature tests check map by map."""
    dropped: list[str] = []
    seen = False
    for name, _ in list(model.named_modules()):
        if name == last:
            seen = True
        elif not seen or not name or name.startswith(last + ".") or last.startswith(name + "."):
            continue
        elif any(name.startswith(d + ".") for d in dropped):
            continue
        else:
            dropped.append(name)
    for name in dropped:
        _replace(model, name, nn.Identity())
    return dropped


class _Collector:
    """A forward hook that stores one module's output at a fixed place of a shared list."""

    def __init__(self, store: list, index: int) -> None:
        self.store, self.index = store, index

    def __call__(self, module: nn.Module, args, output: torch.Tensor) -> None:
        self.store[self.index] = output


def to_features(model: nn.Module, out_indices: Sequence[int] | None = None) -> list[str]:
    """Turn `model` (a cnnzoo Classifier) into a backbone whose forward returns the maps at
    `out_indices` of its `feature_info`; returns the names of the modules it dropped."""
    info = model.feature_info.select(out_indices)
    dropped = prune_after(model, info[-1].module)
    model.feature_info = info
    model.num_classes = 0
    model._feature_maps = [None] * len(info)
    for i, feature in enumerate(info):
        hook = _Collector(model._feature_maps, i)
        model.get_submodule(feature.module).register_forward_hook(hook)
    return dropped
