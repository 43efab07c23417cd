"""Throughput of a zoo model: warm-up, timed iterations, images/s and ms per batch (median and
spread), peak memory, and the machine it ran on. `cnnzoo bench` prints what `benchmark` returns."""

from __future__ import annotations

import math
import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from cnnzoo import create_model
from cnnzoo.cfg import BACKENDS
from cnnzoo.errors import CnnzooError, OptionError
from cnnzoo.export.writers import write_onnx, write_openvino
from cnnzoo.infer.engines import engine_installed, require_engine
from cnnzoo.infer.fast import fast_form, prepare_inference
from cnnzoo.infer.machine import bf16_is_native, machine_info
from cnnzoo.infer.runtime import OnnxModule
from cnnzoo.models.factory import get_model_cfg


@dataclass
class BenchSettings:
    model: str
    batch: int = 16
    input_size: int | None = None  # None: the model's native size
    mode: str = "infer"  # infer | train
    dtype: str = "fp32"  # fp32 | bf16
    channels_last: bool = False
    compile: bool = False
    optimize: bool = False  # infer: the fast form (BatchNorm folded, channels-last)
    # infer: "onnxruntime" / "openvino" run the model exported to ONNX / an IR (openvino in
    # --dtype), "auto" the fastest candidate of every installed engine (infer/engines.py)
    backend: str = "pytorch"
    device: str = "cpu"
    warmup: int = 3
    iters: int = 10
    num_classes: int | None = None


@dataclass
class BenchResult:
    settings: BenchSettings
    input_size: int
    images_per_s: float
    ms_per_batch: float  # median
    ms_min: float
    ms_max: float
    ms_iqr: float
    peak_memory_mb: float
    machine: dict = field(default_factory=dict)
    engine: str = ""  # the candidate timed (with --backend auto: the one auto chose)
    choice: str = ""  # with --backend auto: the choice and the probe's timings

    def to_dict(self) -> dict:
        d = asdict(self)
        settings = d.pop("settings")
        return {**settings, **d}


