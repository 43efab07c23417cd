"""`cnnzoo eval --checkpoint C [--data D]`: top-1/top-5, per-class accuracy, confusion matrix."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

HELP = "evaluate a checkpoint: top-1/top-5, per-class accuracy, confusion matrix"

DESCRIPTION = """\
Evaluate a checkpoint written by `cnnzoo train` (a run folder means its best.safetensors) on
the val split of a dataset: by default the one it was trained on, split with the same seed
and share, so no training image is scored. The data's classes must match the checkpoint's.
Writes a JSON report and a confusion-matrix PNG (same name, -confusion.png).

examples:
  cnnzoo eval --checkpoint runs/resnet20-digits-20250101-120000
  cnnzoo eval --checkpoint RUN/last.safetensors --data cifar10 --data-dir data --out cifar.json
  cnnzoo eval --checkpoint RUN --tta      # also score the mirrored images, average the logits
  cnnzoo eval --checkpoint model.onnx --backend onnxruntime   # a file from cnnzoo export
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        "-c",
        required=True,
        help="run folder or .safetensors written by cnnzoo train, or an .onnx file from "
        "cnnzoo export",
    )
    p.add_argument(
        "--backend",
        choices=["pytorch", "onnxruntime"],
        help="what runs the model (default: onnxruntime for an .onnx file, else pytorch)",
    )
    p.add_argument(
        "--data",
        help="digits, cifar10, cifar100, imagenette or a folder "
        "(default: what the checkpoint was trained on)",
    )
    p.add_argument("--data-dir", help="where cifar10/cifar100/imagenette are")
    p.add_argument("--split", choices=["train", "val"], default="val", help="which part (val)")
    p.add_argument(
        "--val-split",
        type=float,
        help="held-out share when the data has no val split (the training run's)",
    )
    p.add_argument("--seed", type=int, help="seed of that split (the training run's)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (256)")
    p.add_argument(
        "--out",
        metavar="PATH",
        help="report .json path, or a folder (default: eval-DATA-SPLIT.json beside the checkpoint)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="average each image's logits with its mirror's (models trained with flips)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "fast-fp32", "bf16"],
        default="auto",
        help="auto (default): the fastest of the exact model and its fast forms (BatchNorm "
        "folded, channels-last, bf16 where the CPU has AMX/AVX512-BF16), timed on the first "
        "batch; fp32: the exact model; fast-fp32 / bf16: that fast form (pytorch backend)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar while loading")


def out_is_folder(out: str) -> bool:
    return Path(out).is_dir() or out.endswith(("/", "\\"))


def report_path(out: str | None, checkpoint: Path, data: str, split: str) -> Path:
    name = f"eval-{Path(data).name or 'data'}-{split}.json"
    if out is None:
        return checkpoint.parent / name
    p = Path(out)
    if out_is_folder(out):
        return p / name
    return p if p.suffix == ".json" else p.with_name(p.name + ".json")


def run(args: argparse.Namespace) -> int:
    from ..engine.checkpoint import resolve_checkpoint, write_json
    from ..engine.evaluate import evaluate_checkpoint
    from ..engine.plots import plot_confusion
    from ..errors import CnnzooError
    from ..export.runtime import load_model

    if args.batch_size < 1:
        raise CnnzooError(f"--batch-size must be at least 1 (got {args.batch_size})")
    ckpt = resolve_checkpoint(args.checkpoint)
    if args.out:  # a bad --out fails before the scoring, not after
        out = Path(args.out)
        (out if out_is_folder(args.out) else out.parent).mkdir(parents=True, exist_ok=True)
    model, meta, device = load_model(ckpt, args.backend, args.device)
    s, report = evaluate_checkpoint(
        str(ckpt),
        args.data,
        split=args.split,
        data_dir=args.data_dir,
        batch_size=args.batch_size,
        device=device,
        val_split=args.val_split,
        seed=args.seed,
        progress=not args.no_progress,
        tta=args.tta,
        loaded=(model, meta),
        precision=args.precision,
    )
    path = report_path(args.out, ckpt, report["data"], args.split)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = path.with_name(path.stem + "-confusion.png")
    report["confusion_png"] = str(png)
    write_json(path, report)
    plot_confusion(s.confusion, report["classes"], png)

    tta = " (flip TTA)" if args.tta else ""
    print(f"{report['model']} on {report['data']} {report['split_name']}: {s.n} images{tta}")
    print(f"inference path: {report['inference']}")
    print(f"top-1 {s.top1:.2f}%  top-5 {s.top5:.2f}%  loss {s.loss:.4f}")
    width = max(len(c) for c in report["classes"])
    for name, pc in s.per_class.items():
        acc = "-" if math.isnan(pc["acc"]) else f"{pc['acc']:6.2f}%"
        print(f"  {name:<{width}}  {acc}  ({pc['n']} images)")
    print(f"report: {path}\nconfusion matrix: {png}")
    return 0
