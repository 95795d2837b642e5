"""Refuse every network connection that does not stay on this machine (loopback or a Unix socket).

Installed for the whole security suite by conftest.py: a feature that tries to reach the internet (a model
hub download, a telemetry ping, a public-suffix list fetch, a DNS lookup) raises `NetworkRefused` and fails
the test that triggered it, instead of passing on a machine that happens to be online.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}


class NetworkRefused(OSError):
    """A connection or name lookup beyond this machine was attempted under the offline guard."""


attempts: list[str] = []  # every refused destination, for the test to report


def _loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard / loopback
    host = str(host).strip("[]").split("%")[0].lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # any other name needs DNS: refused


def _refuse(where: str) -> None:
    attempts.append(where)
    raise NetworkRefused(f"offline guard: refused a connection to {where} (only loopback is allowed in tests)")


@contextmanager
def offline() -> Iterator[list[str]]:
    """Within the block, only loopback and Unix-socket connections (and lookups) are allowed."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo, real_gethostbyname = socket.getaddrinfo, socket.gethostbyname
    real_create = socket.create_connection

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if not _loopback(host):
            _refuse(f"{host}:{address[1] if isinstance(address, tuple) and len(address) > 1 else '?'}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            _refuse(f"DNS lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        if not _loopback(host):
            _refuse(f"DNS lookup of {host}")
        return real_gethostbyname(host)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _loopback(address[0]):
            _refuse(f"{address[0]}:{address[1]}")
        return real_create(address, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.create_connection = create_connection
    try:
        yield attempts
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = real_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = real_getaddrinfo
        socket.gethostbyname = real_gethostbyname
        socket.create_connection = real_create
