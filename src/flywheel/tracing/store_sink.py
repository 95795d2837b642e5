"""Persist spans: a tracer sink that queues raw Span records on the store's background writer.

The caller's thread only enqueues the record (waiting briefly, then dropping and counting it, when the writer is
a full second behind: see `flywheel.store.writer`); on the writer thread each batch is redacted and converted to
`spans` rows, and when a root span arrives its `traces` row is upserted, aggregating over the trace's spans
(tokens, cost, errors) in the same transaction, so a trace row never exists without its spans.

Attributes the sink reads (OpenTelemetry GenAI + flywheel conventions):
  gen_ai.request.model / gen_ai.response.model (an app span: flywheel.answer.model) → model,
  gen_ai.provider.name → provider,
  gen_ai.usage.input_tokens / gen_ai.usage.output_tokens → tokens, flywheel.cost_usd → cost,
  flywheel.prompt.version, flywheel.tenant, flywheel.app.
Trace totals count each span's tokens/cost unless one of its descendants reports that figure too
(so a parent restating its children's totals is not counted twice).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, select

from flywheel.protocols import Masker
from flywheel.store import Store
from flywheel.store.schema import search_text
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.tracing.open_marks import close_open, mark_open, sweep_stale_marks
from flywheel.tracing.redact import Redactor, jsonable
from flywheel.tracing.tracer import tracer
from flywheel.types import Span

log = logging.getLogger("flywheel.tracing")
WRITER_KIND = "tracing.spans"
PREVIEW_CHARS = 200
_METRICS = ("input_tokens", "output_tokens", "cost_usd")
_LENGTHS = {"name": 200, "kind": 20, "model": 200, "provider": 50, "prompt_version": 100, "tenant": 100,
            "app": 100}


def attach_store(store: Store, tracing_config: Any = None, *, models: dict[str, Any] | None = None,
                 masker: Masker | None = None) -> Callable[[], None]:
    """Record every finished span into `store`. Installs a Redactor (from `tracing_config`, the models'
    `api_key_env` and the PII `masker` when `tracing.redact_pii` is on) as `tracer.redactor`, and OTLP export
    when `tracing_config.otlp_endpoint` is set.
    Returns `detach()`, which flushes and removes all of it. `tracing_config` may also be a whole Config."""
    if hasattr(tracing_config, "tracing") and hasattr(tracing_config, "models"):
        models = models if models is not None else tracing_config.models
        tracing_config = tracing_config.tracing
    if tracing_config is not None and not getattr(tracing_config, "enabled", True):
        return lambda: None
    redactor = Redactor.from_config(tracing_config, models, masker=masker)
    sink = StoreSink(store, redactor)
    previous = tracer.redactor
    tracer.redactor = redactor
    tracer.add_sink(sink.submit, sink.flush, redacts=True, replay=True)  # + spans that ended before the store
    early_dropped, tracer.early_dropped = tracer.early_dropped, 0
    store.writer.count_dropped(WRITER_KIND, early_dropped, "early_buffer_full")
    detach_otlp: Callable[[], None] | None = None
    endpoint = getattr(tracing_config, "otlp_endpoint", None)
    if endpoint:
        from flywheel.tracing.otel import attach_otlp

        detach_otlp = attach_otlp(endpoint, redactor=redactor)

    def detach() -> None:
        tracer.remove_sink(sink.submit, sink.flush)
        sink.flush()
        if tracer.redactor is redactor:
            tracer.redactor = previous
        if detach_otlp is not None:
            detach_otlp()

    return detach


class StoreSink:
    """Converts queued Span records into rows on the writer thread.

    Trace totals come from memory: spans of traces whose root has not ended yet are remembered (updated only
    after their batch commits), so the common path needs no extra query. Beyond MAX_OPEN_TRACES unfinished
    traces (a leak), it falls back to reading the trace's spans back from the database.
    """

    MAX_OPEN_TRACES = 50_000
    MAX_DONE_TRACES = 100_000
    SWEEP_EVERY_S = 300.0  # how often stale marks are swept (see `sweep_stale_marks`); first on the 1st batch

    def __init__(self, store: Store, redactor: Redactor):
        self.store = store
        self.redactor = redactor
        self._put = store.writer.put
        self._open: dict[str, list[dict[str, Any]]] = {}  # trace id → committed member summaries
        self._done: dict[str, None] = {}  # recently finished trace ids (insertion-ordered, bounded)
        self._overflowed = False
        self._swept = -math.inf
        store.writer.register(WRITER_KIND, self.write_batch)

    # caller's thread: enqueue only
    def submit(self, record: Span) -> None:
        self._put(WRITER_KIND, record)

    def flush(self) -> None:
        self.store.writer.flush()

    # writer thread
    def write_batch(self, conn: Connection, records: list[Span]) -> Callable[[], None] | None:
        rows: list[dict[str, Any]] = []
        for raw in records:
            rec = self._redact(raw)
            if rec is not None:
                rows.append(span_row(rec))
            _yield_gil()
        if not rows:
            return None
        _insert_spans(conn, rows)
        batch: dict[str, list[dict[str, Any]]] = {}
        roots: list[dict[str, Any]] = []
        for r in rows:
            batch.setdefault(r["trace_id"], []).append(_summary(r))
            if r["parent_id"] is None:
                roots.append(r)
        root_ids = {r["trace_id"] for r in roots}
        # traces first seen without their root: marked open (listed as incomplete, however old, until it ends)
        opened = [(tid, min(m["start_ns"] for m in members) / 1e9) for tid, members in batch.items()
                  if tid not in root_ids and tid not in self._done and tid not in self._open]
        if opened:
            mark_open(conn, opened)
        if roots:
            # a root seen before (sent again) or members forgotten on overflow: the database has them all
            unknown = [tid for tid in root_ids
                       if tid in self._done or (self._overflowed and tid not in self._open)]
            from_db = trace_members(conn, unknown) if unknown else {}
            trace_rows = []
            for root in roots:
                tid = root["trace_id"]
                members = from_db[tid] if tid in from_db else [*self._open.get(tid, ()), *batch[tid]]
                trace_rows.append(trace_row(root, members))
            self._upsert_traces(conn, trace_rows)
            close_open(conn, root_ids)
        late = {tid for tid in batch if tid not in root_ids and tid in self._done}
        if late:
            self._fix_late(conn, late)
        if time.monotonic() - self._swept >= self.SWEEP_EVERY_S:
            self._sweep(conn)

        def committed() -> None:
            for tid, members in batch.items():
                if tid in root_ids:
                    self._open.pop(tid, None)
                    self._done[tid] = None
                elif tid not in self._done:
                    self._open.setdefault(tid, []).extend(members)
            while len(self._open) > self.MAX_OPEN_TRACES:
                self._open.pop(next(iter(self._open)))
                self._overflowed = True
            while len(self._done) > self.MAX_DONE_TRACES:
                self._done.pop(next(iter(self._done)))

        return committed

    def _redact(self, rec: Span) -> Span | None:
        custom = tracer.redactor
        if custom is not None and custom is not self.redactor and not isinstance(custom, Redactor):
            redacted = tracer.redact(rec)
            if redacted is None:
                return None
            rec = redacted
        try:
            return self.redactor(rec)
        except Exception:
            log.exception("span redaction failed; span dropped rather than stored unredacted")
            return None

    def _upsert_traces(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        sql = _sql(conn, "traces")
        for i in range(0, len(rows), _CHUNK):
            conn.exec_driver_sql(sql, [tuple(r[c] for c in _TRACE_COLS) for r in rows[i:i + _CHUNK]])
            _yield_gil()

    def _sweep(self, conn: Connection) -> None:
        self._swept = time.monotonic()
        sweep_stale_marks(conn)

    def _fix_late(self, conn: Connection, trace_ids: set[str]) -> None:
        """Spans that ended (or were rewritten) after their root: recompute those trace rows from the database."""
        members = trace_members(conn, trace_ids)
        roots = conn.execute(select(spans_t).where(spans_t.c.trace_id.in_(list(trace_ids)),
                                                   spans_t.c.parent_id.is_(None))).mappings()
        rows = [trace_row(dict(r), members[r["trace_id"]]) for r in roots if r["trace_id"] in members]
        if rows:
            self._upsert_traces(conn, rows)


_last_yield = 0.0
YIELD_EVERY_S = 0.0005


def _yield_gil() -> None:
    """Let traced request threads run: converting a batch would otherwise hold the GIL for up to the
    interpreter's switch interval (5 ms), which shows in callers' tail latency. Yields every ~0.5 ms of work."""
    global _last_yield
    now = time.perf_counter()
    if now - _last_yield >= YIELD_EVERY_S:
        time.sleep(0.00005)  # a real (tiny) sleep: with sleep(0) this thread often re-takes the GIL at once
        _last_yield = time.perf_counter()


# Rows go through the DBAPI directly (JSON pre-serialised): SQLAlchemy's per-row parameter processing
# cost more than everything else the writer does per span.
_SPAN_COLS = tuple(c.name for c in spans_t.columns)
_TRACE_COLS = tuple(c.name for c in traces_t.columns)
_JSON_COLS = frozenset({"inputs", "outputs", "attributes"})
_CHUNK = 25  # rows per executemany, with a GIL yield between chunks
_SQL: dict[tuple[str, str], str] = {}


def _sql(conn: Connection, table: str) -> str:
    style = conn.dialect.paramstyle
    key = (table, style)
    if key not in _SQL:
        mark = "?" if style == "qmark" else "%s"
        cols = _SPAN_COLS if table == "spans" else _TRACE_COLS
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        # Upserts (same syntax on SQLite 3.24+ and PostgreSQL). A span can come twice: OTLP delivery is
        # at-least-once (exporters retry), and /v1/logs rewrites a stored span with its content. A plain INSERT
        # would fail the whole batch, losing every other span in it.
        key_col = "trace_id" if table == "traces" else "span_id"
        sql += f" ON CONFLICT ({key_col}) DO UPDATE SET " + ", ".join(
            f"{c} = excluded.{c}" for c in cols if c != key_col)
        _SQL[key] = sql
    return _SQL[key]


def _insert_spans(conn: Connection, rows: list[dict[str, Any]]) -> None:
    sql = _sql(conn, "spans")
    dumps = json.dumps
    for i in range(0, len(rows), _CHUNK):
        params = []
        for r in rows[i:i + _CHUNK]:
            params.append(tuple(
                (None if r[c] is None else dumps(r[c], ensure_ascii=False)) if c in _JSON_COLS else r[c]
                for c in _SPAN_COLS))
        conn.exec_driver_sql(sql, params)
        _yield_gil()


_SUMMARY_KEYS = ("span_id", "parent_id", "start_ns", "error", "tenant", "app", "model", "prompt_version",
                 *_METRICS)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in _SUMMARY_KEYS}
    # A received (OTLP) trace's root is often the sender's own request span, without content: the trace's
    # question and answer then come from its spans (see trace_row). flywheel's roots record theirs, except the
    # server's root of an `app:NAME` request, whose question is the app span's (masked by its input guards), so
    # the previews are only worked out for received spans and app spans.
    if (row.get("attributes") or {}).get("flywheel.source") == "otlp" and row.get("kind") not in ("guard", "cache"):
        out["in_preview"] = preview(row.get("inputs"))
        out["out_preview"] = answer_preview(row.get("outputs")) if row.get("kind") == "llm" else None
    elif row.get("kind") == "app":
        out["in_preview"] = preview(row.get("inputs"))
    return out


def trace_members(conn: Connection, trace_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    cols = [spans_t.c.trace_id, spans_t.c.span_id, spans_t.c.parent_id, spans_t.c.start_ns, spans_t.c.error,
            spans_t.c.tenant, spans_t.c.app, spans_t.c.model, spans_t.c.prompt_version, spans_t.c.kind,
            spans_t.c.inputs, spans_t.c.outputs, spans_t.c.attributes, *(spans_t.c[m] for m in _METRICS)]
    out: dict[str, list[dict[str, Any]]] = {}
    ids = list(trace_ids)
    for i in range(0, len(ids), 500):
        for r in conn.execute(select(*cols).where(spans_t.c.trace_id.in_(ids[i:i + 500]))).mappings():
            out.setdefault(r["trace_id"], []).append(_summary(dict(r)))
    return out


def aggregate(members: list[dict[str, Any]]) -> dict[str, Any]:
    """Trace totals: span/error counts, and per metric the sum over spans none of whose descendants report it."""
    parent = {m["span_id"]: m["parent_id"] for m in members}
    totals: dict[str, Any] = {"span_count": len(members),
                              "error_count": sum(1 for m in members if m.get("error"))}
    for metric in _METRICS:
        reporting = {m["span_id"] for m in members if m.get(metric) is not None}
        covered: set[str] = set()
        for sid in reporting:
            seen = 0
            p = parent.get(sid)
            while p is not None and p not in covered and seen < 10_000:
                covered.add(p)
                p = parent.get(p)
                seen += 1
        total = sum(m[metric] for m in members if m["span_id"] in reporting and m["span_id"] not in covered)
        totals[metric] = float(total) if metric == "cost_usd" else min(int(total), 2**63 - 1)
    return totals


# ------------------------------------------------------------------------------------------ rows


def span_row(rec: Span) -> dict[str, Any]:
    attrs = rec.attributes or {}
    row = {
        "span_id": rec.span_id, "trace_id": rec.trace_id, "parent_id": rec.parent_id,
        "name": rec.name, "kind": rec.kind or "other", "start_ns": rec.start_ns, "end_ns": rec.end_ns,
        "latency_ms": rec.latency_ms, "inputs": rec.inputs,
        "outputs": rec.outputs if rec.output_state != "missing" else None,
        "output_state": rec.output_state, "error": rec.error, "attributes": attrs,
        "model": _str(attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
                      or attrs.get("flywheel.answer.model")),  # an app span: the model that answered
        "provider": _str(attrs.get("gen_ai.provider.name")),
        "input_tokens": _int(attrs.get("gen_ai.usage.input_tokens")),
        "output_tokens": _int(attrs.get("gen_ai.usage.output_tokens")),
        "cost_usd": _float(attrs.get("flywheel.cost_usd")),
        "prompt_version": _str(attrs.get("flywheel.prompt.version")),
        "tenant": _str(attrs.get("flywheel.tenant")), "app": _str(attrs.get("flywheel.app")),
    }
    for key, n in _LENGTHS.items():
        if isinstance(row[key], str) and len(row[key]) > n:
            row[key] = row[key][:n]
    return row


def trace_row(root: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    members = list({m["span_id"]: m for m in members}.values())  # a span sent twice counts once (the last)
    if not any(m["span_id"] == root["span_id"] for m in members):
        members = [*members, root]
    ordered = sorted(members, key=lambda m: m["start_ns"] or 0)
    question, answer = preview(root["inputs"]), answer_preview(root["outputs"])
    output_state = root["output_state"]
    if question is None:
        question = next((m["in_preview"] for m in ordered if m.get("in_preview")), None)
    if answer is None and root["output_state"] == "missing":
        answer = next((m["out_preview"] for m in reversed(ordered) if m.get("out_preview")), None)
        output_state = "ok" if answer is not None else output_state

    def first(key: str) -> Any:
        if root.get(key):
            return root[key]
        return next((m[key] for m in ordered if m.get(key)), None)

    return {
        "trace_id": root["trace_id"], "name": root["name"], "kind": root["kind"],
        "started_at": root["start_ns"] / 1e9,
        "ended_at": root["end_ns"] / 1e9 if root["end_ns"] is not None else None,
        "latency_ms": root["latency_ms"], "status": "error" if root["error"] else "ok", "error": root["error"],
        "input_preview": question, "output_preview": answer, "search_text": search_text(question, answer),
        "output_state": output_state, "tenant": first("tenant"), "app": first("app"),
        "model": first("model"), "prompt_version": first("prompt_version"), **aggregate(members),
        **conversation(root.get("attributes") or {}),
    }


_SESSION_KEYS = ("flywheel.session_id", "session.id", "gen_ai.conversation.id")
_USER_KEYS = ("flywheel.user_id", "user.id", "enduser.id")


def conversation(attrs: dict[str, Any]) -> dict[str, str | None]:
    """The trace's session and user ids from its root span's attributes (flywheel's, OpenInference's or the
    OTel semantic conventions' names)."""
    def pick(keys: tuple[str, ...]) -> str | None:
        value = next((_str(attrs.get(k)) for k in keys if attrs.get(k) not in (None, "")), None)
        return value[:200] if value else None

    return {"session_id": pick(_SESSION_KEYS), "user_id": pick(_USER_KEYS)}


_PREVIEW_KEYS = ("question", "query", "input", "prompt", "text", "message", "answer", "output", "content",
                 "result")


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str | None:
    """A one-line human preview of span inputs/outputs (already JSON-native)."""
    text = _preview_text(value)
    if text is None:
        return None
    text = " ".join(text[: limit * 4].split())  # cut first: previews of huge inputs stay cheap
    return text if len(text) <= limit else text[: limit - 1] + "…"


def answer_preview(outputs: Any, limit: int = PREVIEW_CHARS) -> str | None:
    """The preview of a model span's answer: the last message's text when the output is a list of messages; with
    n > 1 choices (`choice_outputs`), the first choice's answer after a `[N choices] ` mark (as `flywheel traces
    show` heads them: `out: N choices`)."""
    if isinstance(outputs, dict) and isinstance(outputs.get("choices"), list) and len(outputs["choices"]) > 1:
        mark = f"[{len(outputs['choices'])} choices] "
        return mark + (answer_preview(outputs["choices"][0], limit - len(mark)) or "")
    if isinstance(outputs, list) and outputs and isinstance(outputs[-1], dict) and "role" in outputs[-1]:
        text = outputs[-1].get("content")
        if isinstance(text, str):
            return preview(text, limit)
    answer, thinking = with_reasoning(outputs)  # a reasoning model's attempt span: its answer, never its thinking
    if thinking is not None and (answer is None or isinstance(answer, str)):
        return preview(answer or "", limit)  # all thinking (cut by max_tokens): an empty answer
    return preview(answer, limit)


def with_reasoning(value: Any) -> tuple[Any, str | None]:
    """A model span's output split into (what it answered, its reasoning): an attempt span of a reasoning model
    records `{"content": answer, "reasoning": thinking}` (plus `tool_calls` when it called tools); the dashboard's
    span body and `flywheel traces show` show the answer as the answer and the thinking apart, and previews never
    show the thinking. The answer is the text (None when the model only thought), or the rest of the output when
    it holds more than the text (tool calls). Anything else: (value, None)."""
    if not isinstance(value, dict) or not isinstance(value.get("reasoning"), str) or not value["reasoning"]:
        return value, None
    rest = {k: v for k, v in value.items() if k != "reasoning"}
    if set(rest) == {"content"} or (set(rest) <= {"content", "tool_calls"} and not rest.get("tool_calls")):
        return rest.get("content"), value["reasoning"]
    return rest, value["reasoning"]


def choice_outputs(value: Any) -> list[tuple[Any, str | None]] | None:
    """An n > 1 model span's choices, each read by `with_reasoning` as (its answer, its reasoning): the `llm` spans
    record `{"content", "choices": [...]}` (gateway/choices.py span_output), the attempt span with each choice's
    reasoning in it. None when the output holds no choices."""
    if not isinstance(value, dict) or not isinstance(value.get("choices"), list) or not value["choices"]:
        return None
    return [with_reasoning(c) for c in value["choices"]]


def _preview_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        msgs = value.get("messages")
        if isinstance(msgs, list):
            last = _last_user(msgs)
            if last is not None:
                return last
        for key in _PREVIEW_KEYS:
            if isinstance(value.get(key), str):
                return value[key]
    if isinstance(value, list):
        last = _last_user(value)
        if last is not None:
            return last
        if len(value) == 1 and isinstance(value[0], str):
            return value[0]
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))[: PREVIEW_CHARS * 4]


def _last_user(items: list) -> str | None:
    for m in reversed(items):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return None


def _str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _int(v: Any) -> int | None:
    """A token count for its column: not a count (negative, or past the store's 64-bit integers) is none."""
    try:
        n = None if v is None or isinstance(v, bool) else int(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n is not None and 0 <= n < 2**63 else None


def _float(v: Any) -> float | None:
    try:
        f = None if v is None or isinstance(v, bool) else float(v)
    except (TypeError, ValueError):
        return None
    return f if f is not None and math.isfinite(f) else None
