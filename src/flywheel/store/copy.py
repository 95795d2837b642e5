"""Copy a whole store to another one, either direction (SQLite ⇄ PostgreSQL): every table of every domain.

    summary = copy_store(Store.open(src_url), Store.open(dst_url))     # both migrated to the same schema first

- Tables go in dependency order (foreign keys), each read in primary-key order in batches (keyset pagination:
  each batch is one indexed range read, never an OFFSET) and written one transaction per batch.
- Idempotent: a row whose primary key (or another unique key) is already in the target is skipped, never
  duplicated or overwritten. So an interrupted copy is finished by running it again with `append=True`.
- A non-empty target is refused unless `append=True` (merging stores whose integer ids collide would skip
  rows: the summary counts them as `skipped`, and those the target holds for another row as `conflicts`).
- Types that differ between the engines are converted: pgvector columns ⇄ float32 BLOBs; per-table
  `transforms` (given by the caller) fill what only one engine keeps (the PostgreSQL tsvector of chunks).
- PostgreSQL sequences of integer ids are moved past the copied ids, so new rows do not collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Column, LargeBinary, Table, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flywheel.errors import UserError
from flywheel.store.db import Store, load_schemas

BATCH_ROWS = 1000
# (table, rows done, rows total) after every batch; (table, 0, total) when a table starts
CopyProgress = Callable[[str, int, int], None]
Transform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass
class CopySummary:
    tables: dict[str, int] = field(default_factory=dict)  # rows read from the source, per table
    copied: int = 0  # rows written
    skipped: int = 0  # rows whose key was already in the target
    seconds: float = 0.0
    # per table: skipped rows whose integer id the target holds for ANOTHER row (merging two stores): not copied
    conflicts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "copied": self.copied, "skipped": self.skipped, "conflicts": self.conflicts,
                "seconds": self.seconds}


def non_empty_tables(store: Store) -> list[str]:
    out = []
    with store.engine.connect() as conn:
        for table in load_schemas().sorted_tables:
            if conn.execute(select(1).select_from(table).limit(1)).first() is not None:
                out.append(table.name)
    return out


def _type_for(column: Column, dialect: str) -> Any:
    variants = getattr(column.type, "_variant_mapping", {})
    return variants.get(dialect, column.type)


def _converter(column: Column, dialect: str) -> Callable[[Any], Any] | None:
    """How a value read from the other engine is written to `dialect` (None: as it is)."""
    target = _type_for(column, dialect)
    if type(target).__name__.upper() in ("VECTOR", "HALFVEC"):  # pgvector: from a float32 BLOB
        return lambda v: np.frombuffer(bytes(v), dtype="<f4") if isinstance(v, (bytes, memoryview)) else v
    if isinstance(target, LargeBinary):  # a BLOB: from a pgvector value
        return lambda v: v if v is None or isinstance(v, (bytes, memoryview)) else (
            np.asarray(v, dtype="<f4").tobytes())
    return None


def _insert_ignore(table: Table, dialect: str) -> Any:
    return (pg_insert(table) if dialect == "postgresql" else sqlite_insert(table)).on_conflict_do_nothing()


def copy_store(src: Store, dst: Store, *, append: bool = False, batch_rows: int = BATCH_ROWS,
               progress: CopyProgress | None = None, transforms: dict[str, Transform] | None = None
               ) -> CopySummary:
    """Copy every table of `src` into `dst` (see the module doc). Raises UserError for a non-empty target
    without `append`, or when source and target are the same database."""
    if src.url == dst.url:
        raise UserError("the source and the target are the same store", hint="give two different store URLs")
    started = time.perf_counter()
    if not append:
        filled = non_empty_tables(dst)
        if filled:
            raise UserError(f"the target store is not empty ({', '.join(filled[:5])}"
                            f"{' …' if len(filled) > 5 else ''} hold rows)",
                            hint="copy into an empty database; to finish an interrupted copy, re-run with --append: "
                                 "rows already there are skipped, never duplicated")
    summary = CopySummary()
    for table in load_schemas().sorted_tables:
        summary.tables[table.name] = _copy_table(src, dst, table, batch_rows, progress,
                                                 (transforms or {}).get(table.name), summary)
    if dst.dialect == "postgresql":
        _advance_sequences(dst)
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _copy_table(src: Store, dst: Store, table: Table, batch_rows: int, progress: CopyProgress | None,
                transform: Transform | None, summary: CopySummary) -> int:
    keys = list(table.primary_key.columns)
    converters = {c.name: conv for c in table.columns if (conv := _converter(c, dst.dialect)) is not None}
    with src.engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
    if progress:
        progress(table.name, 0, total)
    if not total:
        return 0
    # RETURNING counts the rows really inserted: psycopg's executemany rowcount does not leave out the rows
    # ON CONFLICT DO NOTHING skipped, so `skipped` read 0 on a PostgreSQL target.
    statement = _insert_ignore(table, dst.dialect).returning(*keys)
    done, last = 0, None
    while True:
        q = select(table).order_by(*keys).limit(batch_rows)
        if last is not None:
            q = q.where(tuple_(*keys) > tuple_(*last)) if len(keys) > 1 else q.where(keys[0] > last[0])
        with src.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        if not rows:
            break
        last = [rows[-1][k.name] for k in keys]
        for row in rows:
            for name, conv in converters.items():
                row[name] = conv(row[name])
        if transform is not None:
            rows = transform(rows)
        with dst.engine.begin() as conn:
            inserted = conn.execute(statement, rows).all()
            written = len(inserted)
            if written < len(rows) and _serial_key(table) is not None:
                taken = _taken_by_other_rows(conn, table, rows, {r[0] for r in inserted})
                if taken:
                    summary.conflicts[table.name] = summary.conflicts.get(table.name, 0) + taken
        summary.copied += written
        summary.skipped += len(rows) - written
        done += len(rows)
        if progress:
            progress(table.name, done, max(total, done))
    return done


def _serial_key(table: Table) -> Column | None:
    keys = list(table.primary_key.columns)
    if len(keys) == 1 and keys[0].autoincrement and keys[0].type.python_type is int:
        return keys[0]
    return None


def _taken_by_other_rows(conn: Any, table: Table, rows: list[dict[str, Any]], inserted: set[Any]) -> int:
    """How many of the skipped `rows` collide with a different row under the same integer id in the target:
    their text and integer columns differ (the same row copied before, by an interrupted copy, does not)."""
    key = _serial_key(table)
    assert key is not None
    skipped = {r[key.name]: r for r in rows if r[key.name] not in inserted}
    plain = [c for c in table.columns if c is not key and _plain(c)]
    there = conn.execute(select(key, *plain).where(key.in_(list(skipped)))).mappings()
    return sum(1 for r in there if any(r[c.name] != skipped[r[key.name]].get(c.name) for c in plain))


def _plain(column: Column) -> bool:
    """A text or integer column: read back the same from either engine (JSON, floats and vectors are not)."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return False
    return kind in (str, int) and type(column.type).__name__.upper() not in ("JSON", "JSONB")


def _advance_sequences(dst: Store) -> None:
    with dst.engine.begin() as conn:
        for table in load_schemas().sorted_tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not keys[0].autoincrement or keys[0].type.python_type is not int:
                continue
            name = keys[0].name
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": name}).scalar()
            if seq:
                conn.execute(text(f'SELECT setval(:s, (SELECT coalesce(max("{name}"), 0) + 1 FROM "{table.name}"), '
                                  "false)"), {"s": seq})
