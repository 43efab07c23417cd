"""The fast inference form of a model: BatchNorm folded into the convolution before it,
on CPU each convolution fused with the activation or residual add after it (engine/fuse.py),
channels-last activations, no autograd, bf16 where the CPU does bf16 fast, optional
`torch.compile`. `prepare_inference(model, example, precision="auto")` times the candidates
(these, and other engines' given to it: infer/engines.py) on the real input and keeps the
fastest, so the automatic choice is never the slower one.

Folding is found by running the model once, not by reading its code: a BatchNorm is folded
into a convolution when the BatchNorm's input is that convolution's output and nothing else
reads it. That covers ConvNormAct Sequentials and conv/bn attribute pairs alike in every family,
and leaves pre-activation norms (DenseNet, ResNetV2) alone.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnzoo.cfg import INFERENCE_PRECISIONS
from cnnzoo.errors import CnnzooError, OptionError
from cnnzoo.infer.engines import (
    BACKENDS,
    CANDIDATES,
    Builder,
    InferencePath,
    build_candidates,
    fastest,
    wanted,
)
from cnnzoo.infer.fuse import fuse_conv_ops
from cnnzoo.infer.machine import bf16_is_native

# exact types only: a subclass may change what forward does (ResNetV2's BatchNormReLU adds a
# ReLU; a weight-standardised conv rescales its weight), and folding would drop that
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class _TensorReads(TorchFunctionMode):
    """Counts how many torch calls read each watched tensor (the convolutions' outputs); calls
    made inside a BatchNorm are not counted (they are the BatchNorm's own read of its input)."""

    def __init__(self) -> None:
        super().__init__()
        self.watched: dict[int, torch.Tensor] = {}  # holding the tensor keeps its id unique
        self.reads: dict[int, int] = {}
        self.inside_norm = 0

    def watch(self, t: torch.Tensor) -> None:
        self.watched[id(t)] = t
        self.reads[id(t)] = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.inside_norm:
            for a in (*args, *kwargs.values()):
                for t in a if isinstance(a, (list, tuple)) else (a,):
                    if isinstance(t, torch.Tensor) and self.watched.get(id(t)) is t:
                        self.reads[id(t)] += 1
        return func(*args, **kwargs)


def find_conv_norm_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, norm name) pairs where the norm reads only that conv's output, found by one
    forward pass of `example` in eval mode. Modules called more than once are left out."""
    names = {m: n for n, m in model.named_modules()}
    outputs: dict[int, nn.Module] = {}  # id(output) -> conv
    norm_inputs: list[tuple[nn.Module, torch.Tensor]] = []
    calls: dict[nn.Module, int] = {}
    reads = _TensorReads()

    def conv_done(m, _inputs, out):
        calls[m] = calls.get(m, 0) + 1
        outputs[id(out)] = m
        reads.watch(out)

    def norm_start(m, inputs):
        calls[m] = calls.get(m, 0) + 1
        norm_inputs.append((m, inputs[0]))
        reads.inside_norm += 1

    def norm_done(_m, _inputs, _out):
        reads.inside_norm -= 1

    hooks = []
    for m in model.modules():
        if type(m) in _CONVS:
            hooks.append(m.register_forward_hook(conv_done))
        elif type(m) in _NORMS:
            hooks.append(m.register_forward_pre_hook(norm_start))
            hooks.append(m.register_forward_hook(norm_done))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), reads:
            model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    pairs = []
    for norm, x in norm_inputs:
        conv = outputs.get(id(x)) if reads.watched.get(id(x)) is x else None
        if (
            conv is not None
            and reads.reads[id(x)] == 0
            and calls[conv] == 1
            and calls[norm] == 1
            and norm.running_mean is not None
            and conv.out_channels == norm.num_features
        ):
            pairs.append((names[conv], names[norm]))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> int:
    """Fold, in place, every BatchNorm that reads only a convolution's output into that
    convolution (the norm becomes an Identity). Returns how many were folded. The model must
    be used in eval mode afterwards: the folded norms no longer learn."""
    pairs = find_conv_norm_pairs(model, example)
    for conv_name, norm_name in pairs:
        conv = model.get_submodule(conv_name)
        norm = model.get_submodule(norm_name)
        scale = torch.rsqrt(norm.running_var.double() + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        w = conv.weight
        shape = (-1,) + (1,) * (w.ndim - 1)
        conv.weight = nn.Parameter((w.double() * scale.view(shape)).to(w.dtype))
        old_bias = conv.bias.double() if conv.bias is not None else 0.0
        conv.bias = nn.Parameter((old_bias * scale + shift).to(w.dtype))
        parent_name, _, leaf = norm_name.rpartition(".")
        setattr(model.get_submodule(parent_name), leaf, nn.Identity())
    return len(pairs)


class Float32Input(nn.Module):
    """Runs a layer kept in float32 inside a bf16 model (the classifier: its logits decide the
    answer, and a near-tie must not be settled by bf16 rounding)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.float())


def keep_classifier_fp32(model: nn.Module) -> bool:
    """Wrap a cnnzoo model's classifier (`classifier_name`) so that it stays in float32 when the
    model is cast to bf16; returns whether there was one."""
    name = getattr(model, "classifier_name", None)
    if not name:
        return False
    layer = model.get_submodule(name)
    if not isinstance(layer, (nn.Linear, nn.Conv2d)):
        return False
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, Float32Input(layer))
    return True


