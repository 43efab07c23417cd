"""The server's log under attack: one line per event, never a traceback for what a client
did, and at most a few lines a window per kind of event, however many events there are.

`RateLimitedLog` writes the app's own lines (a client gone mid-body, connections cut for
being slow, overload); `OneLineFilter` holds uvicorn's and asyncio's records to the same rule
(one line, rate-limited by message), and `loop_exception_handler` turns asyncio's
"socket.accept() out of system resource" traceback into such a line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

LOGGER = "uvicorn.error"  # uvicorn's own error log: same handler, format and level
BURST = 5  # lines per kind of event ...
WINDOW_S = 10.0  # ... per this many seconds


class RateLimitedLog:
    """At most `burst` lines per kind of event in each `window` seconds; the lines held back
    are counted and said on the first line of that kind in a later window."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        burst: int = BURST,
        window: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger or logging.getLogger(LOGGER)
        self.burst, self.window, self.clock = burst, window, clock
        self._windows: dict[str, list[float | int]] = {}  # kind -> [start, said, held back]
        self.counts: dict[str, int] = {}  # kind -> events, said or not

    def allow(self, kind: str) -> tuple[bool, int]:
        """(say it, how many were held back before it) for one event of `kind`."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        now = self.clock()
        w = self._windows.get(kind)
        if w is None or now - w[0] >= self.window:
            held = int(w[2]) if w else 0
            self._windows[kind] = [now, 1, 0]
            return True, held
        if w[1] < self.burst:
            w[1] += 1
            return True, 0
        w[2] += 1
        return False, 0

    def __call__(self, kind: str, message: str, level: int = logging.WARNING) -> None:
        say, held = self.allow(kind)
        if say:
            more = f" ({held:,} more like this not shown)" if held else ""
            self.logger.log(level, "%s%s", message, more)


def client_caused(exc: BaseException) -> bool:
    """An exception a client causes (it went away, the socket broke): no bug of ours."""
    return isinstance(exc, (OSError, EOFError, asyncio.CancelledError)) or (
        type(exc).__name__ == "ClientDisconnect"
    )


class OneLineFilter(logging.Filter):
    """Rate-limits records by message template, and turns the traceback of an exception a
    client caused into the end of the line; a bug's traceback is kept."""

    def __init__(self, limiter: RateLimitedLog) -> None:
        super().__init__()
        self.limiter = limiter

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and client_caused(exc):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            record.msg = f"{str(record.msg).strip()}: {type(exc).__name__}: {first}"[:300]
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        say, held = self.limiter.allow(str(record.msg)[:80])
        if say and held:
            record.msg = f"{record.getMessage()} ({held:,} more like this not shown)"
            record.args = ()
        return say


def loop_exception_handler(log: RateLimitedLog) -> Callable[[Any, dict], None]:
    """An asyncio exception handler that says a failed accept() in one rate-limited line and
    leaves everything else to asyncio's default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            exc = context.get("exception")
            why = getattr(exc, "strerror", None) or type(exc).__name__
            log("accept", f"cannot accept new connections for a moment: {why}")
            return
        loop.default_exception_handler(context)

    return handle
