"""`cnnzoo export`: a checkpoint or model to ONNX / OpenVINO / TorchScript, checked against
PyTorch (and, with --quantize int8, scored against it on held-out images)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnzoo.cfg import EXPORT_PRECISIONS, size_text

HELP = "export a checkpoint or model to ONNX, OpenVINO or TorchScript, with a parity check"

DESCRIPTION = """\
Write a model to ONNX, an OpenVINO IR or TorchScript with everything a consumer needs inside
the file: class names, input size, mean/std, resize and crop, and `preprocessing`: every rule
from image file to input (EXIF, alpha, colour conversion, resize, crop, normalisation) as
typed values (ONNX metadata_props, each value one JSON value; the IR's rt_info section
`cnnzoo`, same keys; TorchScript extra files cnnzoo.json and
preprocessing.json). Before it reports success, the exported file and the
PyTorch model classify the same images (the run's held-out images, --check-images DIR, or a
deterministic input when neither is available); it prints the largest logit difference and
the top-1 agreement, and fails, writing nothing, below 99.9% agreement or above 1e-4 (fp32).

examples:
  cnnzoo export --checkpoint runs/RUN --output model.onnx --dynamic-batch
  cnnzoo export --checkpoint runs/RUN --format openvino --output model.xml --dynamic-batch
  cnnzoo export --checkpoint runs/RUN --format torchscript --output model.pt
  cnnzoo export --model resnet50 --weights resnet50-11ad3fa6.pth --output r50.onnx \\
      --check-images photos/ --classes imagenet_classes.txt
  cnnzoo export --checkpoint runs/RUN --quantize int8 --output model-int8.xml
  cnnzoo predict model.onnx photos/

