"""Convolution + activation (+ residual add) fusion for CPU inference, on oneDNN.

After BatchNorm folding (engine/fast.py) a ResNet block is still conv -> ReLU -> conv -> ReLU
-> conv -> add -> ReLU, and each ReLU and add is a full pass over a large activation in
memory. oneDNN can apply them inside the convolution as post-ops
(`torch.ops.mkldnn._convolution_pointwise`): the activation is written once. `fuse_conv_ops`
traces the model with torch.fx, replaces each conv whose only reader is an activation (or an
add, optionally followed by an activation) with one fused call, and checks that the fused
graph gives the same output as the model on the example before it is kept.

It is for inference only (no gradients through the fused op) and for CPU tensors; a model
that cannot be traced (data-dependent control flow, hooks such as a features-only backbone's)
is left as it was.
"""

from __future__ import annotations

import logging
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

log = logging.getLogger(__name__)

# activation -> (oneDNN post-op name, its scalars); modules by exact type, since a subclass
# may compute something else
_ACT_MODULES: dict[type, tuple[str, list[float]]] = {
    nn.ReLU: ("relu", []),
    nn.ReLU6: ("hardtanh", [0.0, 6.0]),
    nn.SiLU: ("swish", []),
    nn.Hardswish: ("hardswish", []),
    nn.Hardsigmoid: ("hardsigmoid", []),
    nn.Sigmoid: ("sigmoid", []),
    nn.Tanh: ("tanh", []),
}
_ACT_FUNCTIONS = {
    F.relu: ("relu", []),
    torch.relu: ("relu", []),
    torch.relu_: ("relu", []),
    F.relu6: ("hardtanh", [0.0, 6.0]),
    F.silu: ("swish", []),
    F.hardswish: ("hardswish", []),
    F.hardsigmoid: ("hardsigmoid", []),
    torch.sigmoid: ("sigmoid", []),
    torch.tanh: ("tanh", []),
}
_ACT_METHODS = {"relu": ("relu", []), "relu_": ("relu", []), "sigmoid": ("sigmoid", [])}
_ADDS = (operator.add, torch.add)  # fx traces `a += b` as an add


class FusedConv2d(nn.Module):
    """A 2-D convolution with its activation, and optionally a residual add before it, applied
    by oneDNN in one pass: act(conv(x) [+ other])."""

    def __init__(self, conv: nn.Conv2d, act: str, scalars: list[float], add: bool) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.padding = list(conv.padding)
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.act = act
        self.scalars = scalars
        self.add = add
        self.unary = None if act == "none" else act  # the binary op takes None for no activation

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, {'add + ' if self.add else ''}{self.act}"

    def forward(self, x: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        geometry = (self.padding, self.stride, self.dilation, self.groups)
        if self.add:
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x,
                other,
                self.weight,
                self.bias,
                *geometry,
                "add",
                None,
                self.unary,
                self.scalars,
                "",
            )
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.weight, self.bias, *geometry, self.act, self.scalars, ""
        )


def _activation(gm: fx.GraphModule, node: fx.Node) -> tuple[str, list[float]] | None:
    """The oneDNN post-op a node computes, when it is a plain activation of its first input."""
    if node.op == "call_module":
        return _ACT_MODULES.get(type(gm.get_submodule(node.target)))
    if node.op == "call_function" and node.target in _ACT_FUNCTIONS and not node.kwargs:
        return _ACT_FUNCTIONS[node.target]
    if node.op == "call_method" and node.target in _ACT_METHODS and len(node.args) == 1:
        return _ACT_METHODS[node.target]
    return None


def _fusable_conv(gm: fx.GraphModule, node: fx.Node) -> nn.Conv2d | None:
    if node.op != "call_module":
        return None
    conv = gm.get_submodule(node.target)
    if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros":
        return None
    if isinstance(conv.padding, str):  # "same"/"valid": oneDNN takes explicit padding
        return None
    return conv


def _meta(node: object):
    return node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None


def _only_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _same_tensor_shape(a: fx.Node, b: object) -> bool:
    ma, mb = _meta(a), _meta(b)
    return (
        ma is not None
        and mb is not None
        and hasattr(mb, "shape")
        and tuple(ma.shape) == tuple(mb.shape)
        and ma.dtype == mb.dtype
    )


