"""The one trace-search API: a `TraceQuery` of filters, keyset pages of traces, facet counts within a time budget,
and sessions (traces grouped by `session_id`) — for `flywheel traces`, the dashboard (/ui) and its `.json` twins.

    q, errors = TraceQuery.from_params({"model": "gpt", "feedback": "negative", "since": "24h"})
    page = search_traces(store, q, limit=50)          # page.rows newest first; page.next_cursor or None
    search_traces(store, q, cursor=page.next_cursor)  # the next page: (started_at, trace_id) < the cursor
    facet_counts(store, q, ["model", "status"], budget_ms=200)   # .partial when the budget ran out

Pages are keyset, not offset: page 1,000 costs what page 1 costs, and rows written meanwhile never shift a page.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, desc, exists, func, or_, select, tuple_
from sqlalchemy.exc import DBAPIError

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema_feedback import feedback as feedback_t
from flywheel.store.schema_feedback import user_vote
from flywheel.text import fold_for_search
from flywheel.tracing.query import incomplete_traces

MAX_LIMIT = 10_000
FACET_FIELDS = ("status", "app", "model", "prompt_version", "tenant")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_STATUS = ("ok", "error", "incomplete")


def parse_time(value: Any, now: float | None = None) -> float | None:
    """Unix seconds from a Unix number, an ISO date/datetime (UTC unless it says), or an age like 15m, 24h, 7d.
    `nan`, `inf` and an age too long to count (`1e400d`) are a ValueError, like any other unreadable time."""
    seconds = _parse_time(value, now)
    if seconds is not None and not math.isfinite(seconds):
        raise ValueError("a time is a Unix number, an ISO date (2026-05-01T10:00) or an age (15m, 24h, 7d)")
    return seconds


def _parse_time(value: Any, now: float | None) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    m = _RELATIVE.match(text.lower())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("a time is a Unix number, an ISO date (2026-05-01T10:00) or an age (15m, 24h, 7d)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


class TraceQuery(BaseModel):
    """Filters over traces; every field optional, all of them ANDed."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # `latency_min=inf` is a 400, not a 500

    since: float | None = None  # Unix seconds, inclusive
    until: float | None = None  # Unix seconds, exclusive
    app: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=100)
    tenant: str | None = Field(default=None, max_length=100)
    status: Literal["ok", "error", "incomplete"] | None = None
    latency_min: float | None = Field(default=None, ge=0)  # ms
    latency_max: float | None = Field(default=None, ge=0)
    cost_min: float | None = Field(default=None, ge=0)  # USD
    cost_max: float | None = Field(default=None, ge=0)
    feedback: Literal["positive", "negative", "any", "none"] | None = None
    guard: str | None = Field(default=None, max_length=40)  # a guard action: block, redact, refrain, fallback, log-only …
    cache: Literal["hit", "miss"] | None = None
    search: str | None = Field(default=None, max_length=200)  # words, each in the question or answer previews
    session_id: str | None = Field(default=None, max_length=200)
    user_id: str | None = Field(default=None, max_length=200)

    @field_validator("since", "until", mode="before")
    @classmethod
    def _time(cls, value: Any) -> float | None:
        return parse_time(value)

    @field_validator("app", "model", "prompt_version", "tenant", "guard", "search", "session_id", "user_id",
                     "status", "feedback", "cache", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("latency_min", "latency_max", "cost_min", "cost_max", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return None if value == "" else value

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> tuple[TraceQuery, dict[str, str]]:
        """The query from loose (querystring) params, and {field: why} for each invalid one, which is left out.
        Unknown params are ignored (a page's own params like `cursor` or `lang` travel in the same string)."""
        known = {k: v for k, v in params.items() if k in cls.model_fields}
        errors: dict[str, str] = {}
        for _ in range(len(known) + 1):
            try:
                return cls.model_validate(known), errors
            except ValidationError as exc:
                for err in exc.errors():
                    field = str(err["loc"][0]) if err["loc"] else ""
                    if field not in known:
                        raise
                    errors[field] = str(err["msg"]).removeprefix("Value error, ")
                    known.pop(field)
        return cls(), errors  # pragma: no cover - each pass drops at least one field

    def params(self) -> dict[str, Any]:
        """The fields that are set, for a URL or a saved view."""
        return self.model_dump(exclude_none=True)

    def only_cheap(self) -> bool:
        """Whether only filters an incomplete trace (no trace row yet) can be judged by are set."""
        return not (set(self.params()) - {"since", "until", "app", "tenant"})


class Page(BaseModel):
    rows: list[dict[str, Any]]
    next_cursor: str | None = None


# ------------------------------------------------------------------------------------------- cursors
def encode_cursor(started_at: float, trace_id: str) -> str:
    return base64.urlsafe_b64encode(f"{started_at!r}|{trace_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, tid = raw.split("|", 1)
        if not re.fullmatch(r"[0-9a-f]{1,32}", tid):
            raise ValueError(tid)
        return float(when), tid
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"invalid page cursor {cursor[:40]!r}", hint="start again from the first page") from exc


# ------------------------------------------------------------------------------------------- filters
EVALUATOR_TRACE = "monitor.online"


def conditions(q: TraceQuery) -> list[Any]:
    """SQL conditions on the traces table for `q`."""
    t = traces_t.c
    # the online evaluators' own traces: one per scored trace (with monitor.online at sample 1.0 they would be half
    # the list); their verdicts are feedback on the trace they scored, and `traces show ID` still opens one
    out: list[Any] = [t.name != EVALUATOR_TRACE]
    if q.since is not None:
        out.append(t.started_at >= q.since)
    if q.until is not None:
        out.append(t.started_at < q.until)
    for name in ("app", "model", "prompt_version", "tenant", "status", "session_id", "user_id"):
        value = getattr(q, name)
        if value is not None:
            out.append(t[name] == value)
    if q.latency_min is not None:
        out.append(t.latency_ms >= q.latency_min)
    if q.latency_max is not None:
        out.append(t.latency_ms <= q.latency_max)
    if q.cost_min is not None:
        out.append(t.cost_usd >= q.cost_min)
    if q.cost_max is not None:
        out.append(t.cost_usd <= q.cost_max)
    if q.search:
        out.append(_text_matches(q.search))
    # feedback: IN (subquery), run once (feedback rows are few next to traces), so a rare value answers fast;
    # guard/cache: a correlated EXISTS, which stops at the first page of matches when they are common (a value
    # that matches nothing scans every trace: see docs/dashboard.md, "Performance")
    if q.feedback is not None:
        f = feedback_t.c
        if q.feedback in ("any", "none"):
            with_feedback = t.trace_id.in_(select(f.trace_id))
            out.append(with_feedback if q.feedback == "any" else ~with_feedback)
        else:  # a user's current vote (a vote its voter changed later counts as the later one)
            out.append(t.trace_id.in_(select(f.trace_id).where(user_vote(feedback_t,
                                                                         negative=q.feedback == "negative"))))
    s = spans_t.c
    if q.guard is not None:
        out.append(exists().where(s.trace_id == t.trace_id, s.kind == "guard",
                                  s.attributes["flywheel.guard.action"].as_string() == q.guard))
    if q.cache is not None:
        hit = exists().where(s.trace_id == t.trace_id, s.kind == "cache",
                             s.attributes["flywheel.cache.hit"].as_boolean().is_(True))
        if q.cache == "hit":
            out.append(hit)
        else:
            out.append(and_(exists().where(s.trace_id == t.trace_id, s.name == "cache.lookup"), ~hit))
    return out


def _like(word: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", word) + "%"


def _text_matches(search: str) -> Any:
    """Words separated by spaces (an ideographic space too) must each appear, in the question or the answer:
    "退款 政策" finds "退款 refund 政策是什么", as a search box does; one word is the plain substring match.
    Both sides are folded (`fold_for_search`): "api 123" finds ＡＰＩ１２３ and "发票" finds 發票, and the other
    way round, with a plain LIKE on `search_text`, the previews folded when the trace was written (or by
    migration 0016 for older rows). A row written by raw SQL without it (NULL) is matched as before: each word
    in its previews as written, ignoring ASCII case only."""
    t = traces_t.c
    folded = [t.search_text.like(_like(w), escape="\\") for w in fold_for_search(search).split()]
    as_written = [or_(t.input_preview.ilike(_like(w), escape="\\"), t.output_preview.ilike(_like(w), escape="\\"))
                  for w in search.split()]
    return or_(and_(t.search_text.is_not(None), *folded), and_(t.search_text.is_(None), *as_written))


def _matches_cheap(q: TraceQuery, row: dict[str, Any]) -> bool:
    return all(q.params().get(k) in (None, row.get(k)) for k in ("app", "tenant")) and \
        (q.since is None or row["started_at"] >= q.since) and (q.until is None or row["started_at"] < q.until)


# ------------------------------------------------------------------------------------------- search
def search_traces(store: Store, q: TraceQuery, *, cursor: str | None = None, limit: int = 50) -> Page:
    """One page of traces matching `q`, newest first, keyset-paginated on (started_at, trace_id).

    Traces whose root never ended (no trace row yet, status "incomplete": still running, or killed) are merged in
    when only time, app and tenant filters are set (within the page's time span; however old for a page that is
    not full), or listed alone, however old, for `status="incomplete"`. They are read from `open_traces`, a row
    per such trace, so finding one of any age never scans the spans."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    after = decode_cursor(cursor) if cursor else None
    with store.engine.connect() as conn:
        rows: list[dict[str, Any]] = []
        if q.status != "incomplete":
            stmt = select(traces_t).where(*conditions(q))
            if after is not None:
                stmt = stmt.where(traces_t.c.started_at <= after[0],
                                  tuple_(traces_t.c.started_at, traces_t.c.trace_id) < tuple_(*after))
            stmt = stmt.order_by(desc(traces_t.c.started_at), desc(traces_t.c.trace_id)).limit(limit + 1)
            rows = [dict(r) for r in conn.execute(stmt).mappings()]
        if q.status == "incomplete" or q.only_cheap():
            # a full page reaches back to its last row; a short one (or status=incomplete) to `since`, or forever
            floor = rows[limit - 1]["started_at"] if len(rows) > limit else q.since
            extra = [r for r in incomplete_traces(conn, floor) if _matches_cheap(q, r)
                     and (after is None or (r["started_at"], r["trace_id"]) < after)]
            if extra:
                rows = sorted([*rows, *extra], key=lambda r: (r["started_at"], r["trace_id"]), reverse=True)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows=rows, next_cursor=encode_cursor(rows[-1]["started_at"], rows[-1]["trace_id"]) if more else None)


class Facets(BaseModel):
    counts: dict[str, list[tuple[Any, int]]]  # field -> [(value, traces)], most common first
    partial: bool = False  # the time budget ran out: `skipped` fields have no counts
    skipped: list[str] = Field(default_factory=list)
    ms: float = 0.0


def facet_counts(store: Store, q: TraceQuery, fields: list[str] | tuple[str, ...] = FACET_FIELDS, *,
                 budget_ms: float = 200.0, top: int = 10) -> Facets:
    """How many traces matching `q` have each value of each field (the `top` most common), computed until
    `budget_ms` is spent: a query still running then is interrupted and the rest reported as skipped."""
    for name in fields:
        if name not in FACET_FIELDS:
            raise UserError(f"no facet {name!r}", hint=f"facets: {', '.join(FACET_FIELDS)}")
    start = time.perf_counter()
    deadline = start + budget_ms / 1000
    out = Facets(counts={})
    where = conditions(q.model_copy(update={"status": None}) if q.status == "incomplete" else q)
    for name in fields:
        if time.perf_counter() >= deadline:
            out.skipped.append(name)
            continue
        col = traces_t.c[name]
        n = func.count().label("n")
        stmt = select(col, n).where(*where).group_by(col).order_by(desc("n")).limit(top)
        try:
            out.counts[name] = [(r[0], int(r[1])) for r in _run_until(store, stmt, deadline)]
        except _OverBudget:
            out.skipped.append(name)
    out.partial = bool(out.skipped)
    out.ms = round((time.perf_counter() - start) * 1000, 1)
    return out


class _OverBudget(Exception):
    pass


def _run_until(store: Store, stmt: Any, deadline: float) -> list[Any]:
    """Rows of `stmt`, or _OverBudget when it is still running at `deadline` (the query is interrupted)."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            raw.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, 5000)  # type: ignore[union-attr]
            try:
                return list(conn.execute(stmt))
            except DBAPIError as exc:
                if "interrupt" in str(exc).lower():
                    raise _OverBudget from None
                raise
            finally:
                raw.set_progress_handler(None, 0)  # type: ignore[union-attr]
        left_ms = int((deadline - time.perf_counter()) * 1000)
        if left_ms <= 0:
            raise _OverBudget
        with conn.begin():
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {left_ms}")
            try:
                return list(conn.execute(stmt))
            except DBAPIError as exc:
                if "statement timeout" in str(exc).lower() or "canceling statement" in str(exc).lower():
                    raise _OverBudget from None
                raise


# ------------------------------------------------------------------------------------------- sessions
def search_sessions(store: Store, *, tenant: str | None = None, user_id: str | None = None,
                    since: float | None = None, cursor: str | None = None, limit: int = 50) -> Page:
    """Conversations: traces grouped by `session_id`, the most recently active first (keyset on last activity).
    Rows: session_id, user_id, turns, first_at, last_at, cost_usd, errors."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    t = traces_t.c
    last_at = func.max(t.started_at).label("last_at")
    stmt = (select(t.session_id, func.max(t.user_id).label("user_id"), func.count().label("turns"),
                   func.min(t.started_at).label("first_at"), last_at,
                   func.sum(t.cost_usd).label("cost_usd"), func.sum(t.error_count).label("errors"))
            .where(t.session_id.is_not(None)).group_by(t.session_id))
    if tenant is not None:
        stmt = stmt.where(t.tenant == tenant)
    if user_id is not None:
        stmt = stmt.where(t.user_id == user_id)
    if since is not None:
        stmt = stmt.where(t.started_at >= since)
    if cursor:
        when, sid = _decode_session_cursor(cursor)
        stmt = stmt.having(or_(func.max(t.started_at) < when, and_(func.max(t.started_at) == when, t.session_id < sid)))
    stmt = stmt.order_by(desc("last_at"), desc(t.session_id)).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = None
    if more:
        raw = f"{rows[-1]['last_at']!r}|{rows[-1]['session_id']}"
        nxt = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    return Page(rows=rows, next_cursor=nxt)


def _decode_session_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, sid = raw.split("|", 1)
        return float(when), sid
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"invalid page cursor {cursor[:40]!r}", hint="start again from the first page") from exc


def session_turns(store: Store, session_id: str, *, tenant: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """The traces of one conversation, oldest first (at most `limit`, the latest ones)."""
    page = search_traces(store, TraceQuery(session_id=session_id, tenant=tenant), limit=limit)
    return page.rows[::-1]


def top_users(store: Store, *, tenant: str | None = None, since: float | None = None,
              limit: int = 50) -> list[dict[str, Any]]:
    """End users by traces: user_id, traces, sessions, last_at, cost_usd (most recently active first)."""
    t = traces_t.c
    stmt = (select(t.user_id, func.count().label("traces"), func.count(func.distinct(t.session_id)).label("sessions"),
                   func.max(t.started_at).label("last_at"), func.sum(t.cost_usd).label("cost_usd"))
            .where(t.user_id.is_not(None)).group_by(t.user_id).order_by(desc("last_at")).limit(limit))
    if tenant is not None:
        stmt = stmt.where(t.tenant == tenant)
    if since is not None:
        stmt = stmt.where(t.started_at >= since)
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]
