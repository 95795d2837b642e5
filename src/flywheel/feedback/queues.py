"""Review queues: binary (pass / fail) or pairwise (a / b / tie) tasks over traces, each labelled by K distinct
annotators — the overlap is enforced here, in the store, not by the client.

    q = queues.create_queue(store, kind="binary", n=50, overlap=2)          # sampled (sampling.py), seeded
    item = queues.next_item(store, q, "ana")                                 # claims it for lock_ttl_s
    queues.label(store, item.id, "ana", "fail", reason="wrong version", correction="Use 2.1")
    queues.progress(store, q); queues.progress_many(store, queues.list_queues(store)); queues.labels(store, q)

Every write that counts against the overlap (a claim in `next_item`, a `label`) runs in one transaction that is
serialised per queue — SQLite `BEGIN IMMEDIATE`, PostgreSQL `SELECT … FOR UPDATE` on the queue row — and a
unique (item, annotator) constraint backs it up, so K holds with concurrent threads and processes.

Pairwise items are shown in an order fixed per (item, annotator) by a hash: each annotator sees A and B in
their own random order, model names are never shown, and a label's `shown` verdict is mapped back to the
canonical one (`a` = the item's `trace_id`). Every label also writes a `feedback` row (source "annotator",
name "label") on the item's trace.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import shlex
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from flywheel.errors import UserError
from flywheel.feedback.content import trace_contents
from flywheel.feedback.events import resolve_trace_ids, text_scrubber, validate
from flywheel.feedback.queue_checks import (
    already_queued,
    checked_ids,
    checked_pairs,
    free_name,
    known,
    trace_alive,
)
from flywheel.feedback.queue_checks import empty_queue_hint as _empty_queue_hint  # the web tests render it
from flywheel.feedback.queue_progress import progress_many
from flywheel.feedback.sampling import STRATEGIES, empty_window_message, sample_pairs, sample_strata

if TYPE_CHECKING:
    from flywheel.store import Store

CHOICES = {"binary": ("pass", "fail"), "pairwise": ("a", "b", "tie")}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


def valid_name(name: str) -> bool:
    """Whether `name` may name a queue: it is part of the queue's URLs and CLI arguments, so ASCII only."""
    return bool(_NAME.match(name))
MAX_UNIX_S = 7_258_118_400  # the year 2200: later `since`/`until` are mistakes (and overflow SQL integers)
MAX_TEXT, _CREATE_LOCK = 20_000, 0x7265766965  # reason / correction length; create_queue's pg advisory lock key


class NotFoundError(UserError):
    """An unknown queue or item (the server answers 404)."""


class ConflictError(UserError):
    """A label that would break a rule: a second label by the same annotator, one past the overlap, or one on an
    item whose trace was deleted (409)."""


class Queue(BaseModel):
    id: str
    name: str
    kind: Literal["binary", "pairwise"] = "binary"
    overlap: int = 2
    strategy: str = "mixed"
    seed: int = 0
    tenant: str | None = None
    app: str | None = None
    since: float | None = None
    until: float | None = None
    created_at: float = 0.0
    n_items: int = 0


class Item(BaseModel):
    """One task. For pairwise items from `next_item`, A / B are in the order this annotator sees them."""

    id: str
    queue_id: str
    kind: Literal["binary", "pairwise"] = "binary"
    position: int = 0
    trace_id: str
    trace_id_b: str | None = None
    input: str = ""
    output: str = ""
    output_b: str | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)
    sources_b: list[dict[str, Any]] | None = None
    prompt: list[dict[str, Any]] = Field(default_factory=list)  # the exact final messages sent to the model
    prompt_b: list[dict[str, Any]] | None = None
    choices: list[str] = Field(default_factory=list)
    swapped: bool = False  # pairwise: this annotator's A is the item's canonical B
    stratum: str | None = None  # the sampling strategy that picked it
    n_labels: int = 0


class Label(BaseModel):
    item_id: str
    queue_id: str
    annotator: str
    verdict: str  # canonical: for pairwise "a" is the item's trace_id whatever order the annotator saw
    reason: str | None = None
    correction: str | None = None
    created_at: float = 0.0
    shown: str | None = None  # what the annotator chose, in the order they saw
    trace_id: str | None = None
    trace_id_b: str | None = None