class FastModel(nn.Module):
    """Wraps a prepared model: moves the input to its layout and dtype, returns float32."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, channels_last: bool) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x).float()


def fast_form(
    model: nn.Module,
    example: torch.Tensor,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = True,
    compile: bool = False,
    fuse: bool = True,
) -> FastModel:
    """A copy of `model` with its BatchNorms folded, in `dtype` and (for 4-D input)
    channels-last, in eval mode with gradients off, and on CPU each convolution fused with the
    activation / residual add that reads it (engine/fuse.py); `model` itself is left as it
    was."""
    fast = copy.deepcopy(model).eval()
    fold_batchnorm(fast, example)
    fast.requires_grad_(False)
    classifier = fast.get_submodule(fast.classifier_name) if keep_classifier_fp32(fast) else None
    fast.to(dtype)
    if classifier is not None:
        classifier.float()
    layout = channels_last and example.ndim == 4
    if layout:
        fast.to(memory_format=torch.channels_last)
    if fuse and not compile:  # inductor fuses on its own, from the plain graph
        x = example.to(dtype)
        x = x.contiguous(memory_format=torch.channels_last) if layout else x
        # bf16 rounds between the unfused ops and not inside the fused ones: a looser check
        fast, _ = fuse_conv_ops(fast, x, rtol=1e-4 if dtype == torch.float32 else 0.05)
    if compile:
        fast = compiled(fast)
    return FastModel(fast, dtype, layout).eval()


def compiled(model: nn.Module) -> nn.Module:
    """`torch.compile` for inference: with freezing, the weights become constants, so inductor
    packs them for oneDNN once instead of on every call (compiling takes a minute or more)."""
    return torch.compile(model, options={"freezing": True})


def is_eager_network(model: nn.Module) -> bool:
    """A PyTorch module with weights whose modules can be copied and rewritten (not a compiled
    TorchScript file, not a wrapper around another runtime's session)."""
    if isinstance(model, torch.jit.ScriptModule):
        return False
    return any(True for _ in model.parameters())


@torch.inference_mode()
def prepare_inference(
    model: nn.Module,
    example: torch.Tensor,
    precision: str = "auto",
    compile: bool = False,
    probe_batch: int = 8,
    probe_seconds: float = 0.5,
    backend: str = "auto",
    engines: dict[str, Builder] | None = None,
    timer=None,
) -> InferencePath:
    """The model to run inference with (infer/engines.py names the candidates).

    - `fp32`: `model` as it is (exact).
    - `fast-fp32`: BatchNorm folded, convolutions fused with their activations, channels-last
      (outputs within ~1e-5 of the exact ones), and the fp32 engines among `engines`.
    - `bf16`: the fast form in bf16, and the bf16 engines.
    - `auto`: all of them (bf16 where the hardware does it).

    `engines` adds other runtimes' candidates (name -> builder, e.g. "openvino bf16"), `backend`
    keeps one engine's. With more than one candidate left, each is timed on
    `example[:probe_batch]` (`engines.fastest`) and the fastest is kept.
    """
    if precision not in INFERENCE_PRECISIONS:
        raise OptionError(
            f"unknown precision {precision!r}; choose one of {', '.join(INFERENCE_PRECISIONS)}"
        )
    if backend not in BACKENDS:
        raise OptionError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    model.eval()
    eager = is_eager_network(model)
    own = getattr(model, "engine_name", None)  # another engine's module names its candidate
    if not eager and own not in CANDIDATES and not engines:  # e.g. TorchScript: as it is
        if precision in ("fast-fp32", "bf16"):
            raise OptionError(
                f"--precision {precision} makes a fast form of a PyTorch model; "
                f"this {type(model).__name__} runs as loaded (leave --precision out)"
            )
        return InferencePath(model, f"{type(model).__name__} as loaded")
    example = example[:probe_batch]
    builders: dict[str, Builder] = {}
    if eager:
        builders["fp32 (exact)"] = lambda: model
        builders["fast fp32"] = lambda: fast_form(model, example[:1])
        if bf16_is_native(example.device) or precision == "bf16":
            builders["fast bf16"] = lambda: fast_form(model, example[:1], torch.bfloat16)
    elif own in CANDIDATES:
        builders[own] = lambda: model
    builders.update(engines or {})
    exact_here = eager and backend in ("auto", "pytorch")
    names = [n for n in builders if n in CANDIDATES and wanted(n, backend, precision, exact_here)]
    if not names:
        have = ", ".join(builders) or "none"
        raise OptionError(
            f"no engine here runs --backend {backend} --precision {precision} "
            f"(candidates: {have}); leave --precision or --backend out"
        )
    built, skipped = build_candidates({n: builders[n] for n in names})
    if not built:
        raise CnnzooError("no engine could run the model: " + "; ".join(skipped.values()))
    timings: dict[str, float] = {}
    if len(built) == 1:
        name = next(iter(built))
    else:
        name, timings = fastest(built, example, probe_seconds, timer)
    chosen = built[name]
    if compile and isinstance(chosen, FastModel):
        chosen.model = compiled(chosen.model)
    return InferencePath(chosen, name, timings, skipped)
