"""A bounded load test of `cnnzoo serve`, on loopback only: requests/s and p50/p99 latency
with and without batching.

    python bench/serve_load.py --model resnet18 --requests 200 --concurrency 16 --threads 1

Two servers start on 127.0.0.1 (free ports) from the same exported .onnx file (seeded
weights), run by `--backend` (onnxruntime by default; auto: the engine serve times): one with --max-batch 1 (every image alone), one with --max-batch N. The client
sends a fixed number of requests (one JPEG each, `--concurrency` at a time) to each server in
turn, `--rounds` times, after a few untimed warm-up requests; then it stops the servers and
exits. The client runs in this process, each server in its own, so they do not share a GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from PIL import Image

from cnnzoo import create_model
from cnnzoo.benchmark import signal_weights_
from cnnzoo.export import export_model, model_meta


def start_server(onnx: Path, max_batch: int, delay_ms: float, threads: int, backend: str):
    cmd = [sys.executable, "-m", "cnnzoo", "serve", "-c", str(onnx), "--host", "127.0.0.1",
           "--port", "0", "--quiet", "--max-batch", str(max_batch), "--max-delay-ms",
           str(delay_ms), "--threads", str(threads), "--backend", backend]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if " on http://127.0.0.1:" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    url = line.split(" on ")[1].split()[0].rstrip("/")
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server never answered /health")


async def load(url: str, body: bytes, n: int, concurrency: int) -> tuple[float, list[float]]:
    """Wall seconds for `n` requests, `concurrency` in flight; each request's latency (ms)."""
    latencies: list[float] = []
    queue = list(range(n))
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while queue:
                queue.pop()
                t = time.perf_counter()
                r = await client.post("/predict", content=body)
                latencies.append(1000 * (time.perf_counter() - t))
                if r.status_code != 200:
                    raise SystemExit(f"request failed: {r.status_code} {r.text}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--requests", type=int, default=200, help="per server and round (200)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-delay-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1, help="model threads in each server (1)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--backend", default="onnxruntime", help="the servers' engine (onnxruntime; auto: timed)"
    )
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    arr = (torch.rand(240, 320, 3, generator=g) * 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    body = buf.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        onnx = Path(tmp) / f"{args.model}.onnx"
        model = signal_weights_(create_model(args.model))
        export_model(model, model_meta(args.model, 1000), onnx, dynamic_batch=True, progress=False)
        configs = {"no batching (max-batch 1)": (1, 0.0)}
        configs[f"batching (max-batch {args.max_batch}, {args.max_delay_ms:g} ms)"] = (
            args.max_batch,
            args.max_delay_ms,
        )
        servers = {
            k: start_server(onnx, b, d, args.threads, args.backend) for k, (b, d) in configs.items()
        }
        results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in configs}
        try:
            for _, url in servers.values():  # warm-up, untimed
                asyncio.run(load(url, body, 2 * args.concurrency, args.concurrency))
            for _ in range(args.rounds):  # alternate, so load changes hit both alike
                for k, (_, url) in servers.items():
                    wall, lat = asyncio.run(load(url, body, args.requests, args.concurrency))
                    results[k][0].append(args.requests / wall)
                    results[k][1].extend(lat)
            stats = {k: httpx.get(url + "/stats").json() for k, (_, url) in servers.items()}
            engines = {
                k: httpx.get(url + "/model").json()["engine"] for k, (_, url) in servers.items()
            }
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)
    print(
        f"{args.model} (engines: {', '.join(sorted(set(engines.values())))}, {args.threads} "
        f"thread(s) per server), {args.requests} "
        f"requests x {args.rounds} rounds per server, {args.concurrency} in flight, "
        f"320x240 JPEG; load {os.getloadavg()[0]:.2f}"
    )
    print("| server | requests/s (per round) | p50 ms | p99 ms | mean batch |")
    print("|---|---:|---:|---:|---:|")
    for k, (rates, lat) in results.items():
        mean_batch = stats[k]["images"] / max(1, stats[k]["batches"])
        print(
            f"| {k} | {statistics.median(rates):.1f} ({', '.join(f'{r:.1f}' for r in rates)}) "
            f"| {pct(lat, 50):.0f} | {pct(lat, 99):.0f} | {mean_batch:.1f} |"
        )


if __name__ == "__main__":
    main()
