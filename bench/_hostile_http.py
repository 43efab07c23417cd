"""The HTTP cases of bench/hostile_probe.py: raw requests to `cnnzoo serve` on 127.0.0.1
(bad numbers in queries and Content-Length, wrong Host, cross-site Origin, bad tokens,
malformed framing and bodies, half-sent requests under short deadlines).

Two servers run for the whole class: A without a token, B with one (from the environment).
A case is expected when the server answers 2xx / 4xx / 503 (or closes a connection it could
not parse), internal on a 500 or a traceback in the server's log, crash when the server
died, hang when the connection stays open and silent past the deadline."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import zlib

from hostile_probe import Case

TOKEN = "s3cret-probe-token"
WAIT = 8.0  # seconds a case waits for an answer (the servers' read deadline is 1 s)


def _png(width: int, height: int, truncate: bool = False) -> bytes:
    """A grey PNG header claiming width x height (one IDAT of a single row: a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))  # fmt: skip

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(width + 1)))
    data = b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")
    return data[: len(data) // 2] if truncate else data


class Server:
    def __init__(self, ws, name: str, token: str | None) -> None:
        self.log = ws.root.parent / f"serve-{name}.log"
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "src")}
        env.pop("CNNZOO_SERVE_TOKEN", None)
        if token:
            env["CNNZOO_SERVE_TOKEN"] = token
        cmd = [sys.executable, "-m", "cnnzoo", "serve", "-c", str(ws.onnx), "--port", "0",
               "--threads", "1", "--read-timeout", "1", "--body-timeout", "2",
               "--max-images", "8", "--max-body-mb", "4"]  # fmt: skip
        out = self.log.with_suffix(".out")  # a file, never a pipe: a full pipe blocks the server
        self.proc = subprocess.Popen(cmd, stdout=out.open("wb"), stderr=self.log.open("wb"),
                                     env=env)  # fmt: skip
        line = ""
        for _ in range(1200):  # at most 60 s for the first line
            line = next((x for x in out.read_text().splitlines() if " on http://" in x), "")
            if line or self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if " on http://127.0.0.1:" not in line:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r} {self.log.read_text()[-400:]}")
        self.port = int(line.split(" on ")[1].split()[0].rstrip("/").rsplit(":", 1)[1])
        self.host = f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ensure_server(ws) -> None:
    if ws.server is None:
        ws.server = {"A": Server(ws, "A", None), "B": Server(ws, "B", TOKEN)}


def stop_server(ws) -> None:
    for s in (ws.server or {}).values():
        s.close()
    ws.server = None


def exchange(port: int, parts: list[bytes], pause: float = 0.0) -> tuple[str, bytes]:
    """Sends parts (pause between them), then reads until the server closes or WAIT passes:
    ('answered', status line) / ('closed', b'') / ('silent', b'')."""
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    got = b""
    try:
        for i, part in enumerate(parts):
            if i and pause:
                time.sleep(pause)
            try:
                s.sendall(part)
            except OSError:
                break
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and b"\r\n" not in got:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                data = b""
            if not data:
                return ("answered", got) if got else ("closed", b"")
            got += data
    finally:
        s.close()
    return ("answered", got) if got else ("silent", b"")


def _call(ws, server: str, parts: list[bytes], pause: float = 0.0):
    def call() -> tuple[str, str]:
        srv = ws.server[server]
        before = len(srv.log_text())
        how, data = exchange(srv.port, parts, pause)
        time.sleep(0.05)
        new_log = srv.log_text()[before:]
        if not srv.alive():
            return "crash", f"the server died: {new_log[-300:]}"
        if "Traceback" in new_log:
            return "internal", "a traceback in the log: " + new_log.strip().splitlines()[-1]
        if how == "silent":
            return "hang", f"no answer in {WAIT:g} s, connection still open"
        if how == "closed":
            return "expected", "closed without an answer"
        status = data.split(b"\r\n", 1)[0].decode(errors="replace")
        code = status.split(" ")[1] if len(status.split(" ")) > 1 else "?"
        if code.startswith("5") and code != "503":
            return "internal", status
        if code[:1] in ("2", "4") or code == "503":
            return "expected", status
        return "crash", f"unexpected status line {status!r}"

    return call


