"""Tables of the feedback domain (flywheel.feedback). Migration: migrations/versions/0006_feedback.py.

- feedback: one row per event attached to a trace (and optionally one span of it): explicit user feedback
  (thumbs, score, comment, correction), implicit events (copied, regenerated, edited, accepted …), annotator
  labels, check and judge results. `source` says who wrote it: user | annotator | check | judge.
Times are Unix seconds (float).

A changed vote replaces the old one. The table is append-only, so a user who clicks thumbs down and then thumbs up
leaves two rows; only the later one counts (what users of Langfuse, which upserts a score by its id, expect).
A `thumbs` or `score` row is *superseded* when its trace has a later row (by created_at, then
id) with the same name, source, actor (None is one anonymous actor) and span_id. `is_current(f)` is that rule in
SQL (SQLite and PostgreSQL alike), `superseded_ids(rows)` the same rule over rows already loaded; every reader
of votes (sampling, monitor, routing, promote, trace search, the trace views) goes through one of them.
Every other name stays cumulative, each row an event of its own: comments, corrections and implicit events
(copied, regenerated, edited, accepted, rejected …) record something that happened, and a second one adds to the
first (two regenerations are more dissatisfaction than one); `accepted` and `rejected` are such events, not two
states of one vote, and differ in name besides; a `category` is a tag, and one answer may carry several
(outdated and wrong-source), so a second tag must not erase the first; a `label` of a review queue is one per
annotator and item already, changed through `flywheel review undo`, and check / judge results are written under
their evaluator's name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, and_, exists, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FromClause, FunctionElement

from flywheel.store.schema import ID, JSONDoc, metadata

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(ID), nullable=False),
    Column("span_id", String(ID)),
    Column("source", String(20), nullable=False),  # user | annotator | check | judge
    Column("name", String(100), nullable=False),  # thumbs, score, comment, correction, copied, edited …
    Column("value", JSONDoc),
    Column("comment", Text),
    Column("actor", String(200)),  # who: a key name, "token", an annotator, a check spec
    Column("tenant", String(100)),
    Column("created_at", Float, nullable=False),
    Index("ix_feedback_trace_id", "trace_id"),
    Index("ix_feedback_name_created_at", "name", "created_at"),
)

VOTES: tuple[str, ...] = ("thumbs", "score")  # the names whose later row of the same voter replaces the earlier


def is_current(f: FromClause = feedback) -> ColumnElement[bool]:
    """SQL condition on the rows of `f` (the feedback table, or an alias of it): the row still counts — it is no
    vote, or no later vote of the same voter on the same trace and span replaces it. Add it to the WHERE of any
    query that reads thumbs or scores: `select(f.c.trace_id).where(f.c.name == "thumbs", is_current(f))`."""
    later = feedback.alias("later_vote")
    replaced = exists().where(
        later.c.trace_id == f.c.trace_id, later.c.name == f.c.name, later.c.source == f.c.source,
        later.c.actor.is_not_distinct_from(f.c.actor), later.c.span_id.is_not_distinct_from(f.c.span_id),
        or_(later.c.created_at > f.c.created_at, and_(later.c.created_at == f.c.created_at, later.c.id > f.c.id)))
    return or_(f.c.name.not_in(VOTES), ~replaced)


def superseded_ids(rows: Iterable[Any]) -> set[int]:
    """The ids of the rows a later vote replaces (`is_current`'s rule), among `rows` already loaded — mappings or
    objects with the feedback columns as attributes (a FeedbackEvent); rows without an id are never listed."""
    latest: dict[tuple[Any, ...], tuple[float, int]] = {}
    votes: list[tuple[tuple[Any, ...], tuple[float, int]]] = []
    for row in rows:
        get = row.get if isinstance(row, Mapping) else (lambda k, r=row: getattr(r, k, None))
        row_id = get("id")
        if get("name") not in VOTES or row_id is None:
            continue
        key = (get("trace_id"), get("name"), get("source"), get("actor"), get("span_id"))
        order = (float(get("created_at") or 0.0), int(row_id))
        votes.append((key, order))
        latest[key] = max(latest.get(key, order), order)
    return {order[1] for key, order in votes if order < latest[key]}


LOW = 0.5  # a vote below it is negative: thumbs down (0), a score under 0.5, a "fail"


class vote_signal(FunctionElement[float]):  # used like a SQL function: vote_signal(f.c.value)
    """A feedback value as a number in SQL, on SQLite and PostgreSQL alike: numbers as they are (thumbs are 1 / 0),
    "pass" / true as 1, "fail" / false as 0, anything else NULL."""

    type = Float()
    name = "vote_signal"
    inherit_cache = True


@compiles(vote_signal)
def _vote_signal_sqlite(element: vote_signal, compiler: Any, **kw: Any) -> str:
    v = compiler.process(element.clauses, **kw)
    return (f"(CASE WHEN json_type({v}) IN ('integer', 'real') THEN CAST({v} AS REAL) "
            f"WHEN {v} IN ('\"pass\"', 'true') THEN 1.0 WHEN {v} IN ('\"fail\"', 'false') THEN 0.0 END)")


@compiles(vote_signal, "postgresql")
def _vote_signal_postgresql(element: vote_signal, compiler: Any, **kw: Any) -> str:
    v = compiler.process(element.clauses, **kw)
    return (f"(CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v} #>> '{{}}')::float "
            f"WHEN {v}::text IN ('\"pass\"', 'true') THEN 1.0 WHEN {v}::text IN ('\"fail\"', 'false') THEN 0.0 END)")


def user_vote(f: FromClause = feedback, *, negative: bool) -> ColumnElement[bool]:
    """SQL condition: the row is a user's current thumbs or score, negative (thumbs down, score < 0.5) or
    positive — the rule of the monitor's `negative_feedback_rate`, so a chart point and the traces it links to
    agree."""
    signal = vote_signal(f.c.value)
    return and_(f.c.source == "user", f.c.name.in_(VOTES), is_current(f), signal < LOW if negative else signal >= LOW)
