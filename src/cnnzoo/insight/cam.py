"""Class-activation maps (Grad-CAM, Grad-CAM++) for any model of the zoo.

The target layer is found the same way for every family: one forward pass with a hook on every
module records what each returns, in the order the modules finish; the last module outside the
classifier head whose output is a 4-D map with more than one position is the layer. A container
finishes after its children, so a stage that ends the features is picked over its last block
(the same tensor). Pooled 1x1 outputs and the classifier (a Linear, or a 1x1 conv on a pooled
map) are never picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import CnnzooError

METHODS = ("gradcam", "gradcam++")


def head_names(model: nn.Module) -> tuple[str, ...]:
    """The classifier and the container it sits in (its pre-logits layers: pool, norm, dropout):
    modules whose output the map must not come from."""
    name = getattr(model, "classifier_name", "fc")
    parent = name.rpartition(".")[0]
    return (name, parent) if parent else (name,)


def _in_head(name: str, heads: tuple[str, ...]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in heads)


def layer_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """(module name, output shape) of every submodule, in the order the modules finish during
    one forward pass of `x` (no gradients). A module called twice is listed twice."""
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def hook(_m, _inp, out, name=name):
            if isinstance(out, torch.Tensor):
                seen.append((name, tuple(out.shape)))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def find_target_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Name of the last module (in execution order, outside the classifier head) whose output
    is [N, C, H, W] with H * W > 1. `x` is one input batch of the size the model will see."""
    heads = head_names(model)
    was_training = model.training
    model.eval()
    try:
        outputs = layer_outputs(model, x[:1])
    finally:
        model.train(was_training)
    chosen = None
    for name, shape in outputs:
        if len(shape) == 4 and shape[2] * shape[3] > 1 and not _in_head(name, heads):
            chosen = name
    if chosen is None:
        raise CnnzooError(
            f"no layer of this model keeps a spatial map at {x.shape[-1]} px input; "
            "give a larger --image-size"
        )
    return chosen


@dataclass
class CamResult:
    maps: torch.Tensor  # float [N, H, W] in [0, 1], the input's size
    classes: torch.Tensor  # int64 [N]: the class each map explains
    probs: torch.Tensor  # float [N]: the model's probability of that class
    layer: str


class CamExplainer:
    """Grad-CAM / Grad-CAM++ maps of `model` at `layer` (found automatically when None)."""

    def __init__(self, model: nn.Module, layer: str | None = None, method: str = "gradcam"):
        if method not in METHODS:
            raise CnnzooError(f"unknown CAM method {method!r}; use {' or '.join(METHODS)}")
        self.model = model
        self.method = method
        self.layer = layer
        if layer is not None:
            names = dict(model.named_modules())
            if layer not in names or not layer:
                close = [n for n in names if n and layer.split(".")[-1] in n][:5]
                hint = f" (e.g. {', '.join(close)})" if close else ""
                raise CnnzooError(f"--layer {layer!r} is not a module of this model{hint}")

    def __call__(self, x: torch.Tensor, target: torch.Tensor | None = None) -> CamResult:
        """Maps for a preprocessed batch `x`; `target` classes (default: the top class)."""
        model = self.model
        if self.layer is None:
            self.layer = find_target_layer(model, x)
        module = model.get_submodule(self.layer)
        captured: dict[str, torch.Tensor] = {}

        def hook(_m, _inp, out):
            if not isinstance(out, torch.Tensor) or out.dim() != 4:
                raise CnnzooError(
                    f"layer {self.layer} returns {type(out).__name__} "
                    f"{tuple(getattr(out, 'shape', ()))}, not a [N, C, H, W] map; pick another"
                )
            captured["act"] = out  # the last call wins: a module used twice ends with its output

        was_training = model.training
        model.eval()
        handle = module.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)  # gradients flow even through frozen weights
                logits = model(x).float()
                if target is None:
                    target = logits.argmax(1)
                target = target.to(logits.device).long()
                chosen = logits.gather(1, target[:, None]).sum()
                act = captured["act"]
                grad = torch.autograd.grad(chosen, act)[0]
        finally:
            handle.remove()
            model.train(was_training)
        act, grad = act.detach().float(), grad.detach().float()
        if self.method == "gradcam":
            weights = grad.mean(dim=(2, 3), keepdim=True)
        else:
            weights = _gradcam_pp_weights(act, grad)
        cam = F.relu((weights * act).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        lo = cam.flatten(1).min(1).values[:, None, None]
        hi = cam.flatten(1).max(1).values[:, None, None]
        cam = (cam - lo) / (hi - lo).clamp(min=1e-12)
        probs = logits.detach().softmax(1).gather(1, target[:, None])[:, 0]
        return CamResult(cam.cpu(), target.cpu(), probs.cpu(), self.layer)


def _gradcam_pp_weights(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ channel weights (Chattopadhay et al., 2018), with the exponential of the
    score, whose higher derivatives are powers of the first, as the paper suggests."""
    g2, g3 = grad.pow(2), grad.pow(3)
    denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    return (alpha * F.relu(grad)).sum(dim=(2, 3), keepdim=True)
