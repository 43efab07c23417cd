"""`cnnzoo explain RUN IMAGES...`: where the model looks: Grad-CAM / Grad-CAM++ overlays."""

from __future__ import annotations

import argparse
import sys

from cnnzoo.cli.checkpoint_arg import add_checkpoint_option, split_checkpoint

HELP = "show where a model looks: Grad-CAM / Grad-CAM++ heat maps over images"

DESCRIPTION = """\
Draw a class-activation map over each image: where the evidence for a class lies. The image is
shown as the model sees it (resized and cropped as in predict), with the class and its
probability written on it. By default the map explains the model's top class; --class explains
another one (e.g. the true class of a mistake).

The map is read at the last layer whose output still has more than one position (the end of
the feature extractor, never the classifier), found by one forward pass, for every family;
--layer NAME picks another module (names as in the model's state dict, e.g. layer3).

explain always runs the exact PyTorch model (it has no --backend): Grad-CAM needs gradients,
which the other engines (onnxruntime, OpenVINO) do not compute.

examples:
  cnnzoo explain runs/resnet20-cifar10-20250101-120000 photos/ --out cams/
  cnnzoo explain --checkpoint RUN cat.jpg --class dog --method gradcam++
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    add_checkpoint_option(p)
    p.add_argument("--class", dest="class_name", metavar="NAME", help="explain this class")
    p.add_argument(
        "--method", choices=["gradcam", "gradcam++"], default="gradcam", help="(gradcam)"
    )
    p.add_argument("--layer", metavar="NAME", help="module to read the map at (automatic)")
    p.add_argument("--out", default="explain", metavar="DIR", help="output folder (./explain)")
    p.add_argument("--batch-size", type=int, default=16, help="images per pass (16)")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda:N")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from pathlib import Path

    from cnnzoo.errors import CnnzooError
    from cnnzoo.infer.machine import resolve_device
    from cnnzoo.infer.predict import Predictor, collect_images
    from cnnzoo.insight.explain import explain_files

    if args.batch_size < 1:
        raise CnnzooError(f"--batch-size must be at least 1 (got {args.batch_size})")
    checkpoint, paths = split_checkpoint(args, args.paths)
    if not paths:
        raise CnnzooError("no images given: add image files or folders after the checkpoint")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    predictor = Predictor.from_checkpoint(checkpoint, resolve_device(args.device))
    files, missing = collect_images(paths)
    done, unreadable, layer = explain_files(
        predictor,
        files,
        args.out,
        class_name=args.class_name,
        method=args.method,
        layer=args.layer,
        batch_size=args.batch_size,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    for f, reason in missing + unreadable:
        print(f"cnnzoo explain: skipped {f}: {reason}", file=sys.stderr)
    if not done:
        raise CnnzooError(f"no image could be read from {len(paths)} path(s)")
    for e in done:
        print(f"{e.file}  {e.class_name} {100 * e.prob:.1f}%  -> {e.out}")
    print(f"{args.method} at layer {layer}: {len(done)} image(s) in {args.out}")
    return 0
