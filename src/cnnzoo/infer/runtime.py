"""Running an exported file: an onnxruntime session as a torch module (OpenVINO's is in
infer/openvino.py), plus its metadata; which engines read which file.

`OnnxModule` takes and returns torch tensors like the model it was exported from, so the
engine's `Predictor` and `compute_logits` run it unchanged: same preprocessing, same top-k,
same output format as the PyTorch path.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.errors import CnnzooError
from cnnzoo.infer.checks import check_exported
from cnnzoo.infer.engines import (
    BACKENDS,
    Builder,
    engine_installed,
    require_engine,
    run_in_batches,
)
from cnnzoo.infer.load import load_checkpoint
from cnnzoo.infer.machine import bf16_is_native, resolve_device
from cnnzoo.infer.metadata import TORCHSCRIPT_FILE, parse_metadata
from cnnzoo.infer.predict import Predictor


def _require_onnxruntime():
    require_engine("onnxruntime")
    import onnxruntime  # optional engine: only its users install it

    return onnxruntime


class OnnxModule(nn.Module):
    """An ONNX file in onnxruntime (CPU), called like a torch model: float [N, C, H, W] in,
    float32 logits out. A file exported with a fixed batch runs in chunks of that batch."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        ort = _require_onnxruntime()
        opts = ort.SessionOptions()
        # the caller's torch thread count: one setting governs both backends
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for bad files
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise CnnzooError(f"{path}: not a readable ONNX model ({first})") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)  # what check_exported compares the metadata with
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        batch = inp.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.engine_name = "onnxruntime fp32"  # its candidate (infer/engines.py)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # C order whatever the tensor's memory format (channels-last callers included)
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy(), dtype=self.input_dtype)
        out = run_in_batches(self._run, arr, self.fixed_batch)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(x.device)


def load_onnx(path: str | Path, threads: int | None = None) -> tuple[OnnxModule, dict[str, Any]]:
    """An exported ONNX file as a module, and its sidecar (classes, preprocessing, ...)."""
    p = Path(path)
    if not p.is_file():
        raise CnnzooError(f"ONNX file not found: {p}")
    module = OnnxModule(p, threads)
    meta = parse_metadata(module.metadata, str(p))
    check_exported(module, meta, str(p))  # metadata = graph, one finite probe forward
    return module, meta


