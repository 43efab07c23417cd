"""Running the app under uvicorn: on a socket we bind (so port 0 picks a free port and the
real address can be printed), in the foreground or in a background thread, with the
connection cap and read deadlines of `connections.py` and the one-line log of `logs.py`."""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cnnzoo.errors import CnnzooError
from cnnzoo.serve.connections import BACKLOG, ConnectionGuard, protocol_class
from cnnzoo.serve.logs import OneLineFilter, RateLimitedLog


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); CnnzooError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise CnnzooError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
    sock.listen(BACKLOG)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True)
class ConnectionRules:
    """How many connections, and how long a request may take to arrive (seconds)."""

    max_connections: int = 1000
    read_timeout: float = 10.0
    body_timeout: float = 60.0


def fewer_malloc_arenas(arenas: int = 2) -> bool:
    """glibc's malloc keeps an arena per thread that allocates (up to 8 per core), and
    decoding threads fragment them: the server's memory crept up by ~50 MB per 1,000
    requests. Capping the arenas levels it off. False where this is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_arena_max = -8  # from glibc's malloc.h
    return bool(libc.mallopt(m_arena_max, arenas))


def _server(app, quiet: bool, rules: ConnectionRules):
    # optional: the serve extra
    import uvicorn

    log = getattr(app.state, "log", None) or RateLimitedLog()
    guard = ConnectionGuard(rules.max_connections, rules.read_timeout, rules.body_timeout, log)
    app.state.connections = guard
    config = uvicorn.Config(
        app,
        http=protocol_class(guard),
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        lifespan="on",
        timeout_keep_alive=5,
        backlog=BACKLOG,  # connections accepted at once, before the cap is applied
    )
    one_line = OneLineFilter(log)
    for name in ("uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineFilter) for f in logger.filters):
            logger.addFilter(one_line)
    return uvicorn.Server(config)


def serve_forever(
    app, sock: socket.socket, quiet: bool = False, rules: ConnectionRules | None = None
) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    _server(app, quiet, rules or ConnectionRules()).run(sockets=[sock])


@contextmanager
def serving(
    app,
    host: str = "127.0.0.1",
    port: int = 0,
    quiet: bool = True,
    rules: ConnectionRules | None = None,
) -> Iterator[str]:
    """The app served from a background thread while the block runs; yields its base URL."""
    sock = bind(host, port)
    server = _server(app, quiet, rules or ConnectionRules())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
