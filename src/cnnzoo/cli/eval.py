"""`cnnzoo eval RUN [--data D]`: accuracy, per-class precision / recall / F1, confused pairs,
top losses, confusion matrices and a self-contained HTML report."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from cnnzoo.cli.checkpoint_arg import add_checkpoint_option, add_inference_options, split_checkpoint

HELP = "evaluate a checkpoint: accuracy, per-class P/R/F1, top losses, an HTML report"

DESCRIPTION = """\
Evaluate a checkpoint written by `cnnzoo train` (a run folder means its best.safetensors) on
the val split of a dataset: by default the one it was trained on, split with the same seed
and share, so no training image is scored. The data's classes must match the checkpoint's.
Writes, beside the checkpoint (or in --out): the JSON report eval-DATA-SPLIT.json (per-class
precision / recall / F1, the most confused pairs, the top losses), the confusion matrix
normalised (-confusion.png) and in counts (-confusion-counts.png), the top-loss images
(-top-losses.png) and eval-DATA-SPLIT.html: one page with all of it, the training curves and
the class-activation maps of the top losses. --tta writes its own (eval-DATA-SPLIT-tta.*).
A score is the model's: eval runs float32 engines only (--precision fast-fp32 by default,
each within 1e-4 of the exact logits); --precision bf16 or auto score a faster engine and
print the exact model's top-1 and the share of agreeing predictions beside it.

examples:
  cnnzoo eval runs/resnet20-digits-20250101-120000
  cnnzoo eval RUN/last.safetensors --data cifar10 --data-dir data --out cifar.json
  cnnzoo eval RUN --split test     # a folder with test/ beside train/
  cnnzoo eval RUN --tta            # also score the mirrored images, average the logits
  cnnzoo eval model.onnx                  # a file from cnnzoo export (.onnx or .xml)
  cnnzoo eval RUN --backend openvino      # one engine instead of the fastest (see --backend)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint_path",
        nargs="?",
        metavar="RUN",
        help="run folder or .safetensors written by cnnzoo train, or an .onnx / .xml file "
        "from cnnzoo export (or give it with --checkpoint)",
    )
    add_checkpoint_option(p)
    p.add_argument(
        "--data",
        help="digits, cifar10, cifar100, imagenette or a folder "
        "(default: what the checkpoint was trained on)",
    )
    p.add_argument("--data-dir", help="where cifar10/cifar100/imagenette are")
    p.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="val",
        help="which part (val: the held-out part; test: the data's test/ folder)",
    )
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
    p.add_argument(
        "--top-losses", type=int, default=16, metavar="K", help="images in the top losses (16)"
    )
    add_inference_options(p)
    # a score is the model's: float32 engines only (each within 1e-4 of the exact logits)
    # unless a faster, inexact one is asked for; then its distance from exact is printed
    p.set_defaults(precision="fast-fp32")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while loading")


def out_is_folder(out: str) -> bool:
    return Path(out).is_dir() or out.endswith(("/", "\\"))


