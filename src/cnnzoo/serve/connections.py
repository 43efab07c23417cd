"""Connections under a cap, with read deadlines: what keeps slow or idle clients from
holding the server.

- A request's header must be complete within `read_timeout` seconds of the connection
  opening (or of the previous answer on a kept-alive connection); its body must keep coming
  (no silence longer than `read_timeout`) and be whole within `body_timeout`. A client that
  misses a deadline gets 408 and its connection is closed.
- At most `max_connections` are open. One more closes the connection that has waited
  longest without sending a whole request (a stalled or idle one); when every connection is
  busy with a request, the new one gets 503 with Retry-After and is closed. The cap stays
  below the process's open-file limit, so accept() never runs out of descriptors.

`protocol_class(guard)` is uvicorn's h11 protocol with these rules; every closing is counted
in `guard.counts` and said in one rate-limited log line.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cnnzoo.serve.logs import RateLimitedLog

# descriptors kept free of connections: the listening socket, logs, model files, and the
# connections asyncio accepts in one go before any of them is counted (BACKLOG)
BACKLOG = 64
RESERVED_FDS = BACKLOG + 64


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered to what the open-file limit leaves for connections."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_FDS))


def _raw_response(status: int, reason: str, message: str, retry_after: int | None = None) -> bytes:
    body = ('{"error": "' + message.replace('"', "'") + '"}').encode()
    head = [f"HTTP/1.1 {status} {reason}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close"]  # fmt: skip
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class ConnectionGuard:
    """The rules every connection of one server shares, and the connections open now."""

    def __init__(
        self,
        max_connections: int = 1000,
        read_timeout: float = 10.0,
        body_timeout: float = 60.0,
        log: RateLimitedLog | None = None,
    ) -> None:
        self.max_connections = connection_cap(max_connections)
        self.read_timeout = read_timeout
        self.body_timeout = body_timeout
        self.log = log or RateLimitedLog()
        self.open: dict[GuardedProtocol, None] = {}  # in the order they opened
        self.counts = {"header_timeouts": 0, "body_timeouts": 0, "connections_evicted": 0,
                       "connections_refused": 0}  # fmt: skip
        self.peak = 0

    def admit(self, new: GuardedProtocol) -> bool:
        """Count `new` in; at the cap, close the longest-waiting idle connection, or refuse
        `new` when every other one is busy. False when `new` was refused."""
        self.open[new] = None
        if len(self.open) > self.max_connections:
            idle = [c for c in self.open if c is not new and not c.busy]
            if not idle:
                self.counts["connections_refused"] += 1
                self.log("refused", f"at the limit of {self.max_connections:,} connections, "
                         "all busy: a new one got 503")  # fmt: skip
                new.refuse(503, "Service Unavailable", "the server is at its connection limit; "
                           "try again shortly", retry_after=1)  # fmt: skip
                return False
            oldest = min(idle, key=lambda c: c.waiting_since)
            self.counts["connections_evicted"] += 1
            self.log("evicted", f"at the limit of {self.max_connections:,} connections: closed "
                     "the one idle longest to let a new one in")  # fmt: skip
            oldest.transport.abort()
            self.open.pop(oldest, None)
        self.peak = max(self.peak, len(self.open))
        return True

    def drop(self, conn: GuardedProtocol) -> None:
        self.open.pop(conn, None)

    def to_dict(self) -> dict[str, Any]:
        return {"connections_open": len(self.open), "connections_peak": self.peak,
                "connection_limit": self.max_connections, **self.counts}  # fmt: skip


class GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with the guard's deadlines and cap (`guard` is set on the
    subclass `protocol_class` makes)."""

    guard: ConnectionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting_since = time.monotonic()
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_deadline = 0.0

    @property
    def busy(self) -> bool:
        """A request is being read or answered (not a stalled or idle connection)."""
        return self.cycle is not None and not self.cycle.response_complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.guard.admit(self):
            self._await_header()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.drop(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._after_events()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._await_header()
            self._after_events()

    def refuse(self, status: int, reason: str, message: str, retry_after: int | None = None):
        """Answer `status` outside any request cycle and close."""
        self._cancel()
        if self.cycle is not None and not self.cycle.response_started:
            self.cycle.disconnected = True  # the app's answer, if any, goes nowhere
            self.cycle.message_event.set()
        if not self.transport.is_closing():
            self.transport.write(_raw_response(status, reason, message, retry_after))
            self.transport.close()

    # deadlines
    def _await_header(self) -> None:
        self.waiting_since = time.monotonic()
        self._cancel()
        self._header_timer = self.loop.call_later(self.guard.read_timeout, self._header_late)

    def _after_events(self) -> None:
        state = self.conn.their_state
        if state is h11.IDLE or self.transport.is_closing():
            return  # still waiting for a whole header (its timer runs)
        if self._header_timer is not None:  # the header is in: now the body's deadlines
            self._header_timer.cancel()
            self._header_timer = None
            if state is h11.SEND_BODY:
                self._body_deadline = self.loop.time() + self.guard.body_timeout
        if state is h11.SEND_BODY:
            if self._body_timer is not None:
                self._body_timer.cancel()
            left = min(self.guard.read_timeout, self._body_deadline - self.loop.time())
            self._body_timer = self.loop.call_later(max(0.0, left), self._body_late)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _header_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        started = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
        if not started:  # nothing sent since the last answer: just an idle connection
            self.transport.close()
            return
        self.guard.counts["header_timeouts"] += 1
        t = self.guard.read_timeout
        self.guard.log("header_timeout", f"closed a connection whose request header was not "
                       f"whole after {t:g} s (408)")  # fmt: skip
        self.refuse(408, "Request Timeout", f"no whole request header within {t:g} s")

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        self.guard.counts["body_timeouts"] += 1
        g = self.guard
        why = (f"the body was not whole within {g.body_timeout:g} s"
               if self.loop.time() >= self._body_deadline - 1e-3
               else f"no byte of the body for {g.read_timeout:g} s")  # fmt: skip
        self.guard.log("body_timeout", f"closed a connection: {why} (408)")
        if self.cycle is not None and self.cycle.response_started:
            self.transport.abort()  # already answered (without reading the body): just close
            return
        self.refuse(408, "Request Timeout", why)


def protocol_class(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """The protocol class uvicorn builds each connection's protocol from, bound to `guard`."""
    return type("CnnzooHTTPProtocol", (GuardedProtocol,), {"guard": guard})
