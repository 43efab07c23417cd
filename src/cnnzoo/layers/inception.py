"""Inception blocks: conv-BN-ReLU with named parts, the multi-branch Inception module (seed 004's
four-branch block, generic over branch specs) and the Inception-ResNet residual blocks A/B/C.

An Inception module runs several branches on the same input and concatenates their outputs along
channels. A branch is a list of steps: `Conv` (conv-BN-ReLU), `Pool`, or `Fork` (sub-branches run
on the same tensor and concatenated, as in Inception-v3's expanded 1x3 / 3x1 outputs).

How a branch is named decides the state-dict keys, so this one class reproduces the layouts of
torchvision and timm:

- `Branch(steps, name="branch2")`: one child "branch2", the step itself when there is one step,
  else a Sequential (keys `branch2.0.conv.weight`, ...); GoogLeNet, timm's Inception-v4 / -ResNet.
- `Branch(steps)` (no name): each step is its own child, named by its `name`
  (keys `branch3x3_1.conv.weight`); unnamed pools, which hold no state, are registered as
  pool0, pool1, ... so that they show in `print(model)`, hooks and summaries.
  torchvision's Inception-v3 and timm's Inception-v4 C block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

Size = int | tuple[int, int]


class ConvBnAct(nn.Module):
    """conv (no bias) -> BatchNorm -> ReLU, as children `conv` / `bn` (torchvision's BasicConv2d
    and timm's ConvNormAct both use these names). The Inception networks use BN eps 1e-3, the
    value of the TensorFlow originals."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: Size = 1,
        stride: int = 1,
        padding: Size = 0,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=bn_eps)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


# ---------------------------------------------------------------- branch specs
def _pair(v: Size) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else v


@dataclass(frozen=True)
class Conv:
    """A conv-BN-ReLU step. `padding=None` means "same" at stride 1 and none ("valid", the
    papers' V) when strided; `name` is its attribute name inside an unnamed branch."""

    out: int
    kernel: Size = 1
    stride: int = 1
    padding: Size | None = None
    name: str = ""

    def pad(self) -> Size:
        if self.padding is not None:
            return self.padding
        if self.stride != 1:
            return 0
        kh, kw = _pair(self.kernel)
        return (kh // 2, kw // 2) if kh != kw else kh // 2


@dataclass(frozen=True)
class Pool:
    """A max / average pooling step; keeps the channel count."""

    kind: str = "max"  # "max" | "avg"
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False
    count_include_pad: bool = True  # average pools only
    name: str = ""

    def make(self) -> nn.Module:
        if self.kind == "max":
            return nn.MaxPool2d(self.kernel, self.stride, self.padding, ceil_mode=self.ceil_mode)
        if self.kind == "avg":
            return nn.AvgPool2d(
                self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad
            )
        raise ValueError(f"unknown pool kind {self.kind!r}; choose 'max' or 'avg'")


@dataclass(frozen=True)
class Fork:
    """Parallel sub-branches on the current tensor, concatenated (only inside unnamed branches)."""

    branches: tuple[Branch, ...]


@dataclass(frozen=True)
class Branch:
    steps: tuple[Conv | Pool | Fork, ...]
    name: str = ""  # one child of this name; "" for each step as its own child


def chain(prefix: str, *convs: Conv) -> tuple[Conv, ...]:
    """Name a run of convs prefix_1, prefix_2, ... (torchvision's Inception-v3 naming)."""
    return tuple(
        Conv(c.out, c.kernel, c.stride, c.padding, f"{prefix}_{i + 1}") for i, c in enumerate(convs)
    )


@dataclass(frozen=True)
class Residual:
    """Spec of an InceptionResidual block (its width is the input's)."""

    branches: tuple[Branch, ...]
    scale: float = 1.0
    act: bool = True


@dataclass(frozen=True)
class Stack:
    """Spec of a Sequential of layers (keys name.0.*, name.1.*, ...);
    `Stack((block,) * n)` repeats a block."""

    layers: tuple[LayerSpec, ...]


LayerSpec = Conv | Pool | Residual | Stack | tuple[Branch, ...]
Pool_ = (nn.MaxPool2d, nn.AvgPool2d)


def spec_stride(spec: LayerSpec | Fork | Branch) -> int:
    """How much a row of a table downsamples (an Inception module: its widest stride)."""
    if isinstance(spec, (Conv, Pool)):
        return spec.stride
    if isinstance(spec, Residual):
        return 1
    if isinstance(spec, Branch):
        return math.prod(spec_stride(step) for step in spec.steps)
    if isinstance(spec, Stack):
        return math.prod(spec_stride(layer) for layer in spec.layers)
    branches = spec.branches if isinstance(spec, Fork) else spec
    return max(spec_stride(b) for b in branches)


def make_layer(spec: LayerSpec, in_chs: int, bn_eps: float = 1e-3) -> tuple[nn.Module, int]:
    """Build one row of an Inception-line network table; returns the module and its width.

    A Conv is a conv-BN-ReLU, a Pool a pooling layer, a tuple of Branches an Inception module,
    a Residual an Inception-ResNet block, a Stack a Sequential of layers."""
    if isinstance(spec, Conv):
        return ConvBnAct(in_chs, spec.out, spec.kernel, spec.stride, spec.pad(), bn_eps), spec.out
    if isinstance(spec, Pool):
        return spec.make(), in_chs
    if isinstance(spec, Residual):
        return InceptionResidual(in_chs, spec.branches, spec.scale, spec.act, bn_eps), in_chs
    if isinstance(spec, Stack):
        layers = []
        for layer in spec.layers:
            m, in_chs = make_layer(layer, in_chs, bn_eps)
            layers.append(m)
        return nn.Sequential(*layers), in_chs
    m = Inception(in_chs, spec, bn_eps)
    return m, m.out_channels


# ---------------------------------------------------------------- the module
class Inception(nn.Module):
    """Branches on the same input, concatenated along channels; see the module docstring for the
    spec. `out_channels` is the sum of the branches' widths."""

    def __init__(self, in_chs: int, branches: Sequence[Branch], bn_eps: float = 1e-3) -> None:
        super().__init__()
        self.bn_eps = bn_eps
        # per branch, what to call in order: a child's name (looked up at call time, so that
        # swapping a child, e.g. for a fused or quantised one, takes effect) or a tuple of
        # sub-paths (a fork)
        self._paths: list[list] = []
        width = 0
        for b in branches:
            path, c = self._build_branch(b, in_chs)
            self._paths.append(path)
            width += c
        self.out_channels = width

    def _step(self, step: Conv | Pool, cin: int) -> tuple[nn.Module, int]:
        if isinstance(step, Fork):
            raise TypeError("a fork can only stand in an unnamed branch")
        return make_layer(step, cin, self.bn_eps)

    def _build_branch(self, branch: Branch, cin: int) -> tuple[list, int]:
        if branch.name:
            mods = []
            for step in branch.steps:
                m, cin = self._step(step, cin)
                mods.append(m)
            self.add_module(branch.name, mods[0] if len(mods) == 1 else nn.Sequential(*mods))
            return [branch.name], cin
        path: list = []
        for step in branch.steps:
            if isinstance(step, Fork):
                subs = [self._build_branch(b, cin) for b in step.branches]
                path.append(tuple(p for p, _ in subs))
                cin = sum(c for _, c in subs)
                continue
            m, cin = self._step(step, cin)
            if isinstance(step, Conv) and not step.name:
                raise ValueError("a conv in an unnamed branch needs a name")
            name = step.name or f"pool{sum(isinstance(c, Pool_) for c in self.children())}"
            self.add_module(name, m)
            path.append(name)
        return path, cin

    def _run(self, path: Sequence, x: torch.Tensor) -> torch.Tensor:
        for step in path:
            if isinstance(step, tuple):  # a fork: sub-paths on the same input
                x = torch.cat([self._run(p, x) for p in step], 1)
            else:
                x = getattr(self, step)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._run(p, x) for p in self._paths], 1)