@contextmanager
def _serialized(store: Store, queue_id: str) -> Iterator[Any]:
    """One transaction, serialised against every other overlap-counting write on the same queue."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            if store.dialect == "postgresql":
                q = store.table("review_queues")
                conn.execute(select(q.c.id).where(q.c.id == queue_id).with_for_update())
            yield conn


# ---------------------------------------------------------------------------- queues


def create_queue(store: Store, name: str | None = None, *, kind: str = "binary", overlap: int = 2,
                 strategy: str = "mixed", n: int = 50, app: str | None = None, since: float | None = None,
                 until: float | None = None, seed: int | None = None, trace_ids: Iterable[str] | None = None,
                 pairs: Iterable[tuple[str, str]] | None = None, tenant: str | None = None) -> Queue:
    """Build a queue: sampled (`strategy`, `n`, window, `seed` — recorded, a random one when None), or from
    explicit `trace_ids` (binary) / `pairs` (pairwise). A trace already queued is never queued again."""
    if kind not in CHOICES:
        raise UserError(f"unknown queue kind {kind!r}", hint="binary (pass / fail) or pairwise (a / b / tie)")
    if not isinstance(overlap, int) or overlap < 1:
        raise UserError(f"overlap must be at least 1 annotator per item (got {overlap!r})")
    if name is not None and not valid_name(name):
        raise UserError(f"invalid queue name {name!r}", hint="ASCII letters, digits and _.:- (≤ 200), e.g. daily-0612")
    if seed is None:
        seed = secrets.randbelow(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**62:
        raise UserError(f"the sampling seed must be a whole number from 0 to 2**62 (got {seed!r})")
    for label, when in (("since", since), ("until", until)):
        if when is not None and not 0 <= when <= MAX_UNIX_S:
            raise UserError(f"`{label}` is not a plausible time ({when!r} Unix seconds)",
                            hint="give Unix seconds, e.g. 1767225600 for 2026-01-01")
    explicit = trace_ids is not None or pairs is not None
    if explicit:
        strategy = "explicit"
    elif strategy != "mixed" and strategy not in STRATEGIES:
        sample_strata(store, n=1, strategy=strategy)  # raises the did-you-mean error
    with store.connect() as conn:
        if pairs is not None or kind == "pairwise":
            if kind != "pairwise" or trace_ids is not None:
                raise UserError("a pairwise queue is built from `pairs` (or sampled), a binary one from `trace_ids`")
            rows = checked_pairs(store, conn, pairs, tenant) if pairs is not None else \
                sample_pairs(store, n=n, app=app, tenant=tenant, since=since, until=until, seed=seed)
        elif trace_ids is not None:
            rows = [(tid, None, "explicit") for tid in checked_ids(store, conn, trace_ids, tenant)]
        else:
            rows = [(tid, None, s) for tid, s in sample_strata(store, n=n, strategy=strategy, app=app, tenant=tenant,
                                                               since=since, until=until, seed=seed)]
    if not rows:
        raise UserError(empty_window_message(kind, strategy, app, tenant, since, until),
                        hint=_empty_queue_hint(kind, strategy, app, since, until))
    now = time.time()
    queue = Queue(id=secrets.token_hex(6), name=name or "", kind=kind, overlap=overlap,  # type: ignore[arg-type]
                  strategy=strategy, seed=seed, tenant=tenant, app=app, since=since, until=until, created_at=now,
                  n_items=len(rows))
    qt, it = store.table("review_queues"), store.table("review_items")
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.execution_options(sqlite_immediate=True)
        with conn.begin():
            if store.dialect == "postgresql":  # one queue builder at a time: a trace is never queued twice
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
            queued = already_queued(conn, it, [r[0] for r in rows] + [r[1] for r in rows if r[1]])
            rows = [r for r in rows if r[0] not in queued and r[1] not in queued]  # taken meanwhile
            if not rows:
                raise UserError("every sampled trace was queued by someone else meanwhile", hint="sample again")
            queue.name = name or free_name(conn, qt, f"{strategy}-{time.strftime('%Y-%m-%d', time.gmtime(now))}",
                                            tenant)
            queue.n_items = len(rows)
            taken = UserError(f"a queue named {queue.name!r} already exists",
                              hint="choose another --name, or omit it for a dated one")
            if name and free_name(conn, qt, name, tenant) != name:  # names are per tenant; NULL never clashes in SQL
                raise taken
            try:
                conn.execute(qt.insert().values(
                    **queue.model_dump(), params={"n": n, "strategy": strategy, "seed": seed}))
            except IntegrityError:
                raise taken from None
            conn.execute(it.insert(), [
                {"id": secrets.token_hex(6), "queue_id": queue.id, "position": i, "kind": kind, "trace_id": a,
                 "trace_id_b": b, "stratum": s, "created_at": now} for i, (a, b, s) in enumerate(rows)])
    return queue


def _queue_from(row: Any) -> Queue:
    return Queue(**{k: row[k] for k in Queue.model_fields})


def get_queue(store: Store, name_or_id: str | Queue, *, tenant: str | None = None) -> Queue:
    """The queue named (or with the id) `name_or_id`, among the tenant's when `tenant` is given. Names are unique
    per tenant: without `tenant`, a name two tenants use is ambiguous (UserError; pass the id)."""
    if isinstance(name_or_id, Queue):
        return name_or_id
    qt = store.table("review_queues")
    with store.connect() as conn:
        rows = conn.execute(select(qt).where((qt.c.name == name_or_id) | (qt.c.id == name_or_id))).mappings().all()
        rows = sorted((r for r in rows if tenant is None or r["tenant"] == tenant), key=lambda r: r["id"] != name_or_id)
        if len(rows) > 1 and rows[0]["id"] != name_or_id:
            raise UserError(f"{len(rows)} tenants have a review queue named {name_or_id!r}",
                            hint="give the tenant, or the queue id: " + ", ".join(f"{r['id']} ({r['tenant']})" for r in rows))
        if rows:
            return _queue_from(rows[0])
        q = select(qt.c.name)
        if tenant is not None:
            q = q.where(qt.c.tenant == tenant)
        known = list(conn.scalars(q))
    from flywheel.registry import did_you_mean

    close = did_you_mean(str(name_or_id), known)
    raise NotFoundError(f"no review queue {name_or_id!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
                    hint="list queues with `flywheel review status`; make one with `flywheel review sample`")


def list_queues(store: Store, tenant: str | None = None) -> list[Queue]:
    """Every queue (of `tenant` when given), newest first."""
    qt = store.table("review_queues")
    q = select(qt).order_by(qt.c.created_at.desc(), qt.c.name)
    if tenant is not None:
        q = q.where(qt.c.tenant == tenant)
    with store.connect() as conn:
        return [_queue_from(r) for r in conn.execute(q).mappings()]


# ---------------------------------------------------------------------------- items


def _swapped(item_id: str, annotator: str) -> bool:
    return hashlib.sha256(f"{item_id}\0{annotator}".encode()).digest()[0] & 1 == 1


def _items(store: Store, rows: list[Any], annotator: str | None = None) -> list[Item]:
    ids = [r["trace_id"] for r in rows] + [r["trace_id_b"] for r in rows if r["trace_id_b"]]
    contents = trace_contents(store, ids)
    lt = store.table("review_labels")
    with store.connect() as conn:
        counted = conn.execute(select(lt.c.item_id, func.count()).where(
            lt.c.item_id.in_([r["id"] for r in rows])).group_by(lt.c.item_id)).all() if rows else []
    counts = {str(k): int(v) for k, v in counted}
    out = []
    for r in rows:
        a = contents.get(r["trace_id"], {})
        item = Item(id=r["id"], queue_id=r["queue_id"], kind=r["kind"], position=r["position"], trace_id=r["trace_id"],
                    input=a.get("input", ""), output=a.get("output", ""), sources=a.get("sources", []),
                    prompt=a.get("prompt", []), choices=list(CHOICES[r["kind"]]), stratum=r["stratum"],
                    n_labels=int(counts.get(r["id"], 0)))
        if r["trace_id_b"]:
            b = contents.get(r["trace_id_b"], {})
            item.trace_id_b, item.output_b = r["trace_id_b"], b.get("output", "")
            item.sources_b, item.prompt_b = b.get("sources", []), b.get("prompt", [])
            if annotator is not None and _swapped(r["id"], annotator):
                item.trace_id, item.trace_id_b = item.trace_id_b, item.trace_id
                item.output, item.output_b = item.output_b, item.output
                item.sources, item.sources_b = item.sources_b or [], item.sources
                item.prompt, item.prompt_b = item.prompt_b or [], item.prompt
                item.swapped = True
        out.append(item)
    return out


def items(store: Store, queue: str | Queue) -> list[Item]:
    """The queue's items in order, with their content (canonical A / B order)."""
    queue = get_queue(store, queue)
    it = store.table("review_items")
    with store.connect() as conn:
        rows = conn.execute(select(it).where(it.c.queue_id == queue.id).order_by(it.c.position)).mappings().all()
    return _items(store, list(rows))


def get_item(store: Store, item_id: str, annotator: str | None = None) -> Item:
    """One item (in `annotator`'s A / B order when given); UserError when unknown."""
    it = store.table("review_items")
    with store.connect() as conn:
        row = conn.execute(select(it).where(it.c.id == item_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no review item {item_id!r}", hint="item ids come from `flywheel review sample --json`")
    return _items(store, [row], annotator)[0]


def add_items(store: Store, queue: str | Queue, trace_ids: Iterable[str], *, tenant: str | None = None
              ) -> dict[str, list[str]]:
    """Append traces to a binary queue (of `tenant` when given): {"added": [...], "skipped": [...]} — a trace
    already in any review queue is skipped, not an error. Ids may be unique prefixes (6+ hex characters) or
    response ids. Unknown traces, or another tenant's, or an ambiguous prefix raise UserError and add nothing."""
    queue = get_queue(store, queue, tenant=tenant)
    if queue.kind != "binary":
        raise UserError(f"queue {queue.name!r} is pairwise; traces are added to binary queues")
    ids = list(dict.fromkeys(resolve_trace_ids(store, (t for t in trace_ids if str(t).strip()), tenant=queue.tenant)))
    if not ids:
        raise UserError("no trace id to add", hint="list traces with `flywheel traces`")
    with store.connect() as conn:
        missing = [t for t in ids if t not in known(store, conn, ids, queue.tenant)]
    if missing:
        raise UserError(f"unknown trace id(s): {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""),
                        hint="list traces with `flywheel traces` (of the queue's tenant)")
    qt, it = store.table("review_queues"), store.table("review_items")
    now = time.time()
    with _serialized(store, queue.id) as conn:
        if store.dialect == "postgresql":  # the same lock as create_queue: a trace is never queued twice
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK})
        queued = already_queued(conn, it, ids)
        added = [t for t in ids if t not in queued]
        start = conn.scalar(select(func.coalesce(func.max(it.c.position), -1)).where(it.c.queue_id == queue.id)) + 1
        if added:
            conn.execute(it.insert(), [
                {"id": secrets.token_hex(6), "queue_id": queue.id, "position": start + i, "kind": "binary",
                 "trace_id": t, "trace_id_b": None, "stratum": "explicit", "created_at": now}
                for i, t in enumerate(added)])
            conn.execute(update(qt).where(qt.c.id == queue.id).values(n_items=qt.c.n_items + len(added)))
    return {"added": added, "skipped": [t for t in ids if t in queued]}


def _annotator(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise UserError("an annotator name is needed (1-200 printable characters)",
                        hint="pass --annotator NAME or set FLYWHEEL_ANNOTATOR")
    return name.strip()


def next_item(store: Store, queue: str | Queue, annotator: str, *, lock_ttl_s: float = 600.0,
              skip: Iterable[str] = ()) -> Item | None:
    """The next item `annotator` should label, claimed for `lock_ttl_s` seconds; None when nothing is left for
    them. Never an item they labelled, nor one that K annotators have labelled or hold, nor one whose trace was
    deleted (`progress` counts those as "gone"); an item they already hold comes back first. `skip`: item ids not
    to hand out now (skipped in this session)."""
    annotator = _annotator(annotator)
    queue = get_queue(store, queue)
    it, lt, ct = store.table("review_items"), store.table("review_labels"), store.table("review_claims")
    skip = list(skip)
    now = time.time()
    with _serialized(store, queue.id) as conn:
        conn.execute(delete(ct).where(ct.c.queue_id == queue.id, ct.c.expires_at <= now))
        alive = trace_alive(store, it)
        mine = select(ct.c.item_id).where(ct.c.queue_id == queue.id, ct.c.annotator == annotator,
                                          ct.c.item_id.in_(select(it.c.id).where(it.c.queue_id == queue.id, alive)))
        if skip:
            mine = mine.where(ct.c.item_id.not_in(skip))
        item_id = conn.scalar(mine.limit(1))
        if item_id is None:
            n_labels = select(func.count()).select_from(lt).where(lt.c.item_id == it.c.id).scalar_subquery()
            n_claims = select(func.count()).select_from(ct).where(
                ct.c.item_id == it.c.id, ct.c.annotator != annotator).scalar_subquery()
            done = select(lt.c.id).where(lt.c.item_id == it.c.id, lt.c.annotator == annotator).exists()
            q = select(it.c.id).where(it.c.queue_id == queue.id, ~done, n_labels + n_claims < queue.overlap, alive)
            if skip:
                q = q.where(it.c.id.not_in(skip))
            item_id = conn.scalar(q.order_by(it.c.position).limit(1))
            if item_id is None:
                return None
            conn.execute(ct.insert().values(item_id=item_id, annotator=annotator, queue_id=queue.id,
                                            expires_at=now + lock_ttl_s))
        else:
            conn.execute(update(ct).where(ct.c.item_id == item_id, ct.c.annotator == annotator)
                         .values(expires_at=now + lock_ttl_s))
    return get_item(store, item_id, annotator)


def release(store: Store, item_id: str, annotator: str) -> None:
    """Give an item back (skipped): other annotators may take it at once."""
    with store.begin() as conn:
        ct = store.table("review_claims")
        conn.execute(delete(ct).where(ct.c.item_id == item_id, ct.c.annotator == annotator))


# ---------------------------------------------------------------------------- labels


def _text(value: Any, what: str, scrub: Callable[[str], str]) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise UserError(f"the {what} must be a text of at most {MAX_TEXT} characters")
    return scrub(value)


def label(store: Store, item_id: str, annotator: str, verdict: str, *, reason: str | None = None,
          correction: str | None = None, scrub: Callable[[str], str] | None = None) -> Label:
    """Record `annotator`'s verdict on an item (for pairwise: "a" / "b" as this annotator saw them, or "tie").
    UserError for an unknown item, a verdict outside the item's choices, a second label by the same annotator,
    an item that already has its K labels, or one whose trace (either trace of a pair) was deleted (ConflictError:
    no feedback row on a trace that is gone). Writes the label and its `feedback` row together, or nothing.
    `reason` and `correction` go through `scrub` (default: `events.text_scrubber()`: secrets, and PII when
    `tracing.redact_pii` is on)."""
    annotator = _annotator(annotator)
    scrub = scrub or text_scrubber()
    reason, correction = _text(reason, "reason", scrub), _text(correction, "correction", scrub)
    it, lt, ct = store.table("review_items"), store.table("review_labels"), store.table("review_claims")
    qt, ft, tt = store.table("review_queues"), store.table("feedback"), store.table("traces")
    with store.connect() as conn:
        row = conn.execute(select(it).where(it.c.id == item_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no review item {item_id!r}", hint="item ids come from `flywheel review sample --json` "
                                                            "or `flywheel review status --json`")
    choices = CHOICES[row["kind"]]
    shown = verdict.strip().lower() if isinstance(verdict, str) else verdict
    if shown not in choices:
        raise UserError(f"verdict {verdict!r} is not one of this {row['kind']} item's choices: {', '.join(choices)}")
    swapped = row["kind"] == "pairwise" and _swapped(item_id, annotator)
    canonical = {"a": "b", "b": "a"}.get(shown, shown) if swapped else shown
    now = time.time()
    with _serialized(store, row["queue_id"]) as conn:
        if conn.scalar(select(it.c.id).where(it.c.id == item_id, trace_alive(store, it))) is None:
            raise ConflictError(f"item {item_id}'s trace was deleted: nothing left to label (progress counts it as "
                                "gone)", hint="take the next item with `flywheel review` (it skips such items)")
        overlap = conn.scalar(select(qt.c.overlap).where(qt.c.id == row["queue_id"]))
        mine = conn.scalar(select(lt.c.id).where(lt.c.item_id == item_id, lt.c.annotator == annotator))
        if mine is not None:
            raise ConflictError(f"{annotator} already labelled item {item_id}",
                            hint=f"each annotator labels an item once; `flywheel review undo {item_id} --annotator "
                                 f"{shlex.quote(annotator)}` to change it")
        n = conn.scalar(select(func.count()).select_from(lt).where(lt.c.item_id == item_id)) or 0
        if n >= overlap:
            raise ConflictError(f"item {item_id} already has its {overlap} label(s)",
                            hint="take the next item with `flywheel review` (it hands out only open items)")
        value: Any = canonical
        if row["trace_id_b"]:
            winner = {"a": row["trace_id"], "b": row["trace_id_b"]}.get(canonical)
            value = {"verdict": canonical, "a": row["trace_id"], "b": row["trace_id_b"], "winner": winner}
        validate(row["trace_id"], "label", value, source="annotator", comment=reason, actor=annotator)
        tenant = conn.scalar(select(tt.c.tenant).where(tt.c.trace_id == row["trace_id"]))
        fid = conn.execute(ft.insert().values(
            trace_id=row["trace_id"], source="annotator", name="label", value=value, comment=reason,
            actor=annotator, tenant=tenant, created_at=now)).inserted_primary_key[0]
        conn.execute(lt.insert().values(item_id=item_id, queue_id=row["queue_id"], annotator=annotator,
                                        verdict=canonical, shown=shown, swapped=int(swapped), reason=reason,
                                        correction=correction, feedback_id=fid, created_at=now))
        conn.execute(delete(ct).where(ct.c.item_id == item_id, ct.c.annotator == annotator))
    return Label(item_id=item_id, queue_id=row["queue_id"], annotator=annotator, verdict=canonical, reason=reason,
                 correction=correction, created_at=now, shown=shown, trace_id=row["trace_id"],
                 trace_id_b=row["trace_id_b"])


def undo(store: Store, item_id: str, annotator: str) -> Label:
    """Remove `annotator`'s label on the item (and its feedback row); returns what was removed."""
    annotator = _annotator(annotator)
    lt, ft, it = store.table("review_labels"), store.table("feedback"), store.table("review_items")
    with store.connect() as conn:
        if (queue_id := conn.scalar(select(it.c.queue_id).where(it.c.id == item_id))) is None:
            raise NotFoundError(f"no review item {item_id!r}")
    with _serialized(store, queue_id) as conn:
        row = conn.execute(select(lt).where(lt.c.item_id == item_id, lt.c.annotator == annotator)).mappings().first()
        if row is None:
            raise NotFoundError(f"{annotator} has no label on item {item_id} to undo")
        conn.execute(delete(lt).where(lt.c.id == row["id"]))
        if row["feedback_id"] is not None:
            conn.execute(delete(ft).where(ft.c.id == row["feedback_id"]))
    return _label_from(row, None, None)


def _label_from(row: Any, a: str | None, b: str | None) -> Label:
    return Label(item_id=row["item_id"], queue_id=row["queue_id"], annotator=row["annotator"], verdict=row["verdict"],
                 reason=row["reason"], correction=row["correction"], created_at=row["created_at"],
                 shown=row["shown"], trace_id=a, trace_id_b=b)


def labels(store: Store, queue: str | Queue | None = None, *, tenant: str | None = None) -> list[Label]:
    """Every label (of one queue, or of the tenant's queues), oldest first, verdicts canonical."""
    lt, it, qt = store.table("review_labels"), store.table("review_items"), store.table("review_queues")
    q = (select(lt, it.c.trace_id, it.c.trace_id_b).select_from(lt.join(it, it.c.id == lt.c.item_id))
         .order_by(lt.c.created_at, lt.c.id))
    if queue is not None:
        q = q.where(lt.c.queue_id == get_queue(store, queue, tenant=tenant).id)
    elif tenant is not None:
        q = q.where(lt.c.queue_id.in_(select(qt.c.id).where(qt.c.tenant == tenant)))
    with store.connect() as conn:
        return [_label_from(r, r["trace_id"], r["trace_id_b"]) for r in conn.execute(q).mappings()]


def progress(store: Store, queue: str | Queue) -> dict[str, Any]:
    """{"queue", "items", "overlap", "labels", "complete" (items with K labels), "annotators": {name: n_done}};
    `progress_many` for several queues at once."""
    queue = get_queue(store, queue)
    return progress_many(store, [queue])[queue.id]