def report_path(
    out: str | None, checkpoint: Path, data: str, split: str, tta: bool = False
) -> Path:
    name = f"eval-{Path(data).name or 'data'}-{split}{'-tta' if tta else ''}.json"
    if out is None:
        return checkpoint.parent / name
    p = Path(out)
    if out_is_folder(out):
        return p / name
    return p if p.suffix == ".json" else p.with_name(p.name + ".json")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.artifacts.files import check_output, write_json
    from cnnzoo.artifacts.sidecar import resolve_checkpoint
    from cnnzoo.data.images import shown
    from cnnzoo.errors import CnnzooError
    from cnnzoo.export.engines import open_model
    from cnnzoo.infer.evaluate import compute_logits, prepare_evaluation, score_report
    from cnnzoo.insight.report import write_error_report

    if args.batch_size < 1:
        raise CnnzooError(f"--batch-size must be at least 1 (got {args.batch_size})")
    if args.top_losses < 0:
        raise CnnzooError("--top-losses must not be negative")
    given = [args.checkpoint_path] if args.checkpoint_path else []
    if args.checkpoint and given:
        raise CnnzooError("give the checkpoint once: positionally or with --checkpoint")
    checkpoint = given[0] if given else split_checkpoint(args, [])[0]
    ckpt = resolve_checkpoint(checkpoint)
    if args.out:  # a bad --out fails before the scoring, not after
        out = Path(args.out)
        if out.exists() and not out.is_dir():  # a device or FIFO is no name to write beside
            check_output(out, (), "--out")
        (out if out_is_folder(args.out) else out.parent).mkdir(parents=True, exist_ok=True)
    model, meta, device, engines = open_model(ckpt, args.backend, args.device, args.precision)
    ev = prepare_evaluation(
        str(ckpt),
        args.data,
        split=args.split,
        data_dir=args.data_dir,
        device=device,
        val_split=args.val_split,
        seed=args.seed,
        progress=not args.no_progress,
        tta=args.tta,
        loaded=(model, meta),
        precision=args.precision,
        backend=args.backend,
        engines=engines,
    )
    logits = compute_logits(ev.path.model, ev.images, ev.preprocess, args.batch_size, tta=args.tta)
    s, report = score_report(str(ckpt), ev, logits, args.tta)
    if "bf16" in ev.path.name or "int8" in str(report["inference"]):  # asked for: say the cost
        exact = compute_logits(ev.model, ev.images, ev.preprocess, args.batch_size, tta=args.tta)
        labels = ev.labels.to(exact.device)
        report["exact"] = {
            "top1": 100.0 * float((exact.argmax(1) == labels).float().mean()),
            "agreement": 100.0
            * float(
                (exact.argmax(1) == logits.argmax(1).to(exact.device)).float().mean()
            ),  # fmt: skip
        }
    path = report_path(args.out, ckpt, report["data"], args.split, args.tta)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.with_suffix("")
    for extra in ("", "-confusion.png", "-confusion-counts.png", "-top-losses.png", ".html"):
        check_output(stem.with_name(stem.name + extra) if extra else path, (), "--out")
    write_error_report(ev, logits, report, path.with_suffix(""), args.top_losses)
    write_json(path, report)

    tta = " (flip TTA)" if args.tta else ""
    print(f"{report['model']} on {report['data']} {report['split_name']}: {s.n} images{tta}")
    print(f"inference path: {report['inference']}")
    top5 = f"  top-5 {s.top5:.2f}%" if report["top5"] is not None else ""
    print(f"top-1 {s.top1:.2f}%{top5}  loss {s.loss:.4f}")
    if "exact" in report:
        e = report["exact"]
        print(f"the exact fp32 model: top-1 {e['top1']:.2f}% ({s.top1 - e['top1']:+.2f} points "
              f"here); {e['agreement']:.2f}% of predictions agree")  # fmt: skip
    width = max(len(shown(c)) for c in report["class_metrics"])
    print(f"  {'class':<{width}}  {'precision':>9}  {'recall':>9}  {'F1':>9}  {'images':>6}")
    for name, m in report["class_metrics"].items():
        cells = "  ".join(f"{'-':>9}" if math.isnan(m[k]) else f"{m[k]:8.2f}%" for k in
                          ("precision", "recall", "f1"))  # fmt: skip
        print(f"  {shown(name):<{width}}  {cells}  {m['support']:>6}")
    if report["confused_pairs"]:
        print("most confused (true -> predicted):")
        for pair in report["confused_pairs"][:5]:
            true, predicted = shown(pair["true"]), shown(pair["predicted"])
            print(f"  {true} -> {predicted}: {pair['count']} "
                  f"({pair['share']:.1f}% of {true})")  # fmt: skip
    print(f"report: {path}\npage: {report['files']['html']}")
    return 0
