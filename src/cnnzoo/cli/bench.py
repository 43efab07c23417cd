"""`cnnzoo bench --model M`: images/s and ms per batch of a zoo model on random input."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "time a model (inference or training step): images/s, ms per batch, peak memory"

DESCRIPTION = """\
Time a zoo model on random input: warm-up iterations, then timed ones; prints images/s, the
median ms per batch with its spread, peak memory, and the machine (CPU and its bf16 features,
threads, load). Close other work for figures you want to quote, and compare settings within
one session: a busy machine slows everything.

  --optimize       the inference form predict and eval use: BatchNorm folded into the
                   convolutions, channels-last, no autograd (with --dtype bf16: bf16 weights)
  --dtype bf16     bf16 (autocast for the plain model and for training)
  --all            every model (or those matching --model's glob) at batch 1, a table
  --plot FILE.png  with --all: published ImageNet top-1 against the measured images/s

examples:
  cnnzoo bench --model resnet50 --batch 16
  cnnzoo bench --model resnet50 --batch 16 --optimize --dtype bf16 --json
  cnnzoo bench --model resnet18 --mode train --input-size 128 --batch 32 --dtype bf16
  cnnzoo bench --all --optimize --plot zoo-speed.png
  cnnzoo bench --model resnet50 --backend auto        # what predict's auto would run
  cnnzoo bench --all --backend pytorch,openvino,auto --plot zoo-engines.png
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", help="model name (with --all: a glob, default all)")
    p.add_argument("--batch", type=int, help="images per batch (16; with --all 1)")
    p.add_argument("--input-size", type=int, help="image side (default: the model's own)")
    p.add_argument("--mode", choices=["infer", "train"], default="infer", help="(infer)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="(fp32)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--optimize", action="store_true", help="the fast inference form (see above)")
    p.add_argument(
        "--backend",
        default="pytorch",
        metavar="ENGINE",
        help="pytorch (default); onnxruntime: the model exported to ONNX (fp32); openvino: as an "
        "OpenVINO IR, in --dtype (pip install 'cnnzoo[openvino]'); auto: every installed "
        "engine's candidates timed on the batch, the fastest kept, as predict does. With --all, "
        "a comma list (pytorch,openvino,auto): one images/s column (and plot series) each",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    p.add_argument("--warmup", type=int, help="untimed iterations first (3; with --all 1)")
    p.add_argument("--iters", type=int, help="timed iterations (10; with --all 3)")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's, one per core)")
    p.add_argument("--json", action="store_true", help="print JSON (one object; --all: a list)")
    p.add_argument("--all", action="store_true", help="a table over the zoo")
    p.add_argument("--plot", metavar="FILE.png", help="with --all: accuracy against speed")


def _line(r) -> str:
    s = r.settings
    m = r.machine
    flags = [s.mode, s.dtype] + [
        n for n in ("channels_last", "compile", "optimize") if getattr(s, n)
    ]
    if r.engine:
        flags.append(f"engine {r.choice or r.engine}")
    return (
        f"{s.model} batch {s.batch} at {r.input_size}px ({', '.join(flags)}): "
        f"{r.images_per_s:.1f} images/s, {r.ms_per_batch:.1f} ms per batch "
        f"(min {r.ms_min:.1f}, max {r.ms_max:.1f}, IQR {r.ms_iqr:.1f}; {s.iters} iterations), "
        f"peak memory {r.peak_memory_mb:.0f} MB\n"
        f"machine: {m['cpu']} [{' '.join(m['cpu_features']) or 'no bf16 features'}], "
        f"{m['threads']} threads of {m['cores']} cores, load {m['load_1min']}, "
        f"torch {m['torch']}" + (f", {m['gpu']}" if "gpu" in m else "")
    )


def _settings(args: argparse.Namespace, model: str, zoo: bool):
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.benchmark import BenchSettings

    def pick(value, single, many):
        return value if value is not None else (many if zoo else single)

    return BenchSettings(
        model=model,
        batch=pick(args.batch, 16, 1),
        input_size=args.input_size,
        mode=args.mode,
        dtype=args.dtype,
        channels_last=args.channels_last,
        compile=args.compile,
        optimize=args.optimize,
        backend=args.backend,
        device=args.device,
        warmup=pick(args.warmup, 3, 1),
        iters=pick(args.iters, 10, 3),
    )


def _backends(value: str) -> list[str]:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.cfg import BACKENDS
    from cnnzoo.errors import CnnzooError

    names = [b.strip() for b in value.split(",") if b.strip()]
    bad = [b for b in names if b not in BACKENDS]
    if bad or not names or len(set(names)) != len(names):
        raise CnnzooError(
            f"--backend {value!r}: give one of {', '.join(BACKENDS)} (with --all, a comma list "
            "of different ones)"
        )
    return names


def _run_all(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo import list_models
    from cnnzoo.benchmark import benchmark_zoo
    from cnnzoo.errors import CnnzooError
    from cnnzoo.zoo_facts import PUBLISHED_TOP1
    from cnnzoo.zoo_table import ZOO_TABLE

    names = list_models(args.model or "*")
    if not names:
        raise CnnzooError(f"no model matches {args.model!r}; try `cnnzoo models`")
    backends = _backends(args.backend)
    rows, failed = [], []
    if not args.json:
        speed = " ".join(f"{b[:11]:>11}" for b in backends)
        print(f"{'model':<22} {'input':>5} {speed} {'ms/batch':>9} {'top-1':>6}   (images/s)")
    template = _settings(args, "", zoo=True)
    for name, results in benchmark_zoo(template, names, backends, progress=not args.json):
        ran = [r for r in results.values() if not isinstance(r, str)]
        failed += [(f"{name} ({b})", r) for b, r in results.items() if isinstance(r, str)]
        rows += ran
        if not args.json and ran:
            top1 = PUBLISHED_TOP1.get(name)
            cells = " ".join(
                f"{'-':>11}" if isinstance(r, str) else f"{r.images_per_s:>11.2f}"
                for r in results.values()
            )
            print(
                f"{name:<22} {ran[0].input_size:>5} {cells} {ran[0].ms_per_batch:>9.1f} "
                f"{f'{top1:.2f}' if top1 else '-':>6}",
                flush=True,
            )
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    elif rows:
        print(_line(rows[-1]).split("\n")[1])
    if args.plot and rows:
        # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
        from cnnzoo.insight.plots import plot_accuracy_vs_speed

        # one series per engine when there are several, else one colour per family
        points = [
            (
                name,
                r.settings.backend if len(backends) > 1 else ZOO_TABLE[name][0],
                r.images_per_s,
                PUBLISHED_TOP1[name],
                ZOO_TABLE[name][2],
            )
            for r in rows
            if (name := r.settings.model) in PUBLISHED_TOP1
        ]
        s, m = rows[0].settings, rows[0].machine
        how = f"{s.dtype}{', fast form' if s.optimize else ''}, engines {', '.join(backends)}"
        subtitle = (
            f"batch {s.batch}, {f'{s.input_size} px' if s.input_size else 'native input sizes'}, "
            f"{how}; point area: parameters\n{m['cpu']} [{' '.join(m['cpu_features'])}], "
            f"{m['threads']} thread(s), load {m['load_1min']}"
        )
        plot_accuracy_vs_speed(points, args.plot, subtitle)
        print(f"plot: {args.plot}")
    for name, reason in failed:
        print(f"cnnzoo bench: {name} did not run: {reason}", file=sys.stderr)
    if not rows:
        raise CnnzooError("no model ran; see the reasons above")
    return 0


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import torch

    from cnnzoo.artifacts.files import check_output
    from cnnzoo.benchmark import benchmark
    from cnnzoo.errors import CnnzooError

    if args.threads is not None:
        if args.threads < 1:
            raise CnnzooError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    if args.plot and not args.all:
        raise CnnzooError("--plot draws the whole zoo: add --all")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise CnnzooError(f"--plot writes a PNG: give a name ending in .png (got {args.plot})")
    if args.plot:  # a target that cannot be written fails now, not after the whole zoo
        check_output(args.plot, (".png",), "--plot")
    if args.all:
        return _run_all(args)
    if not args.model:
        raise CnnzooError("--model is needed (or --all for the whole zoo)")
    if len(_backends(args.backend)) > 1:
        raise CnnzooError("several --backend values go with --all; time one model in one engine")
    try:
        r = benchmark(_settings(args, args.model, zoo=False))
    except RuntimeError as e:  # e.g. an input too small for the model, out of memory
        raise CnnzooError(f"{args.model} did not run: {str(e).splitlines()[0]}") from None
    print(json.dumps(r.to_dict(), indent=2) if args.json else _line(r))
    return 0