def _rewrite(gm: fx.GraphModule) -> int:
    """Replace conv -> act and conv -> add [-> act] chains in `gm`'s graph; returns how many."""
    graph = gm.graph
    for node in list(graph.nodes):  # folded norms are Identities: take them out of the chains
        if node.op == "call_module" and type(gm.get_submodule(node.target)) is nn.Identity:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    fused = 0
    for node in list(graph.nodes):
        conv = _fusable_conv(gm, node)
        user = _only_user(node) if conv is not None else None
        out = _meta(node)
        # on a 1x1 map (squeeze-excite) the fused op, which reorders the weight on every call,
        # costs several times the plain convolution (measured: 116 us against 15 us, 960->240)
        if user is None or out is None or tuple(out.shape[-2:]) == (1, 1):
            continue
        act = _activation(gm, user)
        other = None
        if act is None and user.op == "call_function" and user.target in _ADDS:
            if len(user.args) != 2 or user.kwargs:
                continue
            other = user.args[1] if user.args[0] is node else user.args[0]
            # the add must not broadcast, and `other` must not be this conv's output as well
            if other is node or not _same_tensor_shape(node, other):
                continue
            after = _only_user(user)
            act = _activation(gm, after) if after is not None else None
            last = after if act is not None else user
            act = act or ("none", [])
        elif act is not None:
            last = user
        else:
            continue
        name = f"fused_{fused}"
        gm.add_submodule(name, FusedConv2d(conv, *act, add=other is not None))
        with graph.inserting_before(last):
            args = (node.args[0],) if other is None else (node.args[0], other)
            new = graph.call_module(name, args)
        new.meta = dict(last.meta)  # its shape, for a later add that reads it
        last.replace_all_uses_with(new)
        for dead in (last, user, node):  # from the end of the chain back to the conv
            if dead in graph.nodes and not dead.users:
                graph.erase_node(dead)
        fused += 1
    graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return fused


def _has_hooks(model: nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@torch.inference_mode()
def fuse_conv_ops(
    model: nn.Module, example: torch.Tensor, rtol: float = 1e-4
) -> tuple[nn.Module, int]:
    """`model` with its conv -> activation and conv -> add [-> activation] chains fused
    (a torch.fx GraphModule), and how many were fused; `model` itself when nothing can be
    fused here. The fused output must equal `model(example)` within `rtol` x max(1, max|out|)
    (oneDNN computes the same convolution, so in fp32 they agree to rounding), else the model
    is returned as it was. For inference on CPU only."""
    if example.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return model, 0
    if _has_hooks(model):  # tracing would drop what the hooks do
        return model, 0
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:  # control flow fx cannot trace: fuse the parts that trace
        log.debug("no trace of %s (%s); fusing its children", type(model).__name__, e)
        return _fuse_children(model, example, rtol)
    try:
        ShapeProp(gm).propagate(example)
        count = _rewrite(gm)
        if count == 0:
            return model, 0
        want, got = model(example), gm(example)
        if not _agrees(want, got, rtol):
            log.debug("fused %s differs from the model; kept unfused", type(model).__name__)
            return model, 0
    except Exception as e:  # what cannot be fused runs unfused, as before
        log.debug("no conv fusion for %s: %s", type(model).__name__, e)
        return model, 0
    return gm, count


def _fuse_children(model: nn.Module, example: torch.Tensor, rtol: float) -> tuple[nn.Module, int]:
    """A model whose own forward does not trace (a shape-dependent branch in its head, as
    VGG's and AlexNet's pooling) can still have children that do (their `features`): fuse
    each child on the input it sees in one run, in a shallow copy that shares the weights,
    and keep the copy only if its output equals the model's."""
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, args):
            if name not in inputs and len(args) == 1 and isinstance(args[0], torch.Tensor):
                inputs[name] = args[0]

        return hook

    handles = [m.register_forward_pre_hook(keep(n)) for n, m in model.named_children()]
    try:
        want = model(example)
    finally:
        for h in handles:
            h.remove()
    copy = type(model).__new__(type(model))
    copy.__dict__ = {**model.__dict__, "_modules": dict(model._modules)}
    total = 0
    for name, x in inputs.items():
        child = model._modules[name]
        if _has_hooks(child) or not any(True for _ in child.parameters()):
            continue
        fused, n = fuse_conv_ops(child, x, rtol)
        if n:
            copy._modules[name] = fused
            total += n
    if total == 0 or not _agrees(want, copy(example), rtol):
        return model, 0
    return copy, total


def _agrees(want: object, got: object, rtol: float) -> bool:
    if isinstance(want, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return False
        w, g = want.float(), got.float()
        return bool((w - g).abs().max() <= rtol * max(1.0, w.abs().max().item()))
    if isinstance(want, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(want)
            and all(_agrees(a, b, rtol) for a, b in zip(want, got, strict=True))
        )
    return False
