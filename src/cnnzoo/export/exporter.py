"""`export_model`: write an ONNX, OpenVINO IR or TorchScript file, run it against the PyTorch model on real
images, and keep it only when they agree."""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.artifacts.files import check_output, staged, staged_output
from cnnzoo.cfg import EXPORT_PRECISIONS, size_hw, size_value
from cnnzoo.errors import CnnzooError
from cnnzoo.export.parity import ParityReport, check_parity, parity_images
from cnnzoo.export.writers import with_precision, write_onnx, write_openvino, write_torchscript
from cnnzoo.infer.engines import require_engine
from cnnzoo.infer.fast import fold_batchnorm
from cnnzoo.infer.metadata import DEFAULT_OPSET, export_metadata
from cnnzoo.infer.openvino import load_openvino
from cnnzoo.infer.runtime import load_onnx, load_torchscript
from cnnzoo.models.factory import get_model_cfg

FORMATS = ("onnx", "openvino", "torchscript")
# the names a file of each format may have (a .onnx that holds TorchScript misleads every tool)
SUFFIXES = {
    "onnx": (".onnx",),
    "openvino": (".xml",),  # and its weights beside it, the same name in .bin
    "torchscript": (".pt", ".pth", ".torchscript", ".ts"),
}


class ParityError(CnnzooError):
    """The exported file does not compute what the model computes; `report` has the figures."""

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    dynamic_batch: bool
    opset: int | None
    size_bytes: int
    parity: ParityReport
    seconds: float
    batchnorm_folded: int = 0


def model_meta(
    name: str, num_classes: int, classes: list[str] | None = None, in_chans: int = 3
) -> dict[str, Any]:
    """The sidecar facts of a registered model used as it is (no training run): the eval
    transform its reference weights were published with; classes named by index unless given."""

    cfg = get_model_cfg(name)
    if classes is not None and len(classes) != num_classes:
        raise CnnzooError(
            f"{len(classes)} class names given for a model with {num_classes} outputs"
        )
    return {
        "model": name,
        "num_classes": num_classes,
        "in_chans": in_chans,
        "classes": classes or [str(i) for i in range(num_classes)],
        "input_size": size_value(cfg.input_size),
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "crop_pct": cfg.crop_pct,
        "interpolation": cfg.interpolation,
    }


def export_model(
    model: nn.Module,
    meta: dict[str, Any],
    output: str | Path,
    *,
    fmt: str = "onnx",
    precision: str = "fp32",
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
    check_images: str | None = None,
    check_limit: int = 64,
    progress: bool = True,
    fold: bool = True,
) -> ExportResult:
    """Export `model` (with its sidecar `meta`) to `output` and check it: the file is written
    under a temporary name and moved into place only when parity holds (ParityError with the
    figures otherwise). `fold` folds BatchNorm into the convolutions of a copy first, the part
    of the fast inference form a file can carry; parity is still checked against `model`."""

    if fmt not in FORMATS:
        raise CnnzooError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if precision not in EXPORT_PRECISIONS:
        raise CnnzooError(
            f"unknown precision {precision!r}; choose {' or '.join(EXPORT_PRECISIONS)}"
        )
    start = time.perf_counter()
    output = check_output(output, SUFFIXES[fmt], "--output")  # before minutes of export
    if fmt == "openvino":
        require_engine("openvino")
        check_output(output.with_suffix(".bin"), (".bin",), "--output's weights")
    model = model.cpu().eval()
    # the images first: a bad --check-images fails before minutes of export
    images, source = parity_images(meta, check_images, check_limit, progress)
    size, chans = size_hw(meta["input_size"]), int(meta.get("in_chans", 3))
    example = torch.zeros(1, chans, *size)
    to_write, folded = model, 0
    if fold:
        # ONNX's exporter folds eval-mode BatchNorm itself; TorchScript keeps it, and a
        # folded TorchScript file runs 1.02-1.46x faster (docs/benchmarks.md)
        to_write = copy.deepcopy(model)
        folded = fold_batchnorm(to_write, example)
    props = export_metadata(
        meta,
        export_format=fmt,
        precision=precision,
        input_shape=tuple(example.shape),
        dynamic_batch=dynamic_batch,
        opset=opset if fmt != "torchscript" else None,
        batchnorm_folded=folded,
    )
    with staged_output(output, SUFFIXES[fmt], "--output") as tmp:
        # OpenVINO names the weights after the .xml it writes: give it a name ending in .xml
        write_to = tmp.with_name(tmp.name + ".xml") if fmt == "openvino" else tmp
        try:
            exported = _write_and_load(
                fmt, with_precision(to_write, precision), write_to, example, props, opset,
                dynamic_batch,
            )  # fmt: skip
            report = check_parity(model, exported, meta, images, source, precision)
            if not report.ok:
                raise ParityError(
                    f"the exported model does not match PyTorch, so {output} was not written: "
                    + report.summary(),
                    report,
                )
            if fmt == "openvino":  # the weights first: an .xml is never there without its .bin
                with staged(output.with_suffix(".bin"), hint="then try again") as bin_tmp:
                    os.replace(write_to.with_suffix(".bin"), bin_tmp)
                os.replace(write_to, tmp)
        finally:  # nothing of a refused or failed export is left behind
            if fmt == "openvino":
                for leftover in (write_to, write_to.with_suffix(".bin")):
                    leftover.unlink(missing_ok=True)
    return ExportResult(
        output,
        fmt,
        precision,
        dynamic_batch,
        opset if fmt != "torchscript" else None,
        output.stat().st_size,
        report,
        time.perf_counter() - start,
        folded,
    )


def _write_and_load(
    fmt: str,
    model: nn.Module,
    path: Path,
    example: torch.Tensor,
    props: dict[str, str],
    opset: int,
    dynamic_batch: bool,
) -> nn.Module:
    """Write `model` to `path` in `fmt` and read it back with the runtime that will run it."""
    if fmt == "onnx":
        write_onnx(model, path, example, props, opset=opset, dynamic_batch=dynamic_batch)
        return load_onnx(path)[0]
    if fmt == "openvino":
        write_openvino(model, path, example, props, opset=opset, dynamic_batch=dynamic_batch)
        return load_openvino(path, "fp32")[0]
    write_torchscript(model, path, example, props)
    return load_torchscript(path)[0]
