"""Per-layer summary: output shapes, parameters and multiply-adds, measured by running the model.

Multiply-adds count what dominates the cost and what torchvision reports as "GFLOPS":
convolutions (k*k*Cin/groups per output element) and linear layers (in_features per output).
Norms, activations, pooling and element-wise ops are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class LayerRow:
    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class Summary:
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    macs: int  # per sample
    activation_bytes: int  # per sample, outputs of leaf layers
    input_size: tuple[int, ...]
    stage_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def table(self) -> str:
        w_name = max([len("Layer")] + [len("  " * (r.depth - 1) + r.name) for r in self.rows])
        w_type = max([len("Type")] + [len(r.type) for r in self.rows])
        head = f"{'Layer':<{w_name}}  {'Type':<{w_type}}  {'Output shape':<20} {'Params':>12} {'Mult-adds':>15}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            shape = "x".join(map(str, r.output_shape[1:])) if r.output_shape else "-"
            name = "  " * (r.depth - 1) + r.name
            lines.append(
                f"{name:<{w_name}}  {r.type:<{w_type}}  {shape:<20} {r.params:>12,} {r.macs:>15,}"
            )
        lines.append("-" * len(head))
        nontrain = self.total_params - self.trainable_params
        lines += [
            f"Input size:            {'x'.join(map(str, self.input_size))}",
            f"Total params:          {self.total_params:,}",
            f"Trainable params:      {self.trainable_params:,}",
            f"Non-trainable params:  {nontrain:,}",
            f"Multiply-adds:         {self.gmacs:.3f} G (per image)",
            f"Activation memory:     {self.activation_bytes / 2**20:.1f} MiB (per image, forward)",
            f"Parameter memory:      {self.total_params * 4 / 2**20:.1f} MiB (fp32)",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _layer_macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        return out.numel() * k
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    return 0


def summary(
    model: nn.Module,
    input_size: tuple[int, ...] | int = (1, 3, 224, 224),
    depth: int = 3,
    device: str | torch.device = "cpu",
) -> Summary:
    """Run one forward pass on zeros and tabulate every module down to `depth` levels.

    A row's parameters and multiply-adds include those of the modules inside it; a module called
    several times in one forward pass (a shared layer) gets one row per call.
    """
    if isinstance(input_size, int):
        input_size = (1, 3, input_size, input_size)
    elif len(input_size) == 3:
        input_size = (1, *input_size)
    names = {m: n for n, m in model.named_modules()}
    leaf_macs: dict[str, int] = {}
    leaf_act: list[int] = [0]
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def hook(m: nn.Module, _inp, out) -> None:
        name = names[m]
        t = out[0] if isinstance(out, (tuple, list)) else out
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else ()
        if not any(True for _ in m.children()) and isinstance(t, torch.Tensor):
            leaf_macs[name] = leaf_macs.get(name, 0) + _layer_macs(m, t)
            leaf_act[0] += t.numel() * t.element_size()
        calls.append((name, m, shape))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    batch = input_size[0]

    def macs_under(prefix: str) -> int:
        return sum(v for k, v in leaf_macs.items() if k == prefix or k.startswith(prefix + "."))

    rows: list[LayerRow] = []
    # forward hooks fire when a module finishes, so parents come after children: reorder by
    # first appearance of the name prefix to read top-down.
    seen: set[str] = set()
    order: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    for name, m, shape in calls:
        d = name.count(".") + 1
        if d > depth or name in seen:
            continue
        seen.add(name)
        order.append((name, m, shape))
    first_child_pos: dict[str, int] = {}
    for i, (name, _, _) in enumerate(order):
        parts = name.split(".")
        for j in range(1, len(parts) + 1):
            first_child_pos.setdefault(".".join(parts[:j]), i)
    order.sort(key=lambda row: (first_child_pos[row[0]], row[0].count(".")))
    for name, m, shape in order:
        rows.append(
            LayerRow(
                name=name,
                type=type(m).__name__,
                depth=name.count(".") + 1,
                output_shape=shape,
                params=sum(p.numel() for p in m.parameters()),
                macs=macs_under(name) // batch,
            )
        )
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    stage_shapes = {n: s for n, _, s in order if n.count(".") == 0}
    return Summary(
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        macs=sum(leaf_macs.values()) // batch,
        activation_bytes=leaf_act[0] // batch,
        input_size=tuple(input_size),
        stage_shapes=stage_shapes,
    )
