"""Small pooled HTTP/1.1 JSON clients for the per-call hot path: threads (`http.client`) and asyncio.

    pool = HttpPool("http://localhost:8000/v1", {"Authorization": "Bearer sk-…"})
    status, headers, body = pool.post("/chat/completions", b'{"model": …}', timeout=30.0)
    status, headers, body = await AsyncHttpPool(same arguments).post(…)   # one per event loop

Why not the openai SDK (and the httpx client under it) for every call: measured on this 2-core machine,
one non-streaming chat call costs ~1.3 ms of client CPU through the SDK and ~2.2 ms with 32 threads
contending for the GIL, and importing the SDK costs ~0.8 s; the same request over a pooled `http.client`
connection costs ~0.25 ms (0.5 ms with 32 threads) and imports nothing new; on asyncio streams, ~0.2 ms
with 32 in flight (httpx's async pool: several times the sync one). For an eval of 1,000 cases at
concurrency 32 that is the difference between being CPU-bound and waiting on the model.

Idle connections are kept (newest first, at most `max_idle`) and handed to one thread at a time; one the
server closed while idle is noticed (readable at EOF) and dropped before reuse. Failures surface as the
standard exceptions (`OSError` and subclasses such as `TimeoutError` and `ConnectionError`, and
`http.client.HTTPException`; asyncio's `IncompleteReadError` and `LimitOverrunError` for the async pool);
the caller maps them. The async pool's `timeout` bounds the whole exchange; the sync pool's, each socket
operation (as httpx's does).
"""

from __future__ import annotations

import asyncio
import http.client
import os
import select
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import socket
    import ssl  # imported for https origins only

__all__ = ["AsyncHttpPool", "HttpPool", "proxied"]

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def proxied() -> bool:
    """Whether a proxy is configured in the environment (HTTP(S)_PROXY / ALL_PROXY, any case)."""
    return any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS)


def _origin(base_url: str) -> tuple[bool, str, int, str]:
    """(https, host, port, path prefix without a trailing slash) of an http(s) base URL."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    https = parts.scheme == "https"
    return https, parts.hostname, parts.port or (443 if https else 80), parts.path.rstrip("/")


class HttpPool:
    """Keep-alive connections to one origin; thread-safe."""

    def __init__(self, base_url: str, headers: dict[str, str], *, max_idle: int = 100):
        self.https, self.host, self.port, self.prefix = _origin(base_url)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json", **headers}
        self.max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None

    def post(self, path: str, body: bytes, timeout: float) -> tuple[int, http.client.HTTPMessage, bytes]:
        """POST `body` (JSON) to prefix + `path`: (status, headers, body), the body fully read."""
        conn = self._take(timeout)
        try:
            conn.request("POST", self.prefix + path, body, self.headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._give(conn)
        return resp.status, resp.headers, data

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self, timeout: float) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(timeout)
            sock = conn.sock
            if sock is not None and not _closed_by_peer(sock):
                sock.settimeout(timeout)
                conn.timeout = timeout
                return conn
            conn.close()

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if not self.https:
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        if self._ssl_context is None:
            self._ssl_context = _ssl_context()
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self._ssl_context)


class AsyncHttpPool:
    """Keep-alive asyncio connections to one origin, for one event loop (streams cannot change loops)."""

    def __init__(self, base_url: str, headers: dict[str, str], *, max_idle: int = 100):
        self.https, self.host, self.port, self.prefix = _origin(base_url)
        default_port = self.port == (443 if self.https else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        fixed = {"Host": host if default_port else f"{host}:{self.port}", "Content-Type": "application/json",
                 "Accept": "application/json", "Accept-Encoding": "identity", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self.max_idle = max_idle
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._ssl_context: ssl.SSLContext | None = None

    async def post(self, path: str, body: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        """POST `body` (JSON) to prefix + `path`: (status, headers with lower-case names, body)."""
        head = f"POST {self.prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        reader = writer = None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self._take()
                writer.write(head.encode("latin-1") + body)
                await writer.drain()
                status, headers, data, keep = await _read_response(reader)
        except BaseException:
            if writer is not None:
                writer.close()
            raise
        if keep and len(self._idle) < self.max_idle:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, headers, data

    def close(self) -> None:
        """Close the idle connections (call it on the pool's loop, before that loop ends)."""
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()

    async def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        if not self.https:
            return await asyncio.open_connection(self.host, self.port, limit=_HEAD_LIMIT)
        if self._ssl_context is None:
            self._ssl_context = _ssl_context()
        return await asyncio.open_connection(self.host, self.port, ssl=self._ssl_context, limit=_HEAD_LIMIT)


_HEAD_LIMIT = 1 << 20  # longest status line + headers accepted (and chunk-size line)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, keep the connection) of one HTTP/1.x response."""
    while True:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        try:
            status = int(rest[:3])
        except ValueError:
            raise http.client.BadStatusLine(lines[0]) from None
        if not 100 <= status < 200 or status == 101:
            break  # skip interim 1xx responses
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                    pass
                break
            parts.append(await reader.readexactly(size + 2))
        data = b"".join(p[:-2] for p in parts)
    elif "content-length" in headers:
        data = await reader.readexactly(int(headers["content-length"]))
    elif status in (204, 304):
        data = b""
    else:  # delimited by the end of the connection
        data, keep = await reader.read(), False
    return status, headers, data, keep


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed by the server (or sent junk): drop it."""
    try:
        if hasattr(select, "poll"):  # select() cannot watch descriptors past FD_SETSIZE
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _ssl_context() -> ssl.SSLContext:
    """Certificates as httpx picks them: SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's bundle when
    installed, else the system's."""
    import ssl

    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if not (cafile or capath):
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            pass
    return ssl.create_default_context(cafile=cafile, capath=capath)
