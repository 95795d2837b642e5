"""Who holds a lease on a stored row (a batch, a workflow run): a worker id naming host, process and runner, and
whether the process behind a worker id is gone, so its lease can be taken over at once instead of waiting it out."""

from __future__ import annotations

import os
import secrets
import socket


def worker_id() -> str:
    """This runner: host, process id and a random part (two runners of one process are two workers)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def process_gone(worker: str | None) -> bool:
    """Whether `worker` was a process of this host that no longer runs (its lease can be taken at once)."""
    if not worker:
        return True
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname()[:120] or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False  # another runner of this process: its lease lapses on its own
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
