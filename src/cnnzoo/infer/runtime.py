"""Running an exported file: an onnxruntime session as a torch module, plus its metadata.

`OnnxModule` takes and returns torch tensors like the model it was exported from, so the
engine's `Predictor` and `compute_logits` run it unchanged: same preprocessing, same top-k,
same output format as the PyTorch path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.errors import CnnzooError
from cnnzoo.infer.load import load_checkpoint
from cnnzoo.infer.machine import resolve_device
from cnnzoo.infer.metadata import TORCHSCRIPT_FILE, parse_metadata
from cnnzoo.infer.predict import Predictor

BACKENDS = ("pytorch", "onnxruntime")


def _require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise CnnzooError(
            "onnxruntime is not installed; pip install 'cnnzoo[export]' (or onnxruntime)"
        ) from None
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
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        batch = inp.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) and batch > 0 else None
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # C order whatever the tensor's memory format (channels-last callers included)
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy(), dtype=self.input_dtype)
        b = self.fixed_batch
        if b is None or arr.shape[0] == b:
            out = self._run(arr)
        else:  # pad the last chunk to the file's batch and drop the padding's outputs
            outs = []
            for s in range(0, arr.shape[0], b):
                chunk = arr[s : s + b]
                n = chunk.shape[0]
                if n < b:
                    pad = np.zeros((b - n, *chunk.shape[1:]), dtype=chunk.dtype)
                    chunk = np.concatenate([chunk, pad])
                outs.append(self._run(chunk)[:n])
            out = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).to(x.device)


def load_onnx(path: str | Path, threads: int | None = None) -> tuple[OnnxModule, dict[str, Any]]:
    """An exported ONNX file as a module, and its sidecar (classes, preprocessing, ...)."""
    p = Path(path)
    if not p.is_file():
        raise CnnzooError(f"ONNX file not found: {p}")
    module = OnnxModule(p, threads)
    return module, parse_metadata(module.metadata, str(p))


def load_torchscript(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """A TorchScript file written by `cnnzoo export` (only files we wrote: loading one runs
    its TorchScript code), and its sidecar."""
    import warnings

    extra = {TORCHSCRIPT_FILE: ""}
    try:
        with warnings.catch_warnings():  # deprecated in torch 2.13, still what reads the files
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as e:
        raise CnnzooError(f"{path}: not a readable TorchScript file ({str(e)[:160]})") from None
    props = {"cnnzoo": extra[TORCHSCRIPT_FILE]} if extra[TORCHSCRIPT_FILE] else {}
    return module.eval(), parse_metadata(props, str(path))


def resolve_backend(backend: str | None, path: str | Path) -> str:
    """The backend named, or the one a file's suffix implies (.onnx: onnxruntime)."""
    if backend is None:
        return "onnxruntime" if str(path).lower().endswith(".onnx") else "pytorch"
    if backend not in BACKENDS:
        raise CnnzooError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and not str(path).lower().endswith(".onnx"):
        raise CnnzooError(
            f"--backend onnxruntime runs an .onnx file written by `cnnzoo export`, not {path}"
        )
    return backend


def load_model(
    path: str | Path, backend: str | None = None, device: str = "auto"
) -> tuple[nn.Module, dict[str, Any], torch.device]:
    """(model, sidecar, device) for a checkpoint / run folder (pytorch backend) or an .onnx
    file (onnxruntime, on the CPU). `device`: auto, cpu, cuda:N."""

    if resolve_backend(backend, path) == "onnxruntime":
        if device not in ("auto", "cpu"):
            raise CnnzooError("the onnxruntime backend runs on the CPU; leave --device out")
        module, meta = load_onnx(path)
        return module, meta, torch.device("cpu")

    dev = resolve_device(device)
    model, meta = load_checkpoint(path, dev)
    return model, meta, dev


def load_predictor(
    path: str | Path,
    backend: str | None = None,
    device: str = "auto",
    tta: bool = False,
    precision: str = "auto",
):
    """An engine `Predictor` for a checkpoint or an exported .onnx file: the same
    preprocessing and output whichever backend runs the model. `precision`: the inference
    path of a PyTorch model (engine.fast); another runtime runs its model as loaded."""

    model, meta, dev = load_model(path, backend, device)
    return Predictor(model, meta, dev, tta=tta, precision=precision)
