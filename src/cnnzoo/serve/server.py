"""Running the app under uvicorn: on a socket we bind (so port 0 picks a free port and the
real address can be printed), in the foreground or in a background thread."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cnnzoo.errors import CnnzooError


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
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app, quiet: bool):
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level="warning" if quiet else "info",
        access_log=not quiet,
        lifespan="on",
        timeout_keep_alive=5,
    )
    return uvicorn.Server(config)


def serve_forever(app, sock: socket.socket, quiet: bool = False) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM stop it cleanly)."""
    _server(app, quiet).run(sockets=[sock])


@contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> Iterator[str]:
    """The app served from a background thread while the block runs; yields its base URL."""
    sock = bind(host, port)
    server = _server(app, quiet)
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
