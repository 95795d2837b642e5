"""`flywheel store copy SRC_URL DST_URL`: move a whole store between SQLite and PostgreSQL (either direction)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from flywheel.cli import emit_json, main


def masked(url: str) -> str:
    """A store URL safe to print, as the user wrote it: only a non-empty password replaced by ***."""
    from flywheel.store.url_display import display_url

    return display_url(url)


@main.group("store")
def store() -> None:
    """Manage the store: copy it between SQLite and PostgreSQL."""


@store.command("copy")
@click.argument("src_url")
@click.argument("dst_url")
@click.option("--append", is_flag=True,
              help="Copy into a non-empty store: rows already there are skipped (finishes an interrupted copy).")
@click.option("--batch", "batch_rows", default=1000, show_default=True, type=click.IntRange(1, 100_000),
              help="Rows per transaction.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def copy(src_url: str, dst_url: str, append: bool, batch_rows: int, as_json: bool) -> None:
    """Copy every table of the store at SRC_URL into DST_URL (sqlite:///… or postgresql://…, either way)."""
    from flywheel.errors import UserError
    from flywheel.retrieval.index.postgres import copy_transforms
    from flywheel.retrieval.retriever import open_index
    from flywheel.store import Store
    from flywheel.store.copy import copy_store, non_empty_tables

    missing = _missing_sqlite_file(src_url)
    if missing is not None:  # Store.open would create it: a typo must not copy an empty store and exit 0
        raise UserError(f"the source store {masked(src_url)} does not exist (no file {missing})",
                        hint="check the path; the source comes first, then the target")
    src = Store.open(src_url)
    try:
        if not non_empty_tables(src):
            raise UserError(f"the source store {masked(src_url)} is empty: nothing to copy",
                            hint="check the URL; the source comes first, then the target")
        dst = Store.open(dst_url)
        try:
            if not as_json:
                click.echo(f"copying {masked(src_url)} → {masked(dst_url)}", err=True)
            summary = copy_store(src, dst, append=append, batch_rows=batch_rows,
                                 progress=None if as_json else _progress(),
                                 transforms=copy_transforms(dst.dialect, open_index(dst)
                                                            if dst.dialect == "postgresql" else None))
            if dst.dialect == "postgresql":  # one HNSW build per embedding model, after the bulk load
                open_index(dst).ensure_vector_indexes()
        except KeyboardInterrupt:
            click.secho("interrupted: re-run the same command with --append to finish (rows already copied are "
                        "skipped)", fg="yellow", err=True)
            sys.exit(130)
        finally:
            dst.close()
    finally:
        src.close()
    if summary.conflicts:  # merged into a store with its own rows: these were NOT copied
        click.secho(f"warning: {sum(summary.conflicts.values()):,} rows were not copied: their ids are taken in the "
                    "target by other rows (" + ", ".join(f"{t} {n}" for t, n in summary.conflicts.items())
                    + "); --append finishes an interrupted copy, it does not merge two stores: copy into an empty "
                    "database to keep them", fg="yellow", err=True)
    if as_json:
        emit_json({"source": masked(src_url), "target": masked(dst_url), **summary.to_dict()})
        return
    tables = sum(1 for n in summary.tables.values() if n)
    click.echo(f"copied {summary.copied:,} rows of {tables} tables in {summary.seconds:.1f} s"
               + (f" ({summary.skipped:,} already in the target, skipped)" if summary.skipped else ""))


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a sqlite:/// URL's file when it does not exist (None for other URLs and in-memory ones)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    try:
        u = make_url(url.strip())
    except Exception:  # noqa: BLE001 - Store.open reports an unparsable URL
        return None
    db = u.database or ""
    if u.get_backend_name() != "sqlite" or db in ("", ":memory:") or db.startswith("file:"):
        return None
    path = Path(db).expanduser()
    return None if path.exists() else str(path)


def _progress() -> Any:
    """One line per table with rows, then one every 5 s while a big table is copied."""
    last = [0.0]

    def show(table: str, done: int, total: int) -> None:
        now = time.monotonic()
        if total and (done == 0 or done == total or now - last[0] >= 5.0):
            last[0] = now
            click.echo(f"  {table}: {done:,}/{total:,} rows", err=True)

    return show
