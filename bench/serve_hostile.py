"""Hostile clients against `cnnzoo serve`, on loopback only, with the issue-25 figures:

    python bench/serve_hostile.py --scenario all

- stalled: the server under `ulimit -n 1024`; 1,100 connections send half a header and
  stall; meanwhile another client sends 10 requests (latency of each), and the log's growth.
- big: 32 PNGs just under 40 MP in one request, then 4 such requests at once (peak RSS of
  the server, sampled every 20 ms, and its VmHWM), and a 16 px request sent while a request
  of 16 such PNGs is being served (its latency).
- drift: 10,000 mixed good and bad requests (RSS before and after).

Each scenario starts its own server (a subprocess, seeded weights exported to ONNX) and
stops it; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from cnnzoo import create_model
from cnnzoo.benchmark import signal_weights_
from cnnzoo.export import export_model, model_meta


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, onnx: Path, log: Path, nofile: int | None = None, *extra: str) -> None:
        cmd = [sys.executable, "-m", "cnnzoo", "serve", "-c", str(onnx), "--port", "0",
               "--threads", "1", *extra]  # fmt: skip

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = log
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True, preexec_fn=limit
        )
        line = self.proc.stdout.readline()
        if " on http://127.0.0.1:" not in line:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r} {log.read_text()[-500:]}")
        self.url = line.split(" on ")[1].split()[0].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])
        for _ in range(600):
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        self.peak = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mb(self.proc.pid))
            except (FileNotFoundError, ProcessLookupError):
                return

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def close(self) -> float:
        """Stops the server; its VmHWM (peak resident MB)."""
        hwm = rss_mb(self.proc.pid, "VmHWM")
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=60)
        return hwm


def png_just_under_40mp() -> bytes:
    w, h = 7745, 5164  # 39,995,180 pixels; large tiles compress to ~120 KB
    y, x = np.ogrid[0:h, 0:w]
    tiles = ((x // 256 + y // 256) % 3).astype(np.uint8)
    arr = np.stack([tiles * 90, 255 - tiles * 60, (tiles == 1) * 200], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def small_jpeg(side: int = 64) -> bytes:
    arr = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def stalled(onnx: Path, tmp: Path, n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 200)), hard))
    log = tmp / "stalled.log"
    srv = Server(onnx, log, 1024)
    body = small_jpeg()
    try:
        size0 = log.stat().st_size
        socks, t = [], time.monotonic()
        for _ in range(n):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                socks.append(s)
            except OSError as e:
                print(f"  connection {len(socks)} failed: {e}")
                break
        opened = time.monotonic() - t
        lat = []
        for _ in range(10):
            t = time.monotonic()
            r = httpx.post(srv.url + "/predict", content=body, timeout=30)
            lat.append(time.monotonic() - t)
            assert r.status_code == 200, r.text
            time.sleep(0.2)
        stats = httpx.get(srv.url + "/stats").json()
        time.sleep(11)  # past the read deadline: every stalled connection is cut
        alive = 0
        for s in socks:
            s.settimeout(0.05)
            try:
                s.recv(1)  # a byte (the 408) or b"" (closed): the server let it go
            except TimeoutError:
                alive += 1
            except OSError:
                pass
            s.close()
        grew = log.stat().st_size - size0
        print(f"stalled: {len(socks)} stalled connections opened in {opened:.1f} s (server "
              f"ulimit -n 1024, cap {stats['connection_limit']}); another client's 10 requests: "
              f"max {max(lat) * 1000:.0f} ms, median {sorted(lat)[5] * 1000:.0f} ms; evicted "
              f"{stats['connections_evicted']}, peak open {stats['connections_peak']}; still "
              f"open after 11 s: {alive}; log grew {grew:,} bytes "
              f"({len(log.read_text().splitlines())} lines)")  # fmt: skip
    finally:
        srv.close()


def multipart(pictures: list[bytes]) -> list:
    return [("file", (f"p{i}.png", p, "image/png")) for i, p in enumerate(pictures)]


def big(onnx: Path, tmp: Path) -> None:
    png = png_just_under_40mp()
    print(f"big: one {len(png):,}-byte PNG of 7745x5164 (39,995,180 pixels)")
    srv = Server(onnx, tmp / "big1.log", None, "--quiet")
    try:
        base = srv.rss()
        t = time.monotonic()
        r = httpx.post(srv.url + "/predict", files=multipart([png] * 32), timeout=600)
        took = time.monotonic() - t
        print(f"  32 in one request: {r.status_code} in {took:.1f} s; RSS {base:.0f} MB idle, "
              f"peak {srv.peak:.0f} MB sampled, VmHWM {srv.close():.0f} MB")  # fmt: skip
    finally:
        srv.close() if srv.proc.poll() is None else None
    srv = Server(onnx, tmp / "big4.log", None, "--quiet")
    try:

        async def four() -> list[tuple[int | str, float]]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=900) as c:

                async def one() -> tuple[int | str, float]:
                    t = time.monotonic()
                    try:
                        r = await c.post("/predict", files=multipart([png] * 32))
                    except httpx.HTTPError as e:
                        return type(e).__name__, time.monotonic() - t
                    return r.status_code, time.monotonic() - t

                return await asyncio.gather(*(one() for _ in range(4)))

        out = asyncio.run(four())
        print(f"  4 such requests at once: {[s for s, _ in out]} in "
              f"{max(t for _, t in out):.1f} s; peak {srv.peak:.0f} MB sampled, "
              f"VmHWM {srv.close():.0f} MB")  # fmt: skip
    finally:
        srv.close() if srv.proc.poll() is None else None
    srv = Server(onnx, tmp / "hol.log", None, "--quiet")
    try:
        tiny = small_jpeg(16)

        async def during() -> tuple[float, float]:
            async with httpx.AsyncClient(base_url=srv.url, timeout=900) as c:
                t0 = time.monotonic()
                heavy = asyncio.create_task(c.post("/predict", files=multipart([png] * 16)))
                await asyncio.sleep(2.0)
                t = time.monotonic()
                r = await c.post("/predict", content=tiny)
                small = time.monotonic() - t
                assert r.status_code == 200 and not heavy.done(), "the heavy request ended first"
                await heavy
                return small, time.monotonic() - t0

        small, whole = asyncio.run(during())
        print(f"  a 16 px request 2 s into a request of 16 such PNGs: answered in "
              f"{small * 1000:.0f} ms (the heavy one took {whole:.1f} s)")  # fmt: skip
    finally:
        srv.close() if srv.proc.poll() is None else None


def drift(onnx: Path, tmp: Path, n: int) -> None:
    srv = Server(onnx, tmp / "drift.log", None, "--quiet", "--read-timeout", "2")
    good = small_jpeg(200)
    bad = [b"not an image", good[: len(good) // 2], b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 100]
    kinds = ["good", "multi", *range(len(bad)), "topk", "disconnect"]

    async def load(count: int) -> None:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as c:
            queue = list(range(count))

            async def worker() -> None:
                while queue:
                    i = queue.pop()
                    kind = kinds[i % len(kinds)]
                    if kind == "good":
                        await c.post("/predict", content=good)
                    elif kind == "multi":
                        await c.post("/predict", files=multipart([good, bad[0], good]))
                    elif kind == "topk":
                        await c.post("/predict?topk=%C2%B2", content=good)
                    elif kind == "disconnect":
                        _, w = await asyncio.open_connection("127.0.0.1", srv.port)
                        w.write(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Length: 9000\r\n\r\n" + good[:300])  # fmt: skip
                        await w.drain()
                        w.close()
                    else:
                        await c.post("/predict", content=bad[int(kind)])

            await asyncio.gather(*(worker() for _ in range(8)))

    try:
        asyncio.run(load(300))  # warm-up: first batches, threads, caches
        start = srv.rss()
        t = time.monotonic()
        marks = []
        for _ in range(4):
            asyncio.run(load(n // 4))
            marks.append(srv.rss())
        print(f"drift: {n:,} mixed requests (good, multipart with a bad file, 4 kinds of bad "
              f"body, a bad topk, a client gone mid-body) in {time.monotonic() - t:.0f} s; RSS "
              f"{start:.0f} MB after warm-up, then {', '.join(f'{m:.0f}' for m in marks)} MB "
              f"(each quarter); growth {marks[-1] - start:+.0f} MB")  # fmt: skip
    finally:
        srv.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=["stalled", "big", "drift", "all"], default="all")
    p.add_argument("--stalled", type=int, default=1100)
    p.add_argument("--requests", type=int, default=10_000)
    p.add_argument("--model", default="resnet18", help="for big (drift uses resnet20)")
    args = p.parse_args()
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = {}
        for name in {args.model, "resnet20"}:
            files[name] = tmp / f"{name}.onnx"
            size = 32 if name == "resnet20" else 224
            model = signal_weights_(create_model(name))
            meta = model_meta(name, 1000 if size == 224 else 10)
            export_model(model, meta, files[name], dynamic_batch=True, progress=False)
        if args.scenario in ("stalled", "all"):
            stalled(files["resnet20"], tmp, args.stalled)
        if args.scenario in ("big", "all"):
            big(files[args.model], tmp)
        if args.scenario in ("drift", "all"):
            drift(files["resnet20"], tmp, args.requests)
    print(f"load after: {Path('/proc/loadavg').read_text().strip()}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
