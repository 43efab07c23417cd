"""Running a model in OpenVINO: an IR (.xml + .bin) or ONNX file compiled for the CPU, called
like a torch model (`OpenVinoModule`), and the cnnzoo metadata an IR carries in its rt_info.

OpenVINO is optional (`pip install 'cnnzoo[openvino]'`); it is imported inside the functions
that need it, so that the rest of inference runs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnzoo.errors import CnnzooError
from cnnzoo.infer.checks import check_exported
from cnnzoo.infer.engines import require_engine, run_in_batches
from cnnzoo.infer.metadata import parse_metadata

RT_INFO_KEY = "cnnzoo"  # rt_info section of an IR holding the export's metadata_props
OV_PRECISIONS = ("fp32", "bf16")
_HINT = {"fp32": "f32", "bf16": "bf16"}


def require_openvino():
    """The openvino module, or a one-line error naming the extra to install."""
    require_engine("openvino")
    import openvino  # optional: only OpenVINO users install it

    return openvino


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Exception from", "Check ")):
            return line[:200]
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def read_ov_model(path: str | Path):
    """An IR (.xml with its .bin beside it) or an ONNX file as an `openvino.Model`; a damaged
    or missing pair is one line."""
    ov = require_openvino()
    p = Path(path)
    if not p.is_file():
        raise CnnzooError(f"model file not found: {p}")
    if p.suffix.lower() == ".xml" and not p.with_suffix(".bin").is_file():
        raise CnnzooError(f"{p}: its weights file {p.with_suffix('.bin').name} is missing")
    try:
        return ov.Core().read_model(str(p))
    except Exception as e:  # OpenVINO raises RuntimeError subclasses of its own for bad files
        raise CnnzooError(f"{p}: not a readable OpenVINO model ({_first_line(e)})") from None


def ov_metadata(model) -> dict[str, str]:
    """The string key/values an IR's rt_info holds under `cnnzoo` (what ONNX keeps in
    metadata_props); empty when there are none."""
    if not model.has_rt_info([RT_INFO_KEY]):
        return {}
    section = model.get_rt_info()[RT_INFO_KEY]
    return {k: model.get_rt_info([RT_INFO_KEY, k]).astype(str) for k in section}


class OpenVinoModule(nn.Module):
    """An OpenVINO model compiled for the CPU, called like a torch model: float [N, C, H, W]
    in, float32 logits out. `precision` is OpenVINO's inference precision hint: "bf16" runs
    the matrix work in bf16 (on AMX / AVX512-BF16), "fp32" keeps float32. A file with a fixed
    batch runs in chunks of that batch. `path_or_model`: a file, or an `openvino.Model`."""

    def __init__(self, path_or_model: Any, precision: str = "fp32", threads: int | None = None):
        super().__init__()
        ov = require_openvino()
        if precision not in OV_PRECISIONS:
            raise CnnzooError(f"openvino runs fp32 or bf16, not {precision!r}")
        model = (
            read_ov_model(path_or_model)
            if isinstance(path_or_model, (str, Path))
            else path_or_model
        )
        self.metadata = ov_metadata(model)
        self.precision = precision
        self.engine_name = f"openvino {precision}"  # its candidate (infer/engines.py)
        config = {
            # the project's thread rule, as the caller applied it to torch
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            "INFERENCE_PRECISION_HINT": _HINT[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        try:
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        except Exception as e:
            raise CnnzooError(f"OpenVINO could not compile the model ({_first_line(e)})") from None
        self.request = self.compiled.create_infer_request()
        shape = model.inputs[0].get_partial_shape()
        batch = shape[0]
        self.fixed_batch = batch.get_length() if batch.is_static else None
        self.ran = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    def _run(self, x: np.ndarray) -> np.ndarray:
        # the output tensor belongs to the request and is overwritten by the next call: copy
        return self.request.infer({0: x}, share_inputs=True, share_outputs=True)[0].copy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        out = run_in_batches(self._run, arr, self.fixed_batch)
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


def load_openvino(
    path: str | Path, precision: str = "fp32", threads: int | None = None
) -> tuple[OpenVinoModule, dict[str, Any]]:
    """An exported IR (or ONNX file) compiled in OpenVINO, and its sidecar."""
    model = read_ov_model(path)
    props = ov_metadata(model)
    if not props and str(path).lower().endswith(".onnx"):
        import onnx  # optional like onnxruntime: the ONNX file's own metadata_props

        proto = onnx.load(str(path), load_external_data=False)
        props = {p.key: p.value for p in proto.metadata_props}
    meta = parse_metadata(props, str(path))
    module = OpenVinoModule(model, precision, threads)
    check_exported(module, meta, str(path))  # metadata = graph, one finite probe forward
    return module, meta