--quantize int8 calibrates NNCF's post-training quantization on 300 of the run's training
images (--calibrate DIR for others), scores the int8 IR and the exact model on the run's
held-out split, prints both top-1 and their agreement, and writes the file only when int8 is
within --max-drop points (1.0); otherwise it writes nothing and suggests --accuracy-control.
The file's metadata records the calibration (image count, SHA-256) and the measured drop.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", "-c", help="run folder or .safetensors from cnnzoo train")
    src.add_argument("--model", "-m", help="a registered model name (see `cnnzoo models`)")
    p.add_argument("--weights", help="with --model: torchvision / timm / cnnzoo weights file")
    p.add_argument(
        "--num-classes",
        type=int,
        help="with --model: outputs (default: the weights' classifier, else the model's)",
    )
    p.add_argument(
        "--classes",
        metavar="FILE",
        help="with --model: class names, one per line (default: the indices)",
    )
    p.add_argument(
        "--format",
        "-f",
        choices=["onnx", "openvino", "torchscript"],
        default=None,
        help="onnx (default); openvino: an IR, .xml + .bin (converted by OpenVINO from the "
        "ONNX graph; pip install 'cnnzoo[openvino]'); torchscript",
    )
    p.add_argument(
        "--output",
        "-o",
        help="file to write (default: beside the checkpoint, or ./MODEL, .onnx / .xml / "
        ".torchscript.pt)",
    )
    p.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="ONNX / OpenVINO: any batch size (default: batch 1); TorchScript traces take any "
        "batch",
    )
    p.add_argument("--opset", type=int, help="ONNX opset (default: 17)")
    p.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32")
    p.add_argument(
        "--no-fold",
        action="store_true",
        help="keep BatchNorm as its own layers (default: folded into the convolutions, "
        "within 1e-4 of the model and checked for parity like the rest)",
    )
    p.add_argument(
        "--check-images",
        metavar="DIR",
        help="images to check parity on (default: the run's held-out images)",
    )
    p.add_argument("--check-limit", type=int, default=64, help="images checked at most (64)")
    q = p.add_argument_group("int8 (OpenVINO, through NNCF)")
    q.add_argument(
        "--quantize",
        choices=["int8"],
        help="post-training quantization to an int8 OpenVINO IR, calibrated on the run's "
        "training images, then scored against the exact model on the run's held-out split; "
        "the file is kept only within --max-drop (implies --format openvino)",
    )
    q.add_argument(
        "--calibrate", metavar="DIR", help="calibration images (default: the run's training split)"
    )
    q.add_argument(
        "--calibration-images",
        type=int,
        default=300,
        metavar="N",
        help="images calibrated on (300)",
    )
    q.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        metavar="POINTS",
        help="largest top-1 loss of int8 against fp32 that is kept (1.0 points)",
    )
    q.add_argument(
        "--accuracy-control",
        action="store_true",
        help="NNCF's accuracy-controlled quantization: layers that cost top-1 stay in fp32 "
        "until the drop is within --max-drop",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar while loading")


def _default_output(args: argparse.Namespace) -> Path:
    suffix = {"onnx": ".onnx", "openvino": ".xml"}.get(args.format, ".torchscript.pt")
    if args.checkpoint:
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from cnnzoo.artifacts.sidecar import resolve_checkpoint

        ckpt = resolve_checkpoint(args.checkpoint)
        return ckpt.with_name(ckpt.stem + suffix)
    return Path(args.model + suffix)


def _from_model(args: argparse.Namespace):
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import torch

    from cnnzoo.errors import CnnzooError
    from cnnzoo.export import model_meta
    from cnnzoo.models.factory import create_model

    num_classes = args.num_classes
    if num_classes is None and args.weights:  # the weights' classifier says how many classes
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from cnnzoo.artifacts.statedict import read_state_dict

        with torch.device("meta"):
            head = create_model(args.model).classifier_name + ".weight"
        w = read_state_dict(args.weights).get(head)
        num_classes = int(w.shape[0]) if w is not None else None
    classes = None
    if args.classes:
        try:
            # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
            from cnnzoo.artifacts.files import read_small_text

            lines = read_small_text(args.classes, 64 * 2**20).splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise CnnzooError(f"--classes {args.classes}: cannot read it ({e})") from None
        classes = [line.strip() for line in lines if line.strip()]
        num_classes = num_classes or len(classes)
    model = create_model(args.model, num_classes=num_classes, weights=args.weights)
    return model, model_meta(args.model, model.num_classes, classes)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.errors import CnnzooError
    from cnnzoo.export import export_model
    from cnnzoo.infer.metadata import DEFAULT_OPSET

    if args.opset is None:
        args.opset = DEFAULT_OPSET
    if args.quantize and args.format not in (None, "openvino"):
        raise CnnzooError(
            "--quantize int8 writes an OpenVINO IR: leave --format out or use openvino"
        )
    if not args.quantize and (args.calibrate or args.accuracy_control):
        raise CnnzooError("--calibrate and --accuracy-control go with --quantize int8")
    args.format = args.format or ("openvino" if args.quantize else "onnx")
    if args.checkpoint and (args.weights or args.num_classes or args.classes):
        raise CnnzooError(
            "--weights, --num-classes and --classes go with --model; a checkpoint has its own"
        )
    if args.opset < 7:
        raise CnnzooError(f"--opset must be at least 7 (got {args.opset})")
    if args.checkpoint:
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from cnnzoo.infer.load import load_checkpoint

        model, meta = load_checkpoint(args.checkpoint)
    else:
        model, meta = _from_model(args)
    output = Path(args.output) if args.output else _default_output(args)
    if args.quantize:
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from cnnzoo.export.quantize import quantize_openvino

        q = quantize_openvino(
            model,
            meta,
            output,
            calibrate=args.calibrate,
            count=args.calibration_images,
            max_drop=args.max_drop,
            accuracy_control=args.accuracy_control,
            progress=not args.no_progress,
        )
        print(
            f"exported {meta['model']} ({len(meta['classes'])} classes, {meta['input_size']} px) "
            f"to {q.path}: {q.size_bytes / 1e6:.1f} MB, openvino int8, any batch size, "
            f"{q.seconds:.1f} s"
        )
        print(q.summary())
        return 0
    result = export_model(
        model,
        meta,
        output,
        fmt=args.format,
        precision=args.precision,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        check_images=args.check_images,
        check_limit=args.check_limit,
        progress=not args.no_progress,
        fold=not args.no_fold,
    )
    details = [args.format + (f" opset {args.opset}" if args.format != "torchscript" else "")]
    any_batch = args.dynamic_batch or args.format == "torchscript"
    details += [args.precision, "any batch size" if any_batch else "batch 1"]
    if result.batchnorm_folded:
        details.append(f"{result.batchnorm_folded} BatchNorm folded")
    print(
        f"exported {meta['model']} ({len(meta['classes'])} classes, "
        f"{size_text(meta['input_size'])} px) to {result.path}: {result.size_bytes / 1e6:.1f} MB, "
        f"{', '.join(details)}, {result.seconds:.1f} s"
    )
    print(result.parity.summary())
    return 0
