"""`cnnzoo serve --checkpoint RUN|FILE.onnx`: an HTTP prediction server with a web page."""

from __future__ import annotations

import argparse
import os
import sys

from cnnzoo.cli.checkpoint_arg import add_inference_options

HELP = "serve a checkpoint or an exported .onnx file over HTTP, with a web page"

DESCRIPTION = """\
Serve a model over HTTP (Starlette on uvicorn). The model is a run folder / .safetensors
checkpoint (PyTorch) or an .onnx file written by `cnnzoo export` (onnxruntime); either way
the preprocessing is the one `cnnzoo predict` uses.

  GET  /          a page: drop or pick an image, see it with its top-5 as a bar chart
  POST /predict   one image as the raw body, or several as multipart/form-data files;
                  ?topk=N (5). Answers {"model", "results": [{"file", "predictions":
                  [{"class", "index", "prob"}, ...]}]}, as `cnnzoo predict --json` does
  GET  /model     the model card: name, classes, preprocessing, metrics, recipe, limits
  GET  /health    {"status": "ok"} (never needs the token)
  GET  /stats     requests served and refused, batches run and their sizes

Concurrent requests are batched: up to --max-batch images per forward pass, waiting at most
--max-delay-ms for a batch to fill. Bad uploads (not an image, truncated, too large, too many
pixels) get a 4xx with a one-line reason. It listens on 127.0.0.1 unless --host says
otherwise; a token makes every request except /health and the page carry
`Authorization: Bearer TOKEN` (the page asks for it). Give it in $CNNZOO_SERVE_TOKEN: a
--token on the command line is visible to every user of the machine in `ps`. Without a
token, only the listening address's own names are served (127.0.0.1 and localhost by
default; --allow-host adds one), and no browser page of another site may post to it.

Hostile clients: a request header must be whole within --read-timeout seconds and a body
within --body-timeout (with no silence longer than --read-timeout), else 408; at most
--max-connections are open (one more closes the one idle longest); pictures are made
smaller while they decode, and decoding and bodies share --max-memory-mb (beyond it: 503
with Retry-After). A request of many images is served a batch at a time, taking turns with
small requests. Such events are logged in one line each, a few per 10 s at most.

examples:
  cnnzoo serve --checkpoint runs/RUN
  cnnzoo serve --checkpoint model.onnx --port 8080 --max-batch 32 --max-delay-ms 10
  CNNZOO_SERVE_TOKEN=$(cat token.txt) cnnzoo serve -c model.onnx --host 0.0.0.0
  curl -s --data-binary @cat.jpg -H 'Content-Type: image/jpeg' localhost:8000/predict
  curl -s -F file=@a.jpg -F file=@b.png 'localhost:8000/predict?topk=3'
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        "-c",
        required=True,
        help="run folder or .safetensors from cnnzoo train, or an .onnx / .xml file from "
        "cnnzoo export",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (8000; 0: any free port)")
    p.add_argument("--max-batch", type=int, default=16, help="images per forward pass (16)")
    p.add_argument(
        "--max-delay-ms",
        type=float,
        default=5.0,
        help="longest wait for a batch to fill, in ms (5)",
    )
    p.add_argument("--max-body-mb", type=float, default=20.0, help="largest request body (20 MB)")
    p.add_argument(
        "--max-pixels",
        type=float,
        default=40.0,
        help="largest image, in megapixels (40)",
    )
    p.add_argument("--max-images", type=int, default=32, help="images per request (32)")
    p.add_argument(
        "--max-memory-mb",
        type=float,
        default=1024.0,
        help="memory for request bodies and decoding pictures, all requests together (1024)",
    )
    p.add_argument(
        "--max-connections", type=int, default=1000, help="open connections at most (1000)"
    )
    p.add_argument(
        "--read-timeout",
        type=float,
        default=10.0,
        help="seconds for a whole request header, and the longest silence in a body (10)",
    )
    p.add_argument("--body-timeout", type=float, default=60.0, help="seconds for a whole body (60)")
    p.add_argument(
        "--token",
        default=os.environ.get("CNNZOO_SERVE_TOKEN"),
        help="bearer token every request but /health and the page must carry; better in "
        "$CNNZOO_SERVE_TOKEN, which `ps` does not show",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="one more Host name to serve without a token (repeatable)",
    )
    p.add_argument("--topk", type=int, default=5, help="classes per image unless ?topk= (5)")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: all)")
    add_inference_options(p)
    p.add_argument("--quiet", action="store_true", help="no access log")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    from cnnzoo.errors import CnnzooError
    from cnnzoo.serve.uploads import DECODE_BYTES_PER_PIXEL

    for name in ("max_batch", "max_images", "topk"):
        if getattr(args, name) < 1:
            raise CnnzooError(f"--{name.replace('_', '-')} must be at least 1")
    if args.max_delay_ms < 0 or args.max_body_mb <= 0 or args.max_pixels <= 0:
        raise CnnzooError("--max-delay-ms must be >= 0, --max-body-mb and --max-pixels > 0")
    decode_mb = args.max_pixels * 1e6 * DECODE_BYTES_PER_PIXEL / 2**20
    if decode_mb > args.max_memory_mb:
        raise CnnzooError(
            f"--max-memory-mb {args.max_memory_mb:g} cannot hold the decoding of one picture of "
            f"--max-pixels {args.max_pixels:g} ({decode_mb:,.0f} MB); raise the one or lower "
            "the other"
        )
    if not 0 <= args.port <= 65535:
        raise CnnzooError(f"--port must be in 0..65535 (got {args.port})")
    if args.token is not None and not args.token.strip():
        raise CnnzooError("--token is empty; give a secret, or leave --token out")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CnnzooError(
            "the server needs starlette and uvicorn: pip install 'cnnzoo[serve]'"
        ) from None
    # imported when the command runs: `cnnzoo --help` and `cnnzoo models` import no torch
    import torch

    from cnnzoo.cfg import size_hw
    from cnnzoo.export.engines import open_predictor
    from cnnzoo.serve import Limits, build_app, model_card
    from cnnzoo.serve.access import served_names
    from cnnzoo.serve.server import (
        ConnectionRules,
        bind,
        fewer_malloc_arenas,
        is_loopback,
        serve_forever,
        url_of,
    )

    fewer_malloc_arenas()  # before any thread allocates

    if args.threads is not None:
        if args.threads < 1:
            raise CnnzooError("--threads must be at least 1")
        torch.set_num_threads(args.threads)
    predictor = open_predictor(
        args.checkpoint, args.backend, args.device, False, args.precision, args.threads
    )
    # the engine is chosen now, on a full batch, rather than on the first request
    (h, w), chans = size_hw(predictor.meta["input_size"]), int(predictor.meta.get("in_chans", 3))
    predictor.probabilities([torch.full((chans, h, w), 128, dtype=torch.uint8)] * args.max_batch)
    backend = predictor.path.engine
    print(f"cnnzoo serve: inference path: {predictor.path.describe()}", file=sys.stderr)
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_pixels=int(args.max_pixels * 1e6),
        max_images=args.max_images,
    )
    app = build_app(
        predictor,
        {**model_card(predictor.meta, args.checkpoint, backend), "engine": predictor.path.name},
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        limits=limits,
        token=args.token,
        default_topk=args.topk,
        max_memory_mb=args.max_memory_mb,
        hosts=served_names(args.host, tuple(args.allow_host)),
        check_host=True,
    )
    rules = ConnectionRules(args.max_connections, args.read_timeout, args.body_timeout)
    sock = bind(args.host, args.port)
    if not is_loopback(args.host):
        guard = "a token is required" if args.token else "no token: anyone who can reach it"
        print(
            f"cnnzoo serve: listening beyond this machine on {args.host} ({guard})", file=sys.stderr
        )
    print(
        f"serving {predictor.meta['model']} ({len(predictor.classes)} classes, {backend}) "
        f"on {url_of(sock)}/  (batches of up to {args.max_batch}, {args.max_delay_ms:g} ms)",
        flush=True,
    )
    serve_forever(app, sock, quiet=args.quiet, rules=rules)
    return 0
