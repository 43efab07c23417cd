"""`cnnzoo predict --checkpoint C PATH...`: top-k classes of image files and folders."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from cnnzoo.cli.checkpoint_arg import add_inference_options

HELP = "classify image files and folders with a trained checkpoint"

DESCRIPTION = """\
Classify images with a checkpoint written by `cnnzoo train` (a run folder means its
best.safetensors). Preprocessing comes from the checkpoint's sidecar: shorter side resized to
input_size / crop_pct, centre crop, normalisation, as in eval. Folders are searched
recursively for image files. Unreadable files are reported and skipped; the exit status is 2
when no image could be read.

examples:
  cnnzoo predict runs/resnet20-digits-20250101-120000 samples/
  cnnzoo predict --checkpoint best.safetensors cat.jpg --topk 3 --json
  cnnzoo predict --checkpoint RUN photos/ --csv > predictions.csv --save-vis vis/
  cnnzoo predict model.onnx photos/           # a file from cnnzoo export (.onnx or .xml)
  cnnzoo predict --backend openvino RUN photos/   # one engine instead of the fastest

The engine: --backend auto (default) times every installed engine that can run the model on
the first batch (the exact PyTorch model, its fast fp32 / bf16 forms, onnxruntime, OpenVINO
fp32 / bf16) and keeps the fastest; the choice and the timings are printed on stderr.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="image files or folders; the first may be the model (a run folder, .safetensors, "
        ".onnx or .xml) instead of --checkpoint",
    )
    p.add_argument(
        "--checkpoint",
        "-c",
        help="run folder or .safetensors written by cnnzoo train, or an .onnx / .xml file from "
        "cnnzoo export (or give it as the first PATH)",
    )
    p.add_argument("--topk", type=int, default=5, help="classes per image (5, at most all)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (32)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV: file,rank,class,index,prob")
    p.add_argument(
        "--save-vis",
        metavar="DIR",
        help="save each image with its label drawn on (and the true class, green when right, "
        "red when wrong, for images in a folder named after a class)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="average each image's prediction with its mirror's (models trained with flips)",
    )
    add_inference_options(p)


def _table(results, k: int) -> str:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.data.images import shown

    rows = [[shown(r.file)] + [f"{shown(c)} {100 * p:5.1f}%" for c, _, p in r.top] for r in results]
    head = ["file"] + [f"top-{i + 1}" for i in range(k)]
    widths = [max(len(x[i]) for x in [head, *rows] if i < len(x)) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), *map(fmt, rows)])


def model_and_images(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The model file and the image paths: `predict RUN IMAGES` (a run folder or cnnzoo
    checkpoint) and `predict FILE.onnx IMAGES` (or .xml) name the model as their first path."""
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.cli.checkpoint_arg import looks_like_checkpoint
    from cnnzoo.errors import CnnzooError
    from cnnzoo.infer.runtime import is_torchscript  # (refused, in one line, when loaded)

    if args.checkpoint:
        return args.checkpoint, args.paths
    if len(args.paths) > 1 and (
        looks_like_checkpoint(args.paths[0]) or is_torchscript(args.paths[0])
    ):
        return args.paths[0], args.paths[1:]
    if args.paths[0].lower().endswith((".onnx", ".xml")) and len(args.paths) > 1:
        return args.paths[0], args.paths[1:]
    raise CnnzooError(
        "which checkpoint? give --checkpoint RUN, or the run folder / .safetensors / .onnx / "
        ".xml file before the images"
    )


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.data.images import shown
    from cnnzoo.errors import CnnzooError
    from cnnzoo.export.engines import open_predictor
    from cnnzoo.infer.predict import collect_images
    from cnnzoo.insight.annotate import draw_prediction

    if args.topk < 1:
        raise CnnzooError(f"--topk must be at least 1 (got {args.topk})")
    if args.batch_size < 1:
        raise CnnzooError(f"--batch-size must be at least 1 (got {args.batch_size})")
    model_file, paths = model_and_images(args)
    predictor = open_predictor(model_file, args.backend, args.device, args.tta, args.precision)
    files, missing = collect_images(paths)
    on_image = None
    if args.save_vis:
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from pathlib import Path

        vis = Path(args.save_vis)
        vis.mkdir(parents=True, exist_ok=True)  # before any work: a bad path fails at once
        counter = iter(range(10**9))

        def on_image(f, image, pred):
            true = Path(f).parent.name if Path(f).parent.name in predictor.classes else None
            draw_prediction(image, pred, vis / f"{next(counter):05d}_{Path(f).stem}.png", true)

    results, unreadable = predictor.predict_files(files, args.batch_size, args.topk, on_image)
    errors = missing + unreadable
    for f, reason in errors:
        # the data layer's messages name the file already: say it once
        for prefix in (f"cannot read image {shown(f)}: ", f"{shown(f)}: "):
            if reason.startswith(prefix):
                reason = reason[len(prefix) :]
        print(f"cnnzoo predict: skipped {shown(f)}: {reason}", file=sys.stderr)
    k = min(args.topk, len(predictor.classes))
    path = predictor.path.describe() if predictor.path else "none (no image read)"
    print(f"cnnzoo predict: inference path: {path}", file=sys.stderr)
    if args.json:
        out = {
            "checkpoint": str(model_file),
            "inference": path,
            "results": [{**r.to_dict(), "file": shown(r.file)} for r in results],
            "errors": [{"file": shown(f), "reason": reason} for f, reason in errors],
        }
        print(json.dumps(out, indent=2))
    elif args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["file", "rank", "class", "index", "prob"])
        for r in results:
            for rank, (c, i, p) in enumerate(r.top, 1):
                w.writerow([shown(r.file), rank, c, i, f"{p:.6f}"])
    elif results:
        print(_table(results, k))
    if not results:
        raise CnnzooError(f"no image could be read from {len(paths)} path(s)")
    return 0
