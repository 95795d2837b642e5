"""Is an error a lost store, not a bug? PostgreSQL stopped, restarting or unreachable (and a SQLite file gone) make
every query fail with a driver error; `flywheel serve` answers those with a clear 503 (`store_unavailable`) and one
log line instead of a 500 with a traceback per request, and serves again as soon as the store is back (the pool
pings each connection before use)."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from flywheel.store.db import sqlstate

# libpq / psycopg / sqlite3 messages of a store that cannot be reached (lower case)
_MARKERS = (
    "connection is bad", "connection refused", "could not connect", "connection to server",
    "server closed the connection", "terminating connection", "connection timed out", "connection reset",
    "ssl syscall", "the connection is closed", "connection is closed", "accepting connections",
    "the database system is shutting down", "the database system is starting up", "in recovery mode",
    "unable to open database file", "disk i/o error",
)
# SQLSTATE classes of a lost server: 08 connection exception, 57P01-57P03 shutdown / cannot connect now
_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def store_outage(exc: BaseException) -> str | None:
    """One line saying why the store cannot be reached when `exc` (or an error it was raised from) is a lost
    connection; None for anything else (a bug, a constraint, a lock)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        why = _reason(current)
        if why is not None:
            return why
        current = current.__cause__ or current.__context__
    return None


def _reason(exc: BaseException) -> str | None:
    if isinstance(exc, sa_exc.DisconnectionError):
        return _first_line(exc)
    if not isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return None
    state = sqlstate(exc)
    message = _first_line(getattr(exc, "orig", None) or exc)
    if getattr(exc, "connection_invalidated", False) or (state and state.startswith(_SQLSTATES)):
        return message
    return message if any(marker in message.lower() for marker in _MARKERS) else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0].strip() if text else type(exc).__name__
    return line if len(line) <= 300 else line[:299] + "…"
