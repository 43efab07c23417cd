"""The prediction server's HTTP API (Starlette): /predict, /health, /model, /stats, and the
page at /.

Every refusal is JSON `{"error": "<one line>"}` with a 4xx status; a bad upload never stops
the server. With a token, every request but /health and the page itself (static, no data:
it asks for the token and sends it) needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cnnzoo.data.images import MAX_ASPECT
from cnnzoo.infer.predict import Prediction, Predictor
from cnnzoo.serve.batcher import Batcher
from cnnzoo.serve.uploads import Limits, UploadError, decode_upload

# the page is one static file: inline CSS and JS, nothing fetched from elsewhere
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src blob: data:; connect-src 'self'"
)


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def whole_number(text: str, digits: int = 18) -> int | None:
    """`text` as a whole number when it is 1..`digits` ASCII digits, else None (str.isdigit
    also accepts '²' and Arabic-Indic digits, which int() refuses or reads differently)."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes:
    from Content-Length before reading, or while streaming a chunked upload."""
    text = request.headers.get("content-length", "")
    length = whole_number(text)
    if text and length is None:
        raise UploadError(400, "Content-Length is not a whole number of bytes")
    if length is not None and length > limit:
        raise UploadError(413, f"request body of {length:,} bytes is over the limit of {limit:,}")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise UploadError(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def uploaded_files(request: Request, limits: Limits) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded file: multipart form files, or the raw body as one."""
    body = await read_body(request, limits.max_body_bytes)
    ctype = request.headers.get("content-type", "")
    # whatever the type says, the bytes decide; media types are case-insensitive
    if not ctype.lower().lstrip().startswith("multipart/form-data"):
        return [(unquote(request.headers.get("x-filename", "")) or "upload", body)]
    sent = False

    async def replay() -> dict[str, Any]:  # the body once more, for the form parser
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(
        max_files=limits.max_images, max_fields=limits.max_images, max_part_size=len(body) + 1
    )
    files = []
    for i, (_, value) in enumerate(form.multi_items()):
        if hasattr(value, "read"):
            files.append((value.filename or f"file{i}", await value.read()))
    await form.close()
    if not files:
        raise UploadError(400, "the form holds no file; send images as form files")
    return files


def build_app(
    predictor: Predictor,
    card: dict[str, Any],
    *,
    max_batch: int = 16,
    max_delay_ms: float = 5.0,
    limits: Limits | None = None,
    token: str | None = None,
    default_topk: int = 5,
) -> Starlette:
    """The ASGI app serving `predictor`; `card` is what GET /model returns."""
    limits = limits or Limits()
    batcher = Batcher(predictor.probabilities, max_batch, max_delay_ms)
    card = {**card, "limits": limits.to_dict(), "max_batch": max_batch}
    card["max_delay_ms"] = max_delay_ms
    requests = {"served": 0, "refused": 0}
    aspect = getattr(predictor, "max_aspect", MAX_ASPECT)  # the long-strip cut, as predict's

    def authorised(request: Request) -> bool:
        if token is None:
            return True
        got = request.headers.get("authorization", "")
        scheme, _, given = got.strip().partition(" ")  # the scheme is case-insensitive
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        )

    def guarded(endpoint):
        async def wrapper(request: Request) -> Response:
            if not authorised(request):
                requests["refused"] += 1
                return _error(
                    401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            try:
                return await endpoint(request)
            except UploadError as e:
                requests["refused"] += 1
                return _error(e.status, e.message)
            except HTTPException as e:  # the form parser's refusals (too many files, ...)
                requests["refused"] += 1
                return _error(e.status_code, str(e.detail).splitlines()[0])

        return wrapper

    async def predict(request: Request) -> Response:
        topk = request.query_params.get("topk", str(default_topk))
        k = whole_number(topk, digits=9)
        if k is None or k < 1:
            raise UploadError(400, f"topk must be a positive whole number (got {topk[:20]!r})")
        files = await uploaded_files(request, limits)
        if len(files) > limits.max_images:
            raise UploadError(413, f"{len(files)} images, over the limit of {limits.max_images}")
        names, images, errors = [], [], []
        for name, data in files:  # as predict skips and names unreadable files
            try:
                images.append(await run_in_threadpool(decode_upload, data, name, limits, aspect))
                names.append(name)
            except UploadError as e:
                errors.append((name, e))
        if not images:  # nothing to answer: the first refusal, naming every bad file
            raise UploadError(errors[0][1].status, "; ".join(e.message for _, e in errors))
        probs = await batcher.submit(images)
        tops = predictor.top(probs, k)
        requests["served"] += 1
        results = [Prediction(n, t).to_dict() for n, t in zip(names, tops, strict=True)]
        skipped = [{"file": f, "reason": e.message.removeprefix(f"{f}: ")} for f, e in errors]
        return JSONResponse({"model": card["model"], "results": results, "errors": skipped})

    async def model(request: Request) -> Response:
        return JSONResponse(card)

    async def stats(request: Request) -> Response:
        return JSONResponse({**requests, **batcher.stats.to_dict()})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": card["model"]})

    async def page(request: Request) -> Response:
        html = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Content-Security-Policy": _PAGE_POLICY})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail).splitlines()[0])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/model", guarded(model), methods=["GET"]),
        Route("/stats", guarded(stats), methods=["GET"]),
        Route("/predict", guarded(predict), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.batcher = batcher
    return app