def signal_weights_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give an untrained model seeded weights that keep activations of order one through any
    depth (fan-in scaled matrices, norm scales near 1, small shifts, running variances in
    [0.5, 1.5]), in place. Fresh initialisations leave some families' logits near 1e-9, where
    any parity tolerance holds trivially and timings meet denormal numbers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, t in model.state_dict().items():
        if not t.is_floating_point():
            state[key] = t
        elif key.endswith("running_var"):
            state[key] = torch.rand(t.shape, generator=g) + 0.5
        elif t.ndim >= 2:
            state[key] = torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel())
        elif key.endswith("weight"):
            state[key] = 1 + 0.1 * torch.randn(t.shape, generator=g)
        else:
            state[key] = 0.1 * torch.randn(t.shape, generator=g)
    model.load_state_dict(state)
    return model.eval()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss: the process's peak resident size (kilobytes on Linux)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_step(s: BenchSettings, model: nn.Module, x: torch.Tensor):
    """The function one timed iteration calls: a forward (infer) or a training step."""
    dtype = torch.bfloat16 if s.dtype == "bf16" else None
    device = x.device
    if s.mode == "infer":
        model.eval().requires_grad_(False)
        if s.backend in ("onnxruntime", "openvino", "auto"):
            session = engine_session(s, model, x)

            def step() -> None:
                session(x)

            return step
        if s.optimize:
            run = fast_form(model, x[:1], dtype or torch.float32, compile=s.compile)

            def step() -> None:
                with torch.inference_mode():
                    run(x)

            return step
        if s.channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        run = torch.compile(model) if s.compile else model

        def step() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype, enabled=bool(dtype)):
                run(x)

        return step
    model.train()
    if s.channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    y = torch.randint(0, model.num_classes or 1, (x.shape[0],), device=device)
    run = torch.compile(model) if s.compile else model

    def step() -> None:
        with torch.autocast(device.type, dtype, enabled=bool(dtype)):
            loss = nn.functional.cross_entropy(run(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def onnx_session(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """`model` exported to ONNX (fp32, traced at `x`'s shape) and loaded in onnxruntime, with
    torch's thread count."""

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        write_onnx(model, path, x, {})
        return OnnxModule(path, threads=torch.get_num_threads())


def openvino_session(model: nn.Module, x: torch.Tensor, precision: str) -> nn.Module:
    """`model` as an OpenVINO IR (through its ONNX export, traced at `x`'s shape) compiled
    for the CPU in `precision` (fp32 / bf16), with torch's thread count."""
    from cnnzoo.infer.openvino import OpenVinoModule  # optional engine, imported on use

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.xml"
        write_openvino(model, path, x, {})
        return OpenVinoModule(path, precision, threads=torch.get_num_threads())


def engine_session(s: BenchSettings, model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The module one engine runs (sets `s.engine`); for "auto", every installed candidate
    timed on `x` as predict does, the fastest kept (`s.choice` says which and the timings)."""
    if s.backend == "onnxruntime":
        s.engine = "onnxruntime fp32"
        return onnx_session(model, x)
    if s.backend == "openvino":
        s.engine = f"openvino {s.dtype}"
        return openvino_session(model, x, s.dtype)
    engines = {}
    if engine_installed("onnxruntime"):
        engines["onnxruntime fp32"] = lambda: onnx_session(model, x)
    if engine_installed("openvino"):
        engines["openvino fp32"] = lambda: openvino_session(model, x, "fp32")
        if bf16_is_native(x.device):
            engines["openvino bf16"] = lambda: openvino_session(model, x, "bf16")
    path = prepare_inference(model, x, "auto", engines=engines, probe_batch=x.shape[0])
    s.engine, s.choice = path.name, path.describe()
    return path.model


def check_settings(s: BenchSettings) -> None:
    for name, value, choices in (
        ("mode", s.mode, ("infer", "train")),
        ("dtype", s.dtype, ("fp32", "bf16")),
        ("backend", s.backend, BACKENDS),
    ):
        if value not in choices:
            raise OptionError(f"--{name} must be one of {', '.join(choices)} (got {value!r})")
    if s.batch < 1 or s.iters < 1 or s.warmup < 0:
        raise OptionError("--batch and --iters must be at least 1, --warmup at least 0")
    if s.optimize and s.mode == "train":
        raise OptionError("--optimize is the inference form; leave it out with --mode train")
    pytorch_only = s.mode == "train" or s.optimize or s.compile or s.channels_last
    if s.backend == "onnxruntime" and (pytorch_only or s.dtype != "fp32" or s.device != "cpu"):
        raise OptionError(
            "--backend onnxruntime times the exported fp32 model on the CPU in inference; leave "
            "out --mode train, --optimize, --compile, --channels-last, --dtype bf16 and --device"
        )
    if s.backend in ("openvino", "auto") and (pytorch_only or s.device != "cpu"):
        raise OptionError(
            f"--backend {s.backend} times inference on the CPU; leave out --mode train, "
            "--optimize, --compile, --channels-last and --device"
        )
    if s.backend == "auto" and s.dtype != "fp32":
        raise OptionError("--backend auto chooses the precision itself; leave --dtype out")
    if s.backend != "pytorch" and s.backend != "auto":
        require_engine(s.backend)
    if s.input_size is not None and s.input_size < 8:
        raise OptionError(f"--input-size must be at least 8 (got {s.input_size})")


def benchmark(s: BenchSettings) -> BenchResult:
    """Time `s.iters` iterations after `s.warmup` untimed ones on random input."""

    check_settings(s)
    device = torch.device(s.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda, but torch sees no CUDA device here; use --device cpu")
    size = s.input_size or get_model_cfg(s.model).input_size
    torch.manual_seed(0)
    # seeded weights with activations of order one: fresh inits meet denormal numbers
    model = signal_weights_(create_model(s.model, num_classes=s.num_classes)).to(device)
    x = torch.randn(s.batch, 3, size, size, device=device)
    step = build_step(s, model, x)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(s.warmup):
        step()
    _sync(device)
    times = []
    for _ in range(s.iters):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(1000 * (time.perf_counter() - t))
    median = statistics.median(times)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [median, median, median]
    return BenchResult(
        settings=s,
        input_size=size,
        images_per_s=1000 * s.batch / median,
        ms_per_batch=median,
        ms_min=min(times),
        ms_max=max(times),
        ms_iqr=q[2] - q[0],
        peak_memory_mb=_peak_memory_mb(device),
        machine=machine_info(device),
        engine=getattr(s, "engine", "") or _pytorch_engine(s),
        choice=getattr(s, "choice", ""),
    )


def _pytorch_engine(s: BenchSettings) -> str:
    if s.mode != "infer" or s.backend != "pytorch":
        return ""
    return f"fast {s.dtype}" if s.optimize else f"pytorch {s.dtype}"


def benchmark_zoo(
    template: BenchSettings,
    names: list[str],
    backends: list[str] | None = None,
    progress: bool = True,
):
    """`benchmark` for each model named in each of `backends` (default: the template's), with
    `template`'s settings; yields (name, {backend: result, or the one-line reason it could
    not run})."""

    for name in tqdm(names, desc="bench", unit="model", disable=not progress):
        results = {}
        for backend in backends or [template.backend]:
            try:
                results[backend] = benchmark(replace(template, model=name, backend=backend))
            except (RuntimeError, CnnzooError) as e:  # out of memory, a conversion refused
                results[backend] = str(e).splitlines()[0]
        yield name, results