def four_branch(
    c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int, k5: int = 5
) -> tuple[Branch, ...]:
    """Seed 004's / GoogLeNet's Inception module, a row of GoogLeNet's table 1: 1x1 | 1x1 -> 3x3 |
    1x1 -> 5x5 | 3x3 max-pool -> 1x1, branches named branch1..branch4. torchvision's GoogLeNet
    uses a 3x3 where the paper has the 5x5 (k5=3), and a ceil-mode pool."""
    return (
        Branch((Conv(c1),), "branch1"),
        Branch((Conv(c3r), Conv(c3, 3)), "branch2"),
        Branch((Conv(c5r), Conv(c5, k5)), "branch3"),
        Branch((Pool("max", 3, 1, 1, ceil_mode=True), Conv(pool_proj)), "branch4"),
    )


# ---------------------------------------------------------------- Inception-ResNet
class InceptionResidual(Inception):
    """Inception-ResNet block: x + scale * (1x1 linear projection of the concatenated branches),
    then ReLU (`act=False` for the last block of Inception-ResNet-v2). The projection has a bias
    and no BN; the scale (0.1-0.3) keeps the residuals small so that training stays stable."""

    def __init__(
        self,
        channels: int,
        branches: Sequence[Branch],
        scale: float = 1.0,
        act: bool = True,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__(channels, branches, bn_eps)
        self.conv2d = nn.Conv2d(self.out_channels, channels, 1, bias=True)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.scale = scale
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2d(super().forward(x)) * self.scale + x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


# The three residual blocks of Inception-ResNet-v2 (its figures 16, 17 and 19), by grid size.
# Seed 004's block is A: 32 | 32 -> 32 | 32 -> 48 -> 64, then 1x1 back to the input width.
IR_A_BRANCHES = (
    Branch((Conv(32),), "branch0"),
    Branch((Conv(32), Conv(32, 3)), "branch1"),
    Branch((Conv(32), Conv(48, 3), Conv(64, 3)), "branch2"),
)
IR_B_BRANCHES = (
    Branch((Conv(192),), "branch0"),
    Branch((Conv(128), Conv(160, (1, 7)), Conv(192, (7, 1))), "branch1"),
)
IR_C_BRANCHES = (
    Branch((Conv(192),), "branch0"),
    Branch((Conv(192), Conv(224, (1, 3)), Conv(256, (3, 1))), "branch1"),
)
