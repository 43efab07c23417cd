"""Who may ask: the bearer token, the Host names served without one, and no requests that a
page on another site makes a browser send.

Without a token, only the names of the address the server listens on are served (for
127.0.0.1: `127.0.0.1` and `localhost`), so a web page cannot reach the server through a
name of its own that resolves to this machine (DNS rebinding). Whatever the token, a POST
whose `Origin` is another site (a cross-site form post, which browsers send without asking)
is refused. Names, schemes and hosts are compared case-insensitively, as HTTP says.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
from urllib.parse import urlsplit

_WILDCARDS = {"0.0.0.0", "::", ""}


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_of(header: str) -> str:
    """The name in a Host header (or an Origin's netloc): no port, no IPv6 brackets, lower
    case, no trailing dot."""
    h = header.strip().lower()
    if h.startswith("["):
        h = h[1 : h.find("]")] if "]" in h else h[1:]
    elif h.count(":") == 1:
        h = h.partition(":")[0]
    return h.rstrip(".")


def served_names(bind_host: str, extra: tuple[str, ...] = ()) -> set[str] | None:
    """The Host names served without a token for a server on `bind_host`; None for a
    wildcard address (0.0.0.0, ::), where any address literal of the machine is served."""
    names = {host_of(n) for n in extra}
    if bind_host in _WILDCARDS:
        return None
    host = host_of(bind_host)
    names.add(host)
    if host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host).is_loopback):
        names.update({"localhost", "127.0.0.1", "::1"} if ":" in host else {"localhost", host})
    return names


class Access:
    """The checks every request passes, in order: Host (without a token), Origin, token."""

    def __init__(
        self, token: str | None, names: set[str] | None = None, check_host: bool = True
    ) -> None:
        self.token = token
        self.names = names
        self.check_host = check_host and token is None
        self._machine = {socket.gethostname().lower(), "localhost"}

    def host_problem(self, headers) -> str | None:
        if not self.check_host:
            return None
        host = host_of(headers.get("host", ""))
        if self.names is None:  # a wildcard bind: address literals and this machine's name
            ok = _is_ip(host) or host in self._machine
        else:
            ok = host in self.names
        if ok:
            return None
        return (f"Host {host[:60]!r} is not served without a token; use the server's address, "
                "or start it with --token (or --allow-host NAME)")  # fmt: skip

    def origin_problem(self, method: str, headers) -> str | None:
        if method in ("GET", "HEAD", "OPTIONS"):
            return None
        if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
            return "cross-site request refused"
        origin = headers.get("origin")
        if origin is None:  # not sent by a browser page: curl, scripts
            return None
        parts = urlsplit(origin.strip().lower())
        if origin.strip().lower() == "null" or parts.netloc != headers.get("host", "").lower():
            return "cross-site request refused (its Origin is another site)"
        return None

    def authorised(self, headers) -> bool:
        if self.token is None:
            return True
        scheme, _, given = headers.get("authorization", "").strip().partition(" ")
        # the scheme is case-insensitive; the token is compared in constant time
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )
