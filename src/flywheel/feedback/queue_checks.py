"""What a new review queue may hold: trace ids that exist (in the tenant) and are not queued yet, distinct
pairs, and a queue name not yet taken. Used by flywheel.feedback.queues inside its serialised transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from flywheel.errors import UserError
from flywheel.feedback.events import resolve_trace_ids
from flywheel.tracing import tracer

if TYPE_CHECKING:
    from flywheel.store import Store


def free_name(conn: Any, qt: Any, base: str, tenant: str | None) -> str:
    mine = qt.c.tenant.is_(None) if tenant is None else qt.c.tenant == tenant
    taken = set(conn.scalars(select(qt.c.name).where(qt.c.name.like(f"{base}%"), mine)))
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def already_queued(conn: Any, it: Any, ids: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out.update(conn.scalars(select(it.c.trace_id).where(it.c.trace_id.in_(chunk))))
        out.update(conn.scalars(select(it.c.trace_id_b).where(it.c.trace_id_b.in_(chunk))))
    return out


def known(store: Store, conn: Any, ids: list[str], tenant: str | None) -> set[str]:
    t = store.table("traces")
    out: set[str] = set()
    for attempt in range(2):
        for i in range(0, len(ids), 500):
            q = select(t.c.trace_id).where(t.c.trace_id.in_(ids[i:i + 500]))
            if tenant is not None:
                q = q.where(t.c.tenant == tenant)
            out.update(conn.scalars(q))
        if len(out) == len(set(ids)) or attempt:
            return out
        tracer.flush()  # traces of this process may still be in the writer's queue
        conn.rollback()  # a fresh snapshot sees what the flush committed
    return out


def trace_alive(store: Store, it: Any) -> Any:
    """SQL condition: the review item (`it`, the review_items table) still has its trace(s) — a deleted trace
    leaves its items in the queue, but there is nothing left to show an annotator."""
    t = store.table("traces")
    a = select(t.c.trace_id).where(t.c.trace_id == it.c.trace_id).exists()
    b = select(t.c.trace_id).where(t.c.trace_id == it.c.trace_id_b).exists()
    return a & (it.c.trace_id_b.is_(None) | b)


def checked_ids(store: Store, conn: Any, trace_ids: Iterable[str], tenant: str | None) -> list[str]:
    ids = list(dict.fromkeys(resolve_trace_ids(store, trace_ids, tenant=tenant)))
    if not ids:
        raise UserError("`trace_ids` is empty: a queue needs at least one trace",
                        hint="give trace ids (`flywheel traces` lists them), or leave `trace_ids` out to sample")
    missing = [t for t in ids if t not in known(store, conn, ids, tenant)]
    if missing:
        raise UserError(f"unknown trace id(s): {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""),
                        hint="list traces with `flywheel traces`")
    queued = already_queued(conn, store.table("review_items"), ids)
    if queued:
        raise UserError(f"trace(s) already in a review queue: {', '.join(sorted(queued)[:5])}",
                        hint="a trace is reviewed once; leave these out")
    return ids


def checked_pairs(store: Store, conn: Any, pairs: Iterable[tuple[str, str]], tenant: str | None
                   ) -> list[tuple[str, str | None, str]]:
    clean: list[tuple[str, str]] = []
    for pair in pairs:
        a, b = resolve_trace_ids(store, pair, tenant=tenant)
        if a == b:
            raise UserError(f"a pair compares two different traces (got {a} twice)")
        if (a, b) not in clean and (b, a) not in clean:
            clean.append((a, b))
    if not clean:
        raise UserError("`pairs` is empty: a pairwise queue needs at least one pair of traces",
                        hint="give [trace A, trace B] pairs, or leave `pairs` out to sample")
    flat = [x for p in clean for x in p]
    missing = sorted(set(flat) - known(store, conn, flat, tenant))
    if missing:
        raise UserError(f"unknown trace id(s): {', '.join(missing[:5])}", hint="list traces with `flywheel traces`")
    it = store.table("review_items")
    for a, b in clean:
        same = select(func.count()).select_from(it).where(
            ((it.c.trace_id == a) & (it.c.trace_id_b == b)) | ((it.c.trace_id == b) & (it.c.trace_id_b == a)))
        if conn.scalar(same):
            raise UserError(f"the pair {a} / {b} is already in a review queue")
    return [(a, b, "explicit") for a, b in clean]


def empty_queue_hint(kind: str, strategy: str, app: str | None, since: float | None, until: float | None) -> str:
    """Only the remedies that can change the outcome: suggesting `--strategy random` to a random sample,
    or a wider window to a command that gave none, would print a next step that fails the same way."""
    steps = ["widen the window (--since / --until)"] if since is not None or until is not None else []
    steps += ["drop --app"] if app else []
    steps += ["try --strategy random"] if kind == "binary" and strategy not in ("random", "explicit") else []
    more = ("answer the same questions with another model or prompt version (flywheel ask … --model ALIAS)"
            if kind == "pairwise" else "record more traffic (flywheel ask, flywheel serve)")
    steps.append(f"{more}; traces already in a queue are not sampled again")
    return ", ".join(steps[:-1]) + (", or " if len(steps) > 1 else "") + steps[-1]

