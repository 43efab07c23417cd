"""Hypothesis fuzz of the server's HTTP surface, in-process (Starlette's TestClient): any
Host, Origin, token, media type, query value and body ends in a documented answer (2xx, 4xx
with a one-line JSON error, or 503), never a 500 or a hang."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnnzoo
from cnnzoo.export import model_meta
from cnnzoo.infer.predict import Predictor

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from cnnzoo.serve import build_app, model_card  # noqa: E402
from tests.helpers import png_claiming  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def client():
    torch.manual_seed(0)
    meta = model_meta("resnet20", 3, ["a", "b", "c"])
    predictor = Predictor(cnnzoo.create_model("resnet20", num_classes=3), meta, precision="fp32")
    card = model_card(meta, "m.safetensors", "pytorch")
    app = build_app(predictor, card, token=TOKEN, hosts={"testserver"}, check_host=True)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


text = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
bodies = st.one_of(st.binary(max_size=300), st.sampled_from([png_claiming(8, 8),
                   png_claiming(100_000, 100_000), png_claiming(1, 1_000_000), b""]))  # fmt: skip


def answered(r) -> None:
    assert r.status_code < 500 or r.status_code == 503, (r.status_code, r.text[:200])
    if r.status_code >= 400 and r.status_code != 404 and r.status_code != 405:
        error = r.json()["error"]
        assert error and "\n" not in error


@FUZZ
@given(topk=text, ctype=header_text, body=bodies, auth=st.sampled_from(["", TOKEN, "x"]))
def test_any_query_media_type_and_body(client, topk, ctype, body, auth):
    headers = {"content-type": ctype or "image/png"}
    if auth:
        headers["authorization"] = f"Bearer {auth}"
    answered(client.post("/predict", params={"topk": topk}, content=body, headers=headers))


@FUZZ
@given(
    host=header_text,
    origin=st.one_of(st.none(), header_text),
    site=header_text,
    auth=header_text,
    path=st.sampled_from(["/", "/model", "/stats", "/health", "/predict"]),
)
def test_any_host_origin_and_token(client, host, origin, site, auth, path):
    headers = {"host": host, "sec-fetch-site": site, "authorization": auth}
    if origin is not None:
        headers["origin"] = origin
    method = client.post if path == "/predict" else client.get
    kw = {"content": png_claiming(8, 8)} if path == "/predict" else {}
    answered(method(path, headers=headers, **kw))


@FUZZ
@given(
    parts=st.lists(st.tuples(text, st.one_of(st.none(), text), bodies), max_size=10),
    boundary=st.sampled_from(["xYz", "", "other"]),
)
def test_any_multipart_body(client, parts, boundary):
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--xYz\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    out += b"--xYz--\r\n"
    headers = {"content-type": f"multipart/form-data; boundary={boundary}",
               "authorization": f"Bearer {TOKEN}"}  # fmt: skip
    answered(client.post("/predict", content=out, headers=headers))
