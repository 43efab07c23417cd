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

from cnnzoo.cfg import EXPORT_PRECISIONS
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
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "torchscript": ".torchscript.pt"}


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
        "input_size": cfg.input_size,
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
    output = Path(output)
    if fmt == "openvino":
        require_engine("openvino")
    if fmt == "openvino" and output.suffix.lower() != ".xml":
        raise CnnzooError(f"an OpenVINO IR is an .xml file (and a .bin beside it): not {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    # the images first: a bad --check-images fails before minutes of export
    images, source = parity_images(meta, check_images, check_limit, progress)
    size, chans = int(meta["input_size"]), int(meta.get("in_chans", 3))
    example = torch.zeros(1, chans, size, size)
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
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    if fmt == "openvino":  # OpenVINO names the weights after the .xml: keep the suffix
        tmp = output.with_name(f".{output.stem}.tmp{os.getpid()}.xml")
    try:
        exportable = with_precision(to_write, precision)
        if fmt == "onnx":
            write_onnx(exportable, tmp, example, props, opset=opset, dynamic_batch=dynamic_batch)
            exported, _ = load_onnx(tmp)
        elif fmt == "openvino":
            write_openvino(
                exportable, tmp, example, props, opset=opset, dynamic_batch=dynamic_batch
            )
            exported, _ = load_openvino(tmp, "fp32")
        else:
            write_torchscript(exportable, tmp, example, props)
            exported, _ = load_torchscript(tmp)
        report = check_parity(model, exported, meta, images, source, precision)
        if not report.ok:
            raise ParityError(
                f"the exported model does not match PyTorch, so {output} was not written: "
                + report.summary(),
                report,
            )
        if fmt == "openvino":  # the weights first: an .xml is never there without its .bin
            os.replace(tmp.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
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
