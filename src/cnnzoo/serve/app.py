"""The prediction server's HTTP API (Starlette): /predict, /health, /model, /stats, and the
page at /.

Every refusal is JSON `{"error": "<one line>"}` with a 4xx status; a bad upload never stops
the server. With a token, every request but /health and the page itself (static, no data:
it asks for the token and sends it) needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any
from urllib.parse import unquote

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from cnnzoo.data.images import MAX_ASPECT
from cnnzoo.data.transforms import resize_side
from cnnzoo.infer.predict import Prediction, Predictor
from cnnzoo.serve.access import Access
from cnnzoo.serve.batcher import Batcher
from cnnzoo.serve.budget import Lease, MemoryBudget, Overloaded, TooLarge
from cnnzoo.serve.logs import RateLimitedLog, loop_exception_handler
from cnnzoo.serve.uploads import Limits, Reduction, UploadError, decode_upload, probe

# the page is one static file: inline CSS and JS, nothing fetched from elsewhere
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src blob: data:; connect-src 'self'"
)


# a decode below this many bytes takes no turn: small pictures never wait behind large ones
SMALL_DECODE_BYTES = 16 * 2**20
_BUSY = {"Retry-After": "1", "Connection": "close"}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def whole_number(text: str, digits: int = 18) -> int | None:
    """`text` as a whole number when it is 1..`digits` ASCII digits, else None (str.isdigit
    also accepts '²' and Arabic-Indic digits, which int() refuses or reads differently)."""
    if 0 < len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


async def read_body(request: Request, limit: int, lease: Lease | None = None) -> bytes:
    """The request body, refused (413) as soon as it is known to exceed `limit` bytes:
    from Content-Length before reading, or while streaming a chunked upload. With `lease`,
    the bytes are taken from the memory budget before they are read."""
    text = request.headers.get("content-length", "")
    length = whole_number(text)
    if text and length is None:
        raise UploadError(400, "Content-Length is not a whole number of bytes")
    if length is not None and length > limit:
        raise UploadError(413, f"request body of {length:,} bytes is over the limit of {limit:,}")
    # a form's files are copied once more by the parser: count them twice
    copies = 2 if _media_type(request).startswith("multipart/") else 1
    if lease is not None and length is not None:
        await lease.take(copies * length)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise UploadError(413, f"request body is over the limit of {limit:,} bytes")
        if lease is not None and (length is None or total > length):
            await lease.take(copies * len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    # media types are case-insensitive
    return request.headers.get("content-type", "").strip().lower()


async def uploaded_files(
    request: Request, limits: Limits, lease: Lease | None = None
) -> list[tuple[str, bytes]]:
    """(name, bytes) of each uploaded file: multipart form files, or the raw body as one."""
    body = await read_body(request, limits.max_body_bytes, lease)
    # whatever the type says, the bytes decide
    if not _media_type(request).startswith("multipart/form-data"):
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


class Decoder:
    """Decodes uploads in a few threads of its own, within the memory budget: a large
    picture takes one of `slots` turns (and its decode's bytes from the budget) while it
    decodes; one more thread stays free for small pictures, so they never wait behind
    large ones."""

    def __init__(
        self,
        limits: Limits,
        reduction: Reduction | None,
        slots: int = 2,
        max_aspect: float = MAX_ASPECT,
    ) -> None:
        self.limits, self.reduction, self.max_aspect = limits, reduction, max_aspect
        self.pool = ThreadPoolExecutor(slots + 1, thread_name_prefix="cnnzoo-decode")
        self.slots = asyncio.Semaphore(slots)

    async def decode(self, data: bytes, name: str, lease: Lease) -> torch.Tensor:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            self.pool, probe, data, name, self.limits, self.reduction
        )
        turn = self.slots if found.decode_bytes > SMALL_DECODE_BYTES else contextlib.nullcontext()
        try:
            async with turn:
                await lease.take(found.decode_bytes)
                try:
                    image = await loop.run_in_executor(
                        self.pool,
                        decode_upload,
                        data,
                        name,
                        self.limits,
                        self.reduction,
                        self.max_aspect,
                    )
                finally:
                    await lease.give(found.decode_bytes)
        except TooLarge as e:
            raise UploadError(413, f"{name}: decoding it needs {e}; send a smaller image") from None
        await lease.take(image.nbytes)  # held until the request is answered
        return image

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def reduction_for(predictor: Predictor) -> Reduction:
    """What the model's preprocessing needs of a picture: its resize's shorter side."""
    pre = predictor.preprocess
    size = pre.input_size
    longest = max(size) if isinstance(size, (tuple, list)) else int(size)
    return Reduction(resize_side(longest, pre.crop_pct), pre.interpolation)


def build_app(
    predictor: Predictor,
    card: dict[str, Any],
    *,
    max_batch: int = 16,
    max_delay_ms: float = 5.0,
    limits: Limits | None = None,
    token: str | None = None,
    default_topk: int = 5,
    max_memory_mb: float = 1024,
    hosts: set[str] | None = None,
    check_host: bool = False,
    log: RateLimitedLog | None = None,
    decode_slots: int = 2,
) -> Starlette:
    """The ASGI app serving `predictor`; `card` is what GET /model returns. `hosts` (with
    `check_host`): the Host names served without a token (None: any address literal)."""
    limits = limits or Limits()
    log = log or RateLimitedLog()
    batcher = Batcher(predictor.probabilities, max_batch, max_delay_ms)
    budget = MemoryBudget(int(max_memory_mb * 2**20))
    aspect = getattr(predictor, "max_aspect", MAX_ASPECT)  # the long-strip cut, as predict's
    decoder = Decoder(limits, reduction_for(predictor), decode_slots, aspect)
    access = Access(token, hosts, check_host)
    card = {**card, "limits": {**limits.to_dict(), "max_memory_bytes": budget.limit}}
    card.update(max_batch=max_batch, max_delay_ms=max_delay_ms)
    requests = {"served": 0, "refused": 0, "disconnected": 0, "overloaded": 0}

    def refused(status: int, message: str, **headers: str) -> JSONResponse:
        requests["refused"] += 1
        return _error(status, message, **headers)

    def guarded(endpoint, needs_token: bool = True, check_host: bool = True):
        async def wrapper(request: Request) -> Response:
            problem = (check_host and access.host_problem(request.headers)) or (
                access.origin_problem(request.method, request.headers)
            )
            if problem:
                return refused(403, problem)
            if needs_token and not access.authorised(request.headers):
                return refused(
                    401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"}
                )
            try:
                return await endpoint(request)
            except UploadError as e:  # the body may be unread: close rather than drain it
                close = {"Connection": "close"} if e.status in (408, 413) else {}
                return refused(e.status, e.message, **close)
            except Overloaded as e:
                requests["overloaded"] += 1
                log("overload", f"503 for a request: {e}")
                return refused(503, f"{e}; try again shortly", **_BUSY)
            except TooLarge as e:
                return refused(413, f"the request needs {e}", Connection="close")
            except HTTPException as e:  # the form parser's refusals (too many files, ...)
                return refused(e.status_code, str(e.detail).splitlines()[0])
            except ClientDisconnect:
                requests["disconnected"] += 1
                log("disconnect", "a client went away before its request was read whole")
                return Response(status_code=400)  # goes nowhere: the client is gone

        return wrapper

    async def predict(request: Request) -> Response:
        topk = request.query_params.get("topk", str(default_topk))
        k = whole_number(topk, digits=9)
        if k is None or k < 1:
            raise UploadError(400, f"topk must be a positive whole number (got {topk[:20]!r})")
        async with budget.lease() as lease:
            files = await uploaded_files(request, limits, lease)
            if len(files) > limits.max_images:
                raise UploadError(
                    413, f"{len(files)} images, over the limit of {limits.max_images}"
                )
            names, images, errors = [], [], []
            for name, data in files:  # as predict skips and names unreadable files
                try:
                    images.append(await decoder.decode(data, name, lease))
                    names.append(name)
                except UploadError as e:
                    errors.append((name, e))
            files.clear()  # the bytes are decoded: let them go before the model runs
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
        guard = getattr(request.app.state, "connections", None)
        more = guard.to_dict() if guard is not None else {}
        return JSONResponse({**requests, **batcher.stats.to_dict(), **budget.to_dict(), **more})

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
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(log))
        await batcher.start()
        yield
        await batcher.stop()
        decoder.close()

    routes = [
        Route("/", guarded(page, needs_token=False), methods=["GET"]),
        Route("/health", guarded(health, needs_token=False, check_host=False), methods=["GET"]),
        Route("/model", guarded(model), methods=["GET"]),
        Route("/stats", guarded(stats), methods=["GET"]),
        Route("/predict", guarded(predict), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.state.batcher = batcher
    app.state.budget = budget
    app.state.log = log
    return app
