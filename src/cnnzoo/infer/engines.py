"""One engine interface: every way cnnzoo runs a model is a torch module (float [N, C, H, W] in,
float32 logits out) with a name, and one rule picks among them.

| candidate        | engine      | kind  | what it is                                         |
|------------------|-------------|-------|----------------------------------------------------|
| fp32 (exact)     | pytorch     | exact | the model as built                                 |
| fast fp32        | pytorch     | fp32  | BatchNorm folded, fused convs, channels-last       |
| fast bf16        | pytorch     | bf16  | the same in bf16 (classifier in fp32)              |
| onnxruntime fp32 | onnxruntime | fp32  | the ONNX export in onnxruntime                     |
| openvino fp32    | openvino    | fp32  | the OpenVINO IR, inference precision f32           |
| openvino bf16    | openvino    | bf16  | the same IR with OpenVINO's bf16 hint (AMX / AVX512-BF16) |

`--backend` names the engine (auto: any), `--precision` the kind (auto: any; fp32: the exact
model, or an engine's fp32 where there is no PyTorch model; fast-fp32: the float32 engines;
bf16: the bf16 ones). bf16 candidates exist only where the hardware does bf16. `fastest`
times the candidates alternately on the first batch and keeps the fastest, so the choice is
measured, never assumed.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cnnzoo.cfg import BACKENDS
from cnnzoo.errors import CnnzooError, OptionError

# candidate -> (engine, kind)
CANDIDATES: dict[str, tuple[str, str]] = {
    "fp32 (exact)": ("pytorch", "exact"),
    "fast fp32": ("pytorch", "fp32"),
    "fast bf16": ("pytorch", "bf16"),
    "onnxruntime fp32": ("onnxruntime", "fp32"),
    "openvino fp32": ("openvino", "fp32"),
    "openvino bf16": ("openvino", "bf16"),
}
# the pip extra that installs each optional engine
EXTRAS = {"onnxruntime": "export", "openvino": "openvino"}

Builder = Callable[[], nn.Module]


def engine_installed(engine: str) -> bool:
    """Whether `engine` can run here (pytorch always can)."""
    return engine == "pytorch" or importlib.util.find_spec(engine) is not None


def require_engine(engine: str) -> None:
    """A one-line error naming the extra to install when `engine` is missing."""
    if engine not in BACKENDS:
        raise OptionError(f"unknown backend {engine!r}; choose one of {', '.join(BACKENDS)}")
    if not engine_installed(engine):
        raise CnnzooError(
            f"{engine} is not installed; pip install 'cnnzoo[{EXTRAS[engine]}]' (or {engine})"
        )


def wanted(name: str, backend: str, precision: str, exact_here: bool) -> bool:
    """Whether candidate `name` may run under `--backend backend --precision precision`.
    `exact_here`: the exact PyTorch model is among the candidates (then fp32 means it)."""
    engine, kind = CANDIDATES[name]
    if backend != "auto" and engine != backend:
        return False
    if precision == "auto":
        return True
    if precision == "bf16":
        return kind == "bf16"
    if precision == "fast-fp32":
        return kind == "fp32"
    return kind == "exact" or (not exact_here and kind == "fp32")  # fp32


@dataclass
class InferencePath:
    """The model to run and how it was chosen."""

    model: nn.Module
    name: str  # a CANDIDATES name, or "<type> as loaded"
    timings_ms: dict[str, float] = field(default_factory=dict)  # candidate -> ms, when timed
    skipped: dict[str, str] = field(default_factory=dict)  # candidate -> why it did not run

    @property
    def engine(self) -> str:
        return CANDIDATES.get(self.name, ("pytorch", ""))[0]

    def describe(self) -> str:
        text = self.name
        if self.timings_ms:
            times = ", ".join(f"{k} {v:.1f} ms" for k, v in self.timings_ms.items())
            text += f" (fastest measured: {times})"
        if self.skipped:
            text += "; not run: " + "; ".join(f"{k}: {v}" for k, v in self.skipped.items())
        return text


def time_call(fn, x: torch.Tensor, repeats: int) -> float:
    """Best wall time of `repeats` calls, in milliseconds (the best is the least disturbed by
    other work on the machine)."""
    best = float("inf")
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        t = time.perf_counter()
        fn(x)
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        best = min(best, time.perf_counter() - t)
    return 1000 * best


def fastest(
    candidates: dict[str, nn.Module],
    example: torch.Tensor,
    probe_seconds: float = 0.5,
    timer: Callable[[str, nn.Module, torch.Tensor], float] | None = None,
) -> tuple[str, dict[str, float]]:
    """The name of the fastest candidate on `example` and every candidate's best time (ms).

    After one warm-up call each (oneDNN and OpenVINO build their kernels on the first call),
    the candidates are timed alternately, so that a busy moment hurts each alike, for 3 to 10
    rounds (more while they take under `probe_seconds`); a candidate over 3x the best so far
    is dropped after the first round. `timer(name, module, x)` replaces the wall clock (tests)."""
    if timer is None:
        timer = lambda _name, m, x: time_call(m, x, 1)  # noqa: E731
        for m in candidates.values():
            m(example)
    best = {name: float("inf") for name in candidates}
    start = time.perf_counter()
    for round_ in range(10):
        if round_ >= 3 and time.perf_counter() - start > probe_seconds:
            break
        for name, m in candidates.items():
            if round_ == 0 or best[name] < 3 * min(best.values()):
                best[name] = min(best[name], timer(name, m, example))
    return min(best, key=best.get), best


def build_candidates(
    builders: dict[str, Builder],
) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Each builder called; one that fails (a conversion an engine does not support, a
    missing file) is left out with its one-line reason instead of stopping the run."""
    built, skipped = {}, {}
    for name, build in builders.items():
        try:
            built[name] = build()
        except CnnzooError as e:
            skipped[name] = str(e)
    return built, skipped


def run_in_batches(run: Callable[[np.ndarray], np.ndarray], arr: np.ndarray,
                   batch: int | None) -> np.ndarray:  # fmt: skip
    """`run(arr)`, for an exported file whose graph takes a fixed `batch` (None: any): the
    images go through in chunks of that batch, the last padded with zeros and the padding's
    outputs dropped."""
    if batch is None or arr.shape[0] == batch:
        return run(arr)
    outs = []
    for s in range(0, arr.shape[0], batch):
        chunk = arr[s : s + batch]
        n = chunk.shape[0]
        if n < batch:
            pad = np.zeros((batch - n, *chunk.shape[1:]), dtype=chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        outs.append(run(chunk)[:n])
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
