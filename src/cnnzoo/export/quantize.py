"""INT8 for OpenVINO: post-training quantization through NNCF, calibrated on a few hundred of
the run's training images, scored before the file is kept.

The quantized IR and the exact PyTorch model classify the run's whole held-out split; the
file is written only when int8's top-1 is at most `max_drop` points below fp32's. Its
metadata (`export.quantization`) records the calibration (image count, source, SHA-256 of
the images in order) and what was measured (top-1 of both, agreement, drop), so `serve`'s
card and any consumer can see what the file cost. `accuracy_control` runs NNCF's
accuracy-controlled quantization instead, which keeps in fp32 the layers that cost most.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.cfg import size_hw
from cnnzoo.errors import CnnzooError
from cnnzoo.export.parity import folder_images
from cnnzoo.export.writers import save_openvino, write_onnx
from cnnzoo.infer.engines import require_engine
from cnnzoo.infer.evaluate import Preprocess, compute_logits
from cnnzoo.infer.fast import fold_batchnorm
from cnnzoo.infer.metadata import DEFAULT_OPSET, META_KEY, export_metadata
from cnnzoo.infer.openvino import OpenVinoModule
from cnnzoo.infer.predict import Predictor

CALIBRATION_IMAGES = 300
MAX_DROP = 1.0  # top-1 points


class QuantizationError(CnnzooError):
    """int8 lost more top-1 than allowed; nothing was written."""


@dataclass
class QuantizeResult:
    path: Path
    size_bytes: int
    record: dict[str, Any]  # what export.quantization holds
    seconds: float

    def summary(self) -> str:
        r = self.record
        return (
            f"int8 ({r['method']}): top-1 {r['top1_int8']:.2f}% against fp32 "
            f"{r['top1_fp32']:.2f}% on {r['scored_on']['images']} {r['scored_on']['source']} "
            f"(drop {r['drop']:+.2f} points, limit {r['max_drop']:g}), agreement "
            f"{r['agreement']:.2f}%; calibrated on {r['calibration']['images']} "
            f"{r['calibration']['source']}"
        )


def _run_data(meta: dict[str, Any], progress: bool):
    from cnnzoo.data import load_data  # the data layer, only when a run's data is needed

    data = meta.get("data") or {}
    if not data.get("source"):
        raise CnnzooError(
            "int8 is scored on the run's held-out images, and this model names no training "
            "data; quantize a checkpoint from cnnzoo train"
        )
    try:
        return load_data(
            data["source"],
            data_dir=(meta.get("recipe") or {}).get("data_dir"),
            image_size=data.get("load_size"),
            val_split=data.get("val_split", 0.1),
            seed=data.get("seed", 0),
            progress=progress,
        )
    except (CnnzooError, OSError) as e:
        raise CnnzooError(f"int8 needs the run's data to calibrate and score: {e}") from None


def _spread(n: int, k: int) -> torch.Tensor:
    return torch.linspace(0, n - 1, min(k, n)).round().long().unique()


def calibration_inputs(
    meta: dict[str, Any], bundle, calibrate: str | None, count: int
) -> tuple[list[torch.Tensor], str, str]:
    """Preprocessed calibration batches, where they came from and the SHA-256 of the images."""
    h = hashlib.sha256()
    prep = Predictor(nn.Identity(), meta)
    if calibrate:
        images = folder_images(calibrate, count)
        for im in images:
            h.update(im.numpy().tobytes())
        batches = [prep.inputs(images[s : s + 32]) for s in range(0, len(images), 32)]
        return batches, f"images from {calibrate}", h.hexdigest()
    train = bundle.train.images
    if len(train) == 0:
        raise CnnzooError("the run's training split is empty: give --calibrate DIR")
    chosen = train[_spread(len(train), count)]
    h.update(chosen.contiguous().numpy().tobytes())
    preprocess = Preprocess.from_meta(meta)
    batches = [preprocess(chosen[s : s + 32]) for s in range(0, len(chosen), 32)]
    return batches, f"training images of {meta['data']['source']}", h.hexdigest()


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100 * float((logits.argmax(1) == labels).float().mean())


def quantize_openvino(
    model: nn.Module,
    meta: dict[str, Any],
    output: str | Path,
    *,
    calibrate: str | None = None,
    count: int = CALIBRATION_IMAGES,
    max_drop: float = MAX_DROP,
    accuracy_control: bool = False,
    progress: bool = True,
) -> QuantizeResult:
    """Write `model` as an int8 OpenVINO IR at `output` (.xml + .bin), or raise
    QuantizationError (writing nothing) when int8 loses more than `max_drop` top-1 points."""
    require_engine("openvino")
    try:
        import nncf  # optional: OpenVINO's quantizer, installed with cnnzoo[openvino]
    except ImportError:
        raise CnnzooError(
            "nncf is not installed; pip install 'cnnzoo[openvino]' (or nncf)"
        ) from None
    import openvino as ov  # optional engine (checked above)

    start = time.perf_counter()
    output = Path(output)
    if output.suffix.lower() != ".xml":
        raise CnnzooError(
            f"an int8 OpenVINO IR is an .xml file (and a .bin beside it): not {output}"
        )
    if count < 1 or max_drop < 0:
        raise CnnzooError("--calibration-images must be at least 1 and --max-drop at least 0")
    model = model.cpu().eval()
    bundle = _run_data(meta, progress)
    val_images, labels = bundle.val.images, bundle.val.labels
    if len(val_images) == 0:
        raise CnnzooError("the run has no held-out images to score int8 on")
    calib, calib_source, calib_hash = calibration_inputs(meta, bundle, calibrate, count)
    (h, w), chans = size_hw(meta["input_size"]), int(meta.get("in_chans", 3))
    example = torch.zeros(1, chans, h, w)
    copy_of = copy.deepcopy(model)
    folded = fold_batchnorm(copy_of, example)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp{os.getpid()}.xml")
    onnx_tmp = output.with_name(f".{output.stem}.tmp{os.getpid()}.onnx")
    preprocess = Preprocess.from_meta(meta)
    try:
        write_onnx(copy_of, onnx_tmp, example, {}, dynamic_batch=True)
        fp32 = ov.convert_model(str(onnx_tmp))
        dataset = nncf.Dataset(calib, lambda x: x.numpy())
        if accuracy_control:
            val = nncf.Dataset(
                [
                    (preprocess(val_images[s : s + 64]), labels[s : s + 64])
                    for s in range(0, len(val_images), 64)
                ],  # fmt: skip
                lambda item: item[0].numpy(),
            )

            def accuracy(compiled, items) -> float:
                right = total = 0
                for x, y in items:
                    out = torch.from_numpy(compiled(x.numpy())[0])
                    right += int((out.argmax(1) == y).sum())
                    total += len(y)
                return right / max(total, 1)

            int8 = nncf.quantize_with_accuracy_control(
                fp32, dataset, val, accuracy, max_drop=max_drop / 100,
                drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib),
            )  # fmt: skip
            method = f"NNCF accuracy-controlled post-training quantization (max drop {max_drop:g})"
        else:
            # NNCF counts dataset items: here batches of up to 32 images
            int8 = nncf.quantize(fp32, dataset, subset_size=len(calib))
            method = "NNCF post-training quantization"
        ran = OpenVinoModule(int8, "fp32")
        exact = compute_logits(model, val_images, preprocess, 64)
        got = compute_logits(ran, val_images, preprocess, 64)
        record = {
            "method": method,
            "calibration": {
                "images": sum(len(b) for b in calib),
                "source": calib_source,
                "sha256": calib_hash,
            },
            "scored_on": {
                "images": len(labels),
                "source": f"held-out images of {meta['data']['source']}",
            },
            "top1_fp32": _top1(exact, labels),
            "top1_int8": _top1(got, labels),
            "agreement": 100 * float((exact.argmax(1) == got.argmax(1)).float().mean()),
            "max_drop": max_drop,
        }
        record["drop"] = record["top1_fp32"] - record["top1_int8"]
        if record["drop"] > max_drop:
            hint = (
                ""
                if accuracy_control
                else "; try --accuracy-control (NNCF keeps the costly layers in fp32)"
            )
            raise QuantizationError(
                f"int8 top-1 {record['top1_int8']:.2f}% is {record['drop']:.2f} points below fp32 "
                f"{record['top1_fp32']:.2f}% (limit --max-drop {max_drop:g}), so {output} was "
                f"not written{hint}"
            )
        props = export_metadata(
            meta,
            export_format="openvino",
            precision="int8",
            input_shape=tuple(example.shape),
            dynamic_batch=True,
            opset=DEFAULT_OPSET,
            batchnorm_folded=folded,
        )
        full = json.loads(props[META_KEY])
        full["export"]["quantization"] = record
        props[META_KEY] = json.dumps(full)
        props["quantization"] = json.dumps(record)
        save_openvino(int8, tmp, props)
        os.replace(tmp.with_suffix(".bin"), output.with_suffix(".bin"))
        os.replace(tmp, output)
    finally:
        for leftover in (tmp, tmp.with_suffix(".bin"), onnx_tmp):
            leftover.unlink(missing_ok=True)
    size_bytes = output.stat().st_size + output.with_suffix(".bin").stat().st_size
    return QuantizeResult(output, size_bytes, record, time.perf_counter() - start)
