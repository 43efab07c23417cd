"""The prediction server through a real HTTP client, on servers started on 127.0.0.1:
good images (raw and multipart) get the predictor's own probabilities, bad uploads get a 4xx
with one line and the server keeps serving, bodies over the limit are cut off, concurrent
requests share forward passes, the token is enforced, and `cnnzoo serve` runs an .onnx file."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

import cnnzoo
from cnnzoo.export import model_meta
from cnnzoo.infer.predict import Predictor

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
from cnnzoo.serve import Limits, build_app, model_card, serving  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = ["cat", "dog", "fish", "bird"]


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet20", num_classes=len(CLASSES))
    meta = model_meta("resnet20", len(CLASSES), CLASSES)
    return Predictor(model, meta, precision="fp32")  # exact: the ONNX server is compared to it


def app_for(predictor, **kw):
    return build_app(predictor, model_card(predictor.meta, "resnet20.safetensors", "pytorch"), **kw)


def png(seed: int = 0, size: tuple[int, int] = (40, 30)) -> bytes:
    g = torch.Generator().manual_seed(seed)
    arr = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def jpeg(size=(96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png(0, size))).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_good_images_raw_and_multipart(predictor, tmp_path):
    files = [tmp_path / f"im{i}.png" for i in range(2)]
    for i, f in enumerate(files):
        f.write_bytes(png(i))
    expected, _ = predictor.predict_files([str(f) for f in files], topk=3)
    with serving(app_for(predictor)) as url, httpx.Client(base_url=url) as client:
        assert url.startswith("http://127.0.0.1:")
        r = client.post("/predict?topk=3", content=files[0].read_bytes())
        assert r.status_code == 200, r.text
        got = r.json()["results"][0]["predictions"]
        want = expected[0].to_dict()["predictions"]
        assert [p["class"] for p in got] == [p["class"] for p in want]
        assert [p["prob"] for p in got] == pytest.approx([p["prob"] for p in want], abs=1e-6)
        multi = [("file", (f.name, f.read_bytes(), "image/png")) for f in files]
        r = client.post("/predict", files=multi)
        out = r.json()["results"]
        assert r.status_code == 200 and [x["file"] for x in out] == ["im0.png", "im1.png"]
        assert out[1]["predictions"][0]["class"] == expected[1].top[0][0]
        assert len(out[0]["predictions"]) == len(CLASSES)  # top-5 capped at 4 classes
        card = client.get("/model").json()
        assert card["classes"] == CLASSES and card["preprocessing"]["crop"] == 32
        crop_pct = predictor.meta["crop_pct"]
        assert card["preprocessing"]["resize"] == int(32 / crop_pct + 1e-6)


def test_bad_uploads_get_4xx_and_the_server_keeps_serving(predictor):
    whole = jpeg()
    limits = Limits(max_body_bytes=1_000_000, max_pixels=100 * 100, max_images=2)
    cases = [
        (b"this is not an image", 400, "not a readable image"),
        (whole[: len(whole) // 2], 400, "truncated"),
        (b"", 400, "empty upload"),
        (png(0, (150, 120)), 413, "18,000 pixels, over the limit of 10,000"),
    ]
    with serving(app_for(predictor, limits=limits)) as url, httpx.Client(base_url=url) as client:
        for body, status, words in cases:
            r = client.post("/predict", content=body)
            assert r.status_code == status, (words, r.text)
            error = r.json()["error"]
            assert words in error and "\n" not in error
            assert client.get("/health").json()["status"] == "ok"
        three = [("f", (f"{i}.png", png(i), "image/png")) for i in range(3)]
        r = client.post("/predict", files=three)
        assert 400 <= r.status_code < 500 and "\n" not in r.json()["error"]
        assert client.post("/predict", files=[("x", (None, "1"))]).status_code == 400
        assert client.post("/predict?topk=0", content=png()).status_code == 400
        assert client.get("/predict").status_code == 405
        assert client.post("/predict", content=png()).status_code == 200  # still serving
        stats = client.get("/stats").json()
        assert stats["refused"] == 7 and stats["served"] == 1


def test_oversized_body_is_refused_before_it_is_read(predictor):
    limits = Limits(max_body_bytes=50_000)
    big = b"\0" * 120_000
    with serving(app_for(predictor, limits=limits)) as url, httpx.Client(base_url=url) as client:
        r = client.post("/predict", content=big)  # Content-Length says it all
        assert r.status_code == 413 and "over the limit of 50,000" in r.json()["error"]

        def chunks():  # no Content-Length: counted while it streams
            for _ in range(12):
                yield b"\0" * 10_000

        r = client.post("/predict", content=chunks())
        assert r.status_code == 413 and "over the limit" in r.json()["error"]
        assert client.post("/predict", content=png()).status_code == 200


async def _burst(url: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        replies = await asyncio.gather(*(client.post("/predict", content=png(i)) for i in range(n)))
    for i, r in enumerate(replies):
        assert r.json()["results"][0]["file"] == "upload", i
    return [r.status_code for r in replies]


@pytest.mark.parametrize("max_batch", [8, 1])
def test_concurrent_requests_are_batched(predictor, max_batch):
    app = app_for(predictor, max_batch=max_batch, max_delay_ms=400)
    with serving(app) as url:
        assert asyncio.run(_burst(url, 8)) == [200] * 8
        stats = httpx.get(url + "/stats").json()
    assert stats["images"] == 8
    if max_batch == 1:
        assert stats["batches"] == 8 and stats["largest_batch"] == 1
    else:  # eight requests at once share forward passes
        assert stats["batches"] < 8 and stats["largest_batch"] >= 2, stats


def test_token_is_required_except_for_health_and_the_page(predictor):
    with serving(app_for(predictor, token="s3cret")) as url, httpx.Client(base_url=url) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200  # static: it asks for the token itself
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.get("/model", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.post("/predict", content=png(), headers=headers).status_code == 401
            assert c.get("/stats", headers=headers).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert c.get("/model", headers=good).json()["model"] == "resnet20"
        assert c.post("/predict", content=png(), headers=good).status_code == 200


def test_cli_serves_an_onnx_file_on_loopback(predictor, tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnzoo.export import export_model

    path = tmp_path / "r20.onnx"
    export_model(predictor.model, predictor.meta, path, dynamic_batch=True, progress=False)
    cmd = [sys.executable, "-m", "cnnzoo", "serve", "-c", str(path), "--port", "0", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "on http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" on ")[1].split()[0].rstrip("/")
        for _ in range(300):  # the socket is bound before the line is printed
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        card = httpx.get(url + "/model").json()
        # auto: the faster of the engines that read an ONNX file, named on the card
        assert card["backend"] in ("onnxruntime", "openvino") and card["classes"] == CLASSES
        assert card["engine"].startswith(card["backend"])
        assert card["export"]["file_format"] == "onnx"
        r = httpx.post(url + "/predict", content=png(1))
        want, _ = predictor.predict_files([str(_write(tmp_path, png(1)))], topk=5)
        got = r.json()["results"][0]["predictions"]
        assert got[0]["class"] == want[0].top[0][0]
        assert got[0]["prob"] == pytest.approx(want[0].top[0][2], abs=1e-5)
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) is not None  # SIGTERM stops it


def _write(folder, data: bytes):
    path = folder / "query.png"
    path.write_bytes(data)
    return path


def test_numbers_and_schemes_are_parsed_strictly(predictor):
    with serving(app_for(predictor, token="s3cret")) as url, httpx.Client(base_url=url) as c:
        good = {"Authorization": "bearer s3cret"}  # HTTP's scheme is case-insensitive
        assert c.post("/predict", content=png(), headers=good).status_code == 200
        for topk in ("²", "١", "9" * 40, "-1", " 3"):  # isdigit() accepts the first two
            r = c.post("/predict", params={"topk": topk}, content=png(), headers=good)
            assert r.status_code == 400 and "topk" in r.json()["error"], (topk, r.text)
        req = c.build_request("POST", "/predict", files=[("f", ("0.png", png(0), "image/png"))],
                              headers=good)  # fmt: skip
        kind = req.headers["Content-Type"]
        req.headers["Content-Type"] = kind.replace("multipart/form-data", "Multipart/Form-Data")
        r = c.send(req)
        assert r.status_code == 200, r.text  # parsed as a form: raw, its bytes are no image
        assert c.get("/health").json()["status"] == "ok"