def load_torchscript(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A TorchScript file written by `cnnzoo export` (only files we wrote: loading one runs
    its TorchScript code), and its sidecar."""

    extra = {TORCHSCRIPT_FILE: ""}
    try:
        with warnings.catch_warnings():  # deprecated in torch 2.13, still what reads the files
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as e:
        raise CnnzooError(f"{path}: not a readable TorchScript file ({str(e)[:160]})") from None
    props = {"cnnzoo": extra[TORCHSCRIPT_FILE]} if extra[TORCHSCRIPT_FILE] else {}
    meta = parse_metadata(props, str(path))
    check_exported(module.eval(), meta, str(path))  # one finite probe forward
    return module, meta


def is_torchscript(path: str | Path) -> bool:
    """A TorchScript archive: a zip holding `code/` and `constants.pkl` (a state dict saved
    with torch.save is a zip too, without them)."""
    p = Path(path)
    try:
        if not (p.is_file() and zipfile.is_zipfile(p)):
            return False
        with zipfile.ZipFile(p) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def refuse_torchscript(path: str | Path) -> None:
    """One line for a TorchScript file where predict / eval / serve expect a model they run."""
    if is_torchscript(path):
        raise CnnzooError(
            f"{path} is a TorchScript file, which predict, eval and serve do not run; they "
            "read a cnnzoo run folder or checkpoint (.safetensors) or an ONNX file (.onnx): "
            "give the run folder, or cnnzoo export -c RUN -o model.onnx"
        )


def model_file_kind(path: str | Path) -> str:
    """ "onnx", "openvino" (an IR .xml) or "checkpoint" (anything else: a run folder,
    .safetensors, a TorchScript file), from the name."""
    suffix = Path(path).suffix.lower()
    return {".onnx": "onnx", ".xml": "openvino"}.get(suffix, "checkpoint")


def resolve_backend(backend: str | None, path: str | Path) -> str:
    """The backend asked for (None: auto), checked against what `path` is and what is
    installed: an .onnx file runs in onnxruntime or openvino, an IR in openvino, a checkpoint
    in any (the others through an export cached beside it)."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise CnnzooError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    kind = model_file_kind(path)
    if kind == "onnx" and backend == "pytorch":
        raise CnnzooError(
            f"{path} is an ONNX file: --backend onnxruntime or openvino runs it (or leave it out)"
        )
    if kind == "openvino" and backend not in ("auto", "openvino"):
        raise CnnzooError(f"{path} is an OpenVINO IR: --backend openvino runs it (or leave it out)")
    if backend != "auto":
        require_engine(backend)
    return backend


def _needs_cpu(device: str, what: str) -> None:
    if device not in ("auto", "cpu"):
        raise CnnzooError(f"{what} runs on the CPU; leave --device out")


def file_engines(path: str | Path, backend: str, precision: str = "auto") -> dict[str, Builder]:
    """The candidates that can run an exported .onnx / .xml file (installed engines only;
    OpenVINO's bf16 where the CPU does bf16 or bf16 is asked for)."""
    kind = model_file_kind(path)
    out: dict[str, Builder] = {}
    if kind == "checkpoint":
        return out
    if kind == "onnx" and backend in ("auto", "onnxruntime") and engine_installed("onnxruntime"):
        out["onnxruntime fp32"] = lambda: OnnxModule(path, torch.get_num_threads())
    if backend in ("auto", "openvino") and engine_installed("openvino"):
        from cnnzoo.infer.openvino import OpenVinoModule  # optional engine, imported on use

        out["openvino fp32"] = lambda: OpenVinoModule(path, "fp32", torch.get_num_threads())
        if bf16_is_native(torch.device("cpu")) or precision == "bf16":
            out["openvino bf16"] = lambda: OpenVinoModule(path, "bf16", torch.get_num_threads())
    return out


def load_model(
    path: str | Path, backend: str | None = None, device: str = "auto"
) -> tuple[nn.Module, dict[str, Any], torch.device]:
    """(model, sidecar, device) for a checkpoint / run folder (pytorch) or an exported .onnx
    / .xml file (onnxruntime or openvino, on the CPU: the first engine that reads it; the
    others come from `file_engines`). `device`: auto, cpu, cuda:N."""

    backend = resolve_backend(backend, path)
    kind = model_file_kind(path)
    if kind == "onnx" and backend != "openvino" and engine_installed("onnxruntime"):
        _needs_cpu(device, "onnxruntime")
        module, meta = load_onnx(path, torch.get_num_threads())
        return module, meta, torch.device("cpu")
    if kind != "checkpoint":
        _needs_cpu(device, "openvino")
        require_engine("openvino")
        from cnnzoo.infer.openvino import load_openvino  # optional engine, imported on use

        module, meta = load_openvino(path, "fp32", torch.get_num_threads())
        return module, meta, torch.device("cpu")
    refuse_torchscript(path)
    dev = resolve_device(device)
    model, meta = load_checkpoint(path, dev)
    return model, meta, dev


def load_predictor(
    path: str | Path,
    backend: str | None = None,
    device: str = "auto",
    tta: bool = False,
    precision: str = "auto",
    engines: dict[str, Builder] | None = None,
):
    """A `Predictor` for a checkpoint or an exported .onnx / .xml file: the same
    preprocessing and output whichever engine runs the model. `backend` / `precision` pick
    the engine (infer/engines.py); `engines` adds candidates (a checkpoint's exports)."""

    backend = resolve_backend(backend, path)
    model, meta, dev = load_model(path, backend, device)
    found = {**file_engines(path, backend, precision), **(engines or {})}
    found.pop(getattr(model, "engine_name", None), None)  # the loaded module is one already
    return Predictor(model, meta, dev, tta=tta, precision=precision, backend=backend, engines=found)
