"""A checkpoint's candidates in the other engines: its ONNX export (onnxruntime) and OpenVINO
IR (fp32 and bf16), written once into a cache beside the run and keyed by the SHA-256 of the
checkpoint's weights and facts, so that the second `predict` / `eval` / `serve` / `bench` starts at once.

    RUN/engines/<first 16 hex digits of the model's SHA-256>/model.onnx, model.xml, model.bin

(or `$CNNZOO_HOME/engines/<hash>/` when the run folder is read-only). Files are written under
temporary names and renamed into place, so a killed build leaves no half file that a later
call would trust. `open_predictor` / `open_model` are what the commands call.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.artifacts.sidecar import resolve_checkpoint
from cnnzoo.cfg import size_hw
from cnnzoo.errors import CnnzooError
from cnnzoo.export.writers import onnx_to_openvino, write_onnx
from cnnzoo.infer.engines import Builder, engine_installed
from cnnzoo.infer.fast import fold_batchnorm, is_eager_network
from cnnzoo.infer.machine import bf16_is_native, inference_threads
from cnnzoo.infer.metadata import DEFAULT_OPSET, export_metadata
from cnnzoo.infer.predict import Predictor
from cnnzoo.infer.runtime import (
    OnnxModule,
    file_engines,
    load_model,
    model_file_kind,
    resolve_backend,
)

CACHE_FOLDER = "engines"


def model_sha256(model: nn.Module, meta: dict[str, Any]) -> str:
    """SHA-256 of what an export is made of: the sidecar facts and every weight (name, dtype,
    shape, bytes), so a run folder whose best checkpoint fell back to its last one, or whose
    checkpoint changed, never reuses another model's exports."""
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous().reshape(-1)  # 0-d tensors (counters) too
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe{os.getpid()}"
        probe.touch()
        probe.unlink()
        return True
    except OSError:
        return False


def cache_folder(checkpoint: Path, key: str) -> Path:
    """Where a checkpoint's exports live: beside it, else under $CNNZOO_HOME."""
    beside = checkpoint.parent / CACHE_FOLDER / key
    if _writable(beside):
        return beside
    home = os.environ.get("CNNZOO_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache", "cnnzoo"
    )
    fallback = Path(home) / CACHE_FOLDER / key
    if not _writable(fallback):
        raise CnnzooError(f"no writable place for the exports of {checkpoint} (tried {beside})")
    return fallback


class CheckpointExports:
    """The cached ONNX and IR files of one checkpoint, built on first use."""

    def __init__(self, checkpoint: Path, model: nn.Module, meta: dict[str, Any]) -> None:
        self.checkpoint = checkpoint
        self.model = model
        self.meta = meta
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = cache_folder(self.checkpoint, model_sha256(self.model, self.meta)[:16])
        return self._folder

    def _props(self, fmt: str, example: torch.Tensor, folded: int) -> dict[str, str]:
        return export_metadata(
            self.meta,
            export_format=fmt,
            precision="fp32",
            input_shape=tuple(example.shape),
            dynamic_batch=True,
            opset=DEFAULT_OPSET,
            batchnorm_folded=folded,
        )

    def onnx(self) -> Path:
        """model.onnx (any batch size, BatchNorm folded), written once."""
        path = self.folder / "model.onnx"
        if path.is_file():
            return path
        (h, w), chans = size_hw(self.meta["input_size"]), int(self.meta.get("in_chans", 3))
        example = torch.zeros(1, chans, h, w)
        model = copy.deepcopy(self.model).cpu().eval()
        folded = fold_batchnorm(model, example)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            write_onnx(
                model, tmp, example, self._props("onnx", example, folded), dynamic_batch=True
            )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def openvino(self) -> Path:
        """model.xml + model.bin, converted by OpenVINO from model.onnx, written once."""
        path = self.folder / "model.xml"
        if path.is_file() and path.with_suffix(".bin").is_file():
            return path
        source = self.onnx()
        tmp = path.with_name(f".model.tmp{os.getpid()}.xml")
        (h, w), chans = size_hw(self.meta["input_size"]), int(self.meta.get("in_chans", 3))
        props = self._props("openvino", torch.zeros(1, chans, h, w), 0)
        try:
            onnx_to_openvino(source, tmp, props)
            os.replace(tmp.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
            tmp.with_suffix(".bin").unlink(missing_ok=True)
        return path


def checkpoint_engines(
    checkpoint: Path,
    model: nn.Module,
    meta: dict[str, Any],
    backend: str = "auto",
    precision: str = "auto",
) -> dict[str, Builder]:
    """Builders of the installed engines' candidates for a checkpoint (CPU only): each exports
    (or finds in the cache) the file it runs and loads it with torch's thread count (which
    `open_model` set by the project's thread rule)."""
    from cnnzoo.infer.openvino import OpenVinoModule  # optional engine, imported on use

    exports = CheckpointExports(checkpoint, model, meta)
    out: dict[str, Builder] = {}
    if backend in ("auto", "onnxruntime") and engine_installed("onnxruntime"):
        out["onnxruntime fp32"] = lambda: OnnxModule(exports.onnx(), torch.get_num_threads())
    if backend in ("auto", "openvino") and engine_installed("openvino"):
        out["openvino fp32"] = lambda: OpenVinoModule(
            exports.openvino(), "fp32", torch.get_num_threads()
        )
        if bf16_is_native(torch.device("cpu")) or precision == "bf16":
            out["openvino bf16"] = lambda: OpenVinoModule(
                exports.openvino(), "bf16", torch.get_num_threads()
            )
    return out


def open_model(
    path: str | Path,
    backend: str | None = "auto",
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
) -> tuple[nn.Module, dict[str, Any], torch.device, dict[str, Builder]]:
    """(model, sidecar, device, other candidates) for a checkpoint, run folder or exported
    file, for `--backend backend`: the candidates `prepare_inference` chooses among. Every
    engine gets the same thread count: `threads`, else the project's rule (one per idle core,
    at most torch's setting), applied once here."""
    backend = resolve_backend(backend, path)
    if threads is not None:
        torch.set_num_threads(threads)
    else:
        inference_threads()
    model, meta, dev = load_model(path, backend, device)
    if model_file_kind(path) != "checkpoint":
        engines = file_engines(path, backend, precision)
        engines.pop(getattr(model, "engine_name", None), None)
        return model, meta, dev, engines
    if dev.type != "cpu" or not is_eager_network(model):  # the engines here run on the CPU
        return model, meta, dev, {}
    where = resolve_checkpoint(path)
    return model, meta, dev, checkpoint_engines(where, model, meta, backend, precision)


def open_predictor(
    path: str | Path,
    backend: str | None = "auto",
    device: str = "auto",
    tta: bool = False,
    precision: str = "auto",
    threads: int | None = None,
) -> Predictor:
    """A `Predictor` whose engine `auto` picks by timing every installed candidate on the
    first batch (or the one `backend` / `precision` name); `threads` as `open_model`."""
    backend = resolve_backend(backend, path)
    model, meta, dev, engines = open_model(path, backend, device, precision, threads)
    return Predictor(model, meta, dev, tta, precision, backend=backend, engines=engines)
