"""Writing a model to ONNX, OpenVINO IR or TorchScript with its metadata inside the file.

ONNX goes through torch's TorchScript-based exporter (`dynamo=False`): on this CPU it exports
a ResNet-50 in about a second where the dynamo exporter takes 5-15 s, and its graphs match
onnxruntime to 1e-6 for every family (tests/test_export_families.py).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from cnnzoo.cfg import EXPORT_PRECISIONS
from cnnzoo.errors import CnnzooError
from cnnzoo.infer.metadata import DEFAULT_OPSET, META_KEY, TORCHSCRIPT_FILE
from cnnzoo.infer.openvino import require_openvino

# what TorchScript's extra files hold besides the sidecar: the facts a C++ consumer needs
PREPROCESSING_FILE = "preprocessing.json"
_PREPROCESSING_KEYS = (
    "classes",
    "input_size",
    "input_shape",
    "mean",
    "std",
    "crop_pct",
    "resize",
    "crop",
    "interpolation",
    "preprocessing",
    "output",
    "precision",
)


class _Fp16(nn.Module):
    """An fp16 copy of a model that takes and returns float32, so consumers feed the same
    arrays whatever the precision inside."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def with_precision(model: nn.Module, precision: str) -> nn.Module:
    if precision not in EXPORT_PRECISIONS:
        raise CnnzooError(
            f"unknown precision {precision!r}; choose {' or '.join(EXPORT_PRECISIONS)}"
        )
    return _Fp16(model).eval() if precision == "fp16" else model


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Tracing warns about deprecation and Python-side shape arithmetic; the parity check that
    follows every export is what proves the graph right, at another batch size too."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        yield


def write_onnx(
    model: nn.Module,
    path: str | Path,
    example: torch.Tensor,
    props: dict[str, str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> None:
    """`model` (eval mode) traced on `example` (N, C, H, W) into an ONNX file whose
    metadata_props are `props`; input `input`, output `logits`."""
    # optional: the export extra
    import onnx

    buf = io.BytesIO()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    try:
        with _quiet():
            torch.onnx.export(
                model,
                (example,),
                buf,
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                opset_version=opset,
                dynamic_axes=axes,
            )
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CnnzooError(f"ONNX export failed (opset {opset}): {first[:200]}") from None
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = (
        "cnnzoo export: every metadata_props value is one JSON value; `preprocessing` holds "
        "every rule from image file to `input`"
    )
    onnx.save(proto, str(path))


def write_torchscript(
    model: nn.Module, path: str | Path, example: torch.Tensor, props: dict[str, str]
) -> None:
    """`model` traced on `example` into a TorchScript archive; the sidecar is its extra file
    `cnnzoo.json`, the preprocessing facts `preprocessing.json`."""
    try:
        with _quiet():
            traced = torch.jit.trace(model, example, check_trace=False)
    except RuntimeError as e:
        raise CnnzooError(f"TorchScript trace failed: {str(e).strip()[:200]}") from None
    facts = {k: json.loads(props[k]) for k in _PREPROCESSING_KEYS if k in props}  # typed
    extra = {TORCHSCRIPT_FILE: props[META_KEY], PREPROCESSING_FILE: json.dumps(facts)}
    buf = io.BytesIO()  # in memory first: torch's C++ file writer aborts on a full disk
    with _quiet():
        torch.jit.save(traced, buf, _extra_files=extra)
    with open(path, "wb") as f:  # a full disk is an OSError here, one line for the caller
        f.write(buf.getbuffer())


def save_openvino(ov_model, path: str | Path, props: dict[str, str]) -> None:
    """An `openvino.Model` saved as an IR (`path` .xml, its .bin beside it), weights kept in
    float32, with `props` (the ONNX metadata_props) in its rt_info under `cnnzoo`."""
    import openvino as ov  # optional engine: only OpenVINO users install it

    from cnnzoo.infer.openvino import RT_INFO_KEY

    for key, value in props.items():
        ov_model.set_rt_info(value, [RT_INFO_KEY, key])
    try:
        ov.save_model(ov_model, str(path), compress_to_fp16=False)
    except Exception as e:  # OpenVINO's own error types
        Path(path).with_suffix(".bin").unlink(missing_ok=True)
        raise CnnzooError(f"could not write {path}: {str(e).strip()[:200]}") from None


def onnx_to_openvino(onnx_path: str | Path, path: str | Path, props: dict[str, str]) -> None:
    """An ONNX file converted by OpenVINO's own converter (`openvino.convert_model`) into an
    IR at `path` (.xml + .bin) carrying `props`."""
    ov = require_openvino()
    try:
        ov_model = ov.convert_model(str(onnx_path))
    except Exception as e:  # the converter's own error types
        raise CnnzooError(f"OpenVINO could not convert the model: {str(e).strip()[:200]}") from None
    save_openvino(ov_model, path, props)


def write_openvino(
    model: nn.Module,
    path: str | Path,
    example: torch.Tensor,
    props: dict[str, str],
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
) -> None:
    """`model` as an OpenVINO IR at `path` (.xml, and .bin beside it): exported to ONNX
    (`write_onnx`, the graph every family is proved on), then converted by OpenVINO."""
    path = Path(path)
    onnx_tmp = path.with_name(path.stem + ".src.onnx")
    try:
        write_onnx(model, onnx_tmp, example, props, opset=opset, dynamic_batch=dynamic_batch)
        onnx_to_openvino(onnx_tmp, path, props)
    finally:
        onnx_tmp.unlink(missing_ok=True)
