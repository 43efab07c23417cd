"""The server against hostile clients (issue 25), scaled down to run in seconds on loopback:
stalled and slow connections are cut by their deadlines and a cap while other clients are
answered, the log stays a few lines without tracebacks, memory is bounded by a budget (503
with Retry-After beyond it), large pictures are made smaller while they decode, a large
request takes turns with small ones, and Host / Origin / paths are guarded.
The full-size figures come from bench/serve_hostile.py (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import time

import numpy as np
import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.data.transforms import eval_transform
from cnnzoo.export import model_meta
from cnnzoo.infer.predict import Predictor

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
from cnnzoo.serve import ConnectionRules, build_app, model_card, serving  # noqa: E402
from cnnzoo.serve.batcher import Batcher  # noqa: E402
from cnnzoo.serve.logs import RateLimitedLog  # noqa: E402
from cnnzoo.serve.uploads import Limits, Reduction, decode_upload  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = ["cat", "dog", "fish", "bird"]


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=len(CLASSES))
    meta = model_meta("resnet20", len(CLASSES), CLASSES)
    return Predictor(model, meta, precision="fp32")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def recorded_log() -> tuple[RateLimitedLog, Lines]:
    logger = logging.getLogger("cnnzoo.test.serve")
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    lines = Lines()
    lines.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(lines)
    logger.propagate = False
    return RateLimitedLog(logger, burst=3, window=60), lines


def app_for(predictor, meta=None, **kw):
    card = model_card(meta or predictor.meta, "resnet20.safetensors", "pytorch")
    return build_app(predictor, card, **kw)


def picture(w: int, h: int, fmt: str = "PNG", seed: int = 0) -> bytes:
    """A photo-like picture: smooth gradients with some texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(np.sin(x / 37) + np.cos(y / 53)) * 60 + 128, x * 255 / w, y * 255 / h], -1)
    arr = np.clip(arr + rng.normal(0, 20, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, quality=90)
    return buf.getvalue()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def stalled(url: str, n: int) -> list[socket.socket]:
    """n connections that each send half a request header and then nothing."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port_of(url)), timeout=5)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        socks.append(s)
    return socks


def answer_of(s: socket.socket, wait: float) -> bytes:
    """What the server sent on `s` before closing it (b"" when it closed without a word);
    None when it is still open after `wait` seconds."""
    s.settimeout(wait)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except TimeoutError:
        return None  # type: ignore[return-value]
    except ConnectionResetError:
        pass
    return got


def test_stalled_connections_are_capped_and_cut_while_others_are_answered(predictor):
    log, lines = recorded_log()
    rules = ConnectionRules(max_connections=20, read_timeout=1.5, body_timeout=3)
    with serving(app_for(predictor, log=log), rules=rules) as url:
        socks = stalled(url, 50)  # far more than the cap
        t = time.monotonic()
        r = httpx.post(url + "/predict", content=picture(40, 30), timeout=10)
        assert r.status_code == 200 and time.monotonic() - t < 1.0  # let in at once
        stats = httpx.get(url + "/stats").json()
        assert stats["connections_evicted"] >= 30 and stats["connections_peak"] <= 21
        answers = [answer_of(s, 5) for s in socks]  # every one ends by the read deadline
        assert None not in answers
        assert any(a.startswith(b"HTTP/1.1 408") for a in answers)
        for s in socks:
            s.close()
        assert httpx.get(url + "/stats").json()["header_timeouts"] >= 1
    text = "\n".join(lines.lines)
    assert "Traceback" not in text and len(lines.lines) <= 2 * 3, lines.lines  # 2 kinds x 3
    assert "limit of 20 connections" in text


def test_short_and_trickled_bodies_get_408(predictor):
    rules = ConnectionRules(max_connections=50, read_timeout=0.6, body_timeout=2.0)
    with serving(app_for(predictor), rules=rules) as url:
        port = port_of(url)
        short = socket.create_connection(("127.0.0.1", port))
        short.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nab"
        )
        t = time.monotonic()
        got = answer_of(short, 5)
        assert got.startswith(b"HTTP/1.1 408") and b"no byte of the body" in got
        assert time.monotonic() - t < 2.0
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
        t, got = time.monotonic(), None
        slow.settimeout(0.3)
        while time.monotonic() - t < 6:  # a byte every 0.3 s: never silent for 0.6 s
            try:
                slow.sendall(b"x")
                got = slow.recv(4096)
                break
            except TimeoutError:
                continue
            except OSError:
                break
        assert got and got.startswith(b"HTTP/1.1 408") and b"within 2 s" in got
        assert 1.8 < time.monotonic() - t < 4
        # a POST the app answers without reading its body is cut at the deadline too
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99\r\n\r\n")
        assert answer_of(s, 5) is not None
        assert httpx.get(url + "/health").status_code == 200


def test_a_client_gone_mid_body_is_one_line(predictor):
    log, lines = recorded_log()
    with serving(app_for(predictor, log=log)) as url:
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", port_of(url)))
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n")
            s.sendall(b"x" * 100)
            time.sleep(0.05)
            s.close()
        time.sleep(0.3)
        assert httpx.post(url + "/predict", content=picture(40, 30)).status_code == 200
        assert httpx.get(url + "/stats").json()["disconnected"] == 6
    assert len(lines.lines) == 3 and all("went away" in x for x in lines.lines), lines.lines


def test_memory_budget_refuses_with_503_and_413(predictor):
    big = picture(1000, 1000)  # decoding it holds up to 12 MB
    with serving(app_for(predictor, max_memory_mb=4)) as url:
        r = httpx.post(url + "/predict", content=big)
        assert r.status_code == 413 and "memory budget of 4 MB" in r.json()["error"]
    app = app_for(predictor, max_memory_mb=64)
    budget = app.state.budget
    budget.wait_s = 0.3
    with serving(app) as url:
        budget.used = budget.limit - 1_000_000  # as if other requests held it
        t = time.monotonic()
        r = httpx.post(url + "/predict", content=big)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "memory budget" in r.json()["error"] and time.monotonic() - t < 3
        budget.used = 0
        assert httpx.post(url + "/predict", content=big).status_code == 200
        stats = httpx.get(url + "/stats").json()
        assert stats["memory_in_use_bytes"] == 0 and stats["overloaded"] == 1
        assert stats["memory_peak_bytes"] < 64 * 2**20


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_large_pictures_are_reduced_while_decoding_and_still_agree(predictor, fmt):
    data = picture(2003, 1401, fmt)
    full = decode_upload(data, "x", Limits())
    for size, interp in ((224, "bilinear"), (32, "bicubic")):
        side = int(size / 0.875)
        small = decode_upload(data, "x", Limits(), Reduction(side, interp))
        assert min(small.shape[1:]) == 4 * side  # the model needs `side`: 4x that is kept
        a = eval_transform(full[None], size, (0.5,) * 3, (0.5,) * 3, 0.875, interp)
        b = eval_transform(small[None], size, (0.5,) * 3, (0.5,) * 3, 0.875, interp)
        diff = (a - b).abs() * 0.5 * 255  # in 0..255 pixel units
        assert a.shape == b.shape and diff.mean() < 0.6 and diff.max() < 5, (size, interp)
    # the server answers with the probabilities of the full-size picture
    want = predictor.probabilities([full])[0]
    with serving(app_for(predictor)) as url:
        got = httpx.post(url + "/predict", content=data).json()["results"][0]["predictions"]
    for p in got:
        assert p["prob"] == pytest.approx(float(want[p["index"]]), abs=0.02)


def test_a_large_request_takes_turns_with_small_ones():
    calls: list[list[int]] = []

    def predict(images):
        calls.append([int(im[0, 0, 0]) for im in images])
        time.sleep(0.02)
        return torch.zeros(len(images), 2)

    async def scenario() -> int:
        batcher = Batcher(predict, max_batch=8, max_delay_ms=1)
        await batcher.start()
        big = asyncio.create_task(batcher.submit([torch.zeros(3, 2, 2, dtype=torch.uint8)] * 64))
        await asyncio.sleep(0.03)  # the large request is under way
        started = len(calls)  # batches begun when the small request arrives
        await batcher.submit([torch.ones(3, 2, 2, dtype=torch.uint8)])
        rows = await big
        await batcher.stop()
        assert rows.shape == (64, 2) and max(len(c) for c in calls) <= 8
        return started

    started = asyncio.run(scenario())
    served_in = next(i for i, c in enumerate(calls) if 1 in c)
    # in the next batch or the one after (a busy machine may start one more of the big
    # request's before the small one lands), never after all 64 images
    assert 1 <= started and served_in <= started + 2
    assert sum(len(c) for c in calls) == 65


def test_host_origin_and_paths(predictor):
    meta = {**predictor.meta, "data": {"source": "/home/someone/secret/flowers"}}
    meta["recipe"] = {"data": "/home/someone/secret/flowers", "out": "C:\\runs\\r1"}
    app = app_for(predictor, meta=meta, hosts={"127.0.0.1", "localhost"}, check_host=True)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        port = port_of(url)
        assert c.get("/model").status_code == 200
        card = c.get("/model", headers={"Host": f"LocalHost:{port}"}).json()
        assert card["data"]["source"] == "flowers" and card["recipe"]["out"] == "r1"
        assert "/home/" not in str(card) and "secret" not in str(card)
        r = c.get("/model", headers={"Host": f"rebind.example:{port}"})
        assert r.status_code == 403 and "Host" in r.json()["error"]
        form = [("file", ("a.png", picture(40, 30), "image/png"))]
        evil = {"Origin": "http://evil.example"}
        assert c.post("/predict", files=form, headers=evil).status_code == 403
        same = {"Origin": f"http://127.0.0.1:{port}"}
        assert c.post("/predict", files=form, headers=same).status_code == 200
        site = {"Sec-Fetch-Site": "cross-site"}
        assert c.post("/predict", files=form, headers=site).status_code == 403
        assert c.get("/health", headers={"Host": "any.example"}).status_code == 200
    tokened = app_for(predictor, token="t0k", hosts={"127.0.0.1"}, check_host=True)
    with serving(tokened) as url:  # with a token, any Host name may be served
        ok = {"Host": "api.example", "Authorization": "Bearer t0k"}
        assert httpx.get(url + "/model", headers=ok).status_code == 200