def http_cases(ws) -> list[Case]:
    png = ws.image.read_bytes() if ws.image.is_file() else _png(8, 8)
    host = "127.0.0.1:{port}"
    cases: list[Case] = []

    def add(name: str, head: str, body: bytes = b"", server: str = "A", split: int = 0,
            pause: float = 0.0, parts: list[bytes] | None = None) -> None:  # fmt: skip
        def call(head=head, body=body, server=server):
            port = ws.server[server].port
            raw = head.replace("{port}", str(port)).encode("latin-1") + body
            chunks = parts or ([raw[:split], raw[split:]] if split else [raw])
            return _call(ws, server, chunks, pause)()

        cases.append(Case("http", name, call=call, timeout=WAIT + 2))

    def post(path="/predict", ctype="image/png", body=png, extra="", length=None, hostname=host):
        n = len(body) if length is None else length
        cl = "" if n == "none" else f"Content-Length: {n}\r\n"
        return (f"POST {path} HTTP/1.1\r\nHost: {hostname}\r\nContent-Type: {ctype}\r\n"
                f"{cl}{extra}Connection: close\r\n\r\n")  # fmt: skip

    def get(path, extra="", hostname=host):
        return f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\n{extra}Connection: close\r\n\r\n"

    add("good_png", post(), png)
    for path in ("/", "/health", "/model", "/stats", "/nope", "//predict", "/predict/../model",
                 "/%00", "/" + "a" * 100_000, "/model?x=" + "%" * 50, "*"):  # fmt: skip
        add(f"get:{path[:20]}", get(path))
    for method in ("PUT", "DELETE", "OPTIONS", "HEAD", "TRACE", "FOO", "CONNECT", "PATCH"):
        add(f"method:{method}", f"{method} /predict HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip
    add("post_model", post("/model"), png)
    for topk in ("", "0", "-1", "1e308", "nan", "inf", "99999999999999999999", "%C2%B2",
                 "%D9%A1", "0x10", "1.5", "%203", "%00", "3&topk=4", "%ff%fe", "1000000000",
                 "+3", "3" * 5000):  # fmt: skip
        add(f"topk={topk[:20]}", post(f"/predict?topk={topk}"), png)
    for cl in ("", "-1", "abc", "1e308", "99999999999999999999999", "+5", "0x10", "5, 5",
               "²", str(len(png) + 100), "0", "1", "4194305",
               "99999999999"):  # fmt: skip
        add(f"content_length={cl[:20]}", post(length=cl), png)
    add("two_lengths", post(extra=f"Content-Length: {len(png) + 1}\r\n"), png)
    add("length_and_chunked", post(extra="Transfer-Encoding: chunked\r\n"), png)
    add("chunked_good", post(length="none", extra="Transfer-Encoding: chunked\r\n"),
        f"{len(png):x}\r\n".encode() + png + b"\r\n0\r\n\r\n")  # fmt: skip
    add("chunked_bad_size", post(length="none", extra="Transfer-Encoding: chunked\r\n"),
        b"zz\r\n" + png + b"\r\n0\r\n\r\n")  # fmt: skip
    add("chunked_huge_size", post(length="none", extra="Transfer-Encoding: chunked\r\n"),
        b"ffffffffffffffff\r\n" + png)  # fmt: skip
    add("chunked_unfinished", post(length="none", extra="Transfer-Encoding: chunked\r\n"),
        f"{len(png) + 10:x}\r\n".encode() + png)  # fmt: skip
    add("te_gzip", post(length="none", extra="Transfer-Encoding: gzip\r\n"), png)
    for name, hostname in (("evil", "evil.example"), ("empty", ""), ("other_port", "127.0.0.1:1"),
                           ("upper", "LOCALHOST"), ("dot", "localhost."), ("ipv6", "[::1]"),
                           ("long", "a" * 10_000), ("user", "u@127.0.0.1"),
                           ("latin1", "h\xe9st"), ("space", "127.0.0.1 :80")):  # fmt: skip
        add(f"host:{name}", post(hostname=hostname), png)
        add(f"host_get:{name}", get("/model", hostname=hostname))
    add("no_host", "POST /predict HTTP/1.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(png)}\r\nConnection: close\r\n\r\n", png)  # fmt: skip
    add("two_hosts", post(extra="Host: evil.example\r\n"), png)
    add("http10_no_host", f"POST /predict HTTP/1.0\r\nContent-Length: {len(png)}\r\n\r\n", png)
    for name, extra in (("evil", "Origin: http://evil.example\r\n"), ("null", "Origin: null\r\n"),
                        ("same", f"Origin: http://{host}\r\n"),
                        ("fetch_site", "Sec-Fetch-Site: cross-site\r\n"),
                        ("garbage", "Origin: ::::\r\n"), ("long", "Origin: " + "x" * 8000 + "\r\n"),
                        ("https_same", f"Origin: https://{host}\r\n")):  # fmt: skip
        add(f"origin:{name}", post(extra=extra), png)
    for name, auth in (
        ("none", ""),
        ("wrong", "Bearer nope"),
        ("right", f"Bearer {TOKEN}"),
        ("lower", f"bearer {TOKEN}"),
        ("basic", "Basic dXNlcjpwYXNz"),
        ("long", "Bearer " + "x" * 20_000),
        ("nul", f"Bearer {TOKEN}\x00"),
        ("latin1", "Bearer caf\xe9"),
        ("empty", "Bearer "),
        ("prefix", f"Bearer {TOKEN[:-1]}"),
        ("two", f"Bearer {TOKEN} {TOKEN}"),
    ):
        header = f"Authorization: {auth}\r\n" if auth else ""
        add(f"token:{name}", post(extra=header), png, server="B")
        add(f"token_get:{name}", get("/stats", extra=header), server="B")
    bodies = {
        "empty": b"", "random": os.urandom(2000), "truncated_png": png[: len(png) // 2],
        "text": b"hello", "json": b'{"image": 1}', "bomb_header": _png(100_000, 100_000),
        "strip": _png(1, 1_000_000), "one_pixel": _png(1, 1), "zero_size": _png(0, 0),
    }  # fmt: skip
    for name, body in bodies.items():
        add(f"body:{name}", post(), body)
        add(f"body_octet:{name}", post(ctype="application/octet-stream"), body)

    def form(files: list[tuple[str, bytes]], boundary="xYz", close=True, field="") -> bytes:
        out = io.BytesIO()
        if field:
            out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n"
                      "text\r\n".encode())  # fmt: skip
        for name, data in files:
            out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                      f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n".encode())  # fmt: skip
            out.write(data + b"\r\n")
        if close:
            out.write(f"--{boundary}--\r\n".encode())
        return out.getvalue()

    mp = "multipart/form-data; boundary=xYz"
    forms = {
        "one": (mp, form([("a.png", png)])), "two": (mp, form([("a.png", png), ("b", b"x")])),
        "no_file": (mp, form([], field="note")), "unclosed": (mp, form([("a.png", png)],
                                                                       close=False)),
        "bad_boundary": ("multipart/form-data; boundary=other", form([("a.png", png)])),
        "no_boundary": ("multipart/form-data", form([("a.png", png)])),
        "empty_boundary": ("multipart/form-data; boundary=", form([("a.png", png)])),
        "too_many": (mp, form([(f"{i}.png", png) for i in range(40)])),
        "traversal_name": (mp, form([("../../etc/passwd", png)])),
        "nul_name": (mp, form([("a\x00b.png", png)])),
        "long_name": (mp, form([("n" * 50_000, png)])),
        "all_bad": (mp, form([("a", b"x"), ("b", b"")])),
        "garbage": (mp, os.urandom(3000)),
        "field_and_file": (mp, form([("a.png", png)], field="x")),
        "many_fields": (mp, b"".join(f"--xYz\r\nContent-Disposition: form-data; name=\"f{i}\""
                                     f"\r\n\r\nv\r\n".encode() for i in range(3000)) + b"--xYz--\r\n"),
    }  # fmt: skip
    for name, (ctype, body) in forms.items():
        add(f"form:{name}", post(ctype=ctype, length=len(body)), body)
    for name, value in (("traversal", "../../etc/passwd"), ("bad_escape", "%ff%fe"),
                        ("long", "x" * 30_000), ("nul", "%00")):  # fmt: skip
        add(f"x_filename:{name}", post(extra=f"X-Filename: {value}\r\n"), png)
    full = post().encode() + png
    add("half_header", "", parts=[b"POST /predict HTTP/1.1\r\nHost: 127"])
    add("header_no_end", "", parts=[post().encode()[:-2]])
    add("short_body", post(length=len(png) * 2), png)
    add("slow_body", "", parts=[full[: len(full) - 40]] + [full[i: i + 1] for i in
                                                          range(len(full) - 40, len(full))],
        pause=0.15)  # fmt: skip
    add("slow_header", "", parts=[full[i : i + 4] for i in range(0, 80, 4)], pause=0.2)
    add("pipelined", get("/health").replace("Connection: close\r\n", "") + get("/model"))
    add("no_colon", f"GET /health HTTP/1.1\r\nHost: {host}\r\nbroken header\r\n\r\n")
    add("binary_header", f"GET /model HTTP/1.1\r\nHost: {host}\r\nX: \x01\x7f\xff\r\n\r\n")
    add(
        "many_headers",
        f"GET /model HTTP/1.1\r\nHost: {host}\r\n"
        + "".join(f"X-{i}: y\r\n" for i in range(2000))
        + "Connection: close\r\n\r\n",
    )
    add("huge_header", get("/model", extra="X-Big: " + "y" * 200_000 + "\r\n"))
    add("http2_preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    add("http09", "GET /\r\n")
    add("bad_version", f"GET /model HTTP/9.9\r\nHost: {host}\r\n\r\n")
    add("garbage_line", "\x00\x01\x02 garbage\r\n\r\n")
    add("tls_hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    add("bad_ctype", post(ctype="image/png; charset=\xff"), png)
    add("ctype_semicolons", post(ctype=";;;;"), png)
    add("expect_100", post(extra="Expect: 100-continue\r\n"), png)
    add("body_too_big", post(length=5 * 1024 * 1024), b"x" * 1000)
    return cases
