"""OTLP/JSON trace files as flywheel traces (`flywheel traces import --format otlp`).

Each line (or the file as one JSON document) is an OTLP `ExportTraceServiceRequest` in OTLP's JSON mapping,
`{"resourceSpans": [...]}`, as the OpenTelemetry Collector's `file` exporter writes one per line; Grafana Tempo's
`{"batches": [...]}` (its trace API and "download trace" JSON) reads the same. The spans are read exactly as
flywheel's OTLP receiver reads them (`flywheel.tracing.otlp_decode`: OpenLLMetry's `gen_ai.prompt.N.*` and the current
`gen_ai.input.messages`, OpenInference, OpenLIT, Langfuse, Logfire, MLflow …, token counts under any of their
names, a model span without a cost priced from flywheel.yaml's `models:`), keep their own trace and span ids,
and a trace whose spans are spread over several lines (export batches) is one trace.

Lines of OTLP logs (`{"resourceLogs": [...]}`) carry the prompts and answers of instrumentations that send
content as log records (`opentelemetry-instrumentation-openai-v2`): they complete their spans, in the same file
(either order) or in a file imported after the spans' one. Every line is checked before anything is written (a bad one is FILE:LINE and the JSON path of the bad field);
the spans then go in one transaction. A span already in the store (an earlier import, or the receiver got it
live) is left as it is, so importing a file twice adds nothing; a trace gaining spans gets its totals redone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, select

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.tracing import import_langsmith, import_phoenix
from flywheel.tracing.import_fields import Bad
from flywheel.tracing.otlp_decode import (
    OtlpError,
    camel,
    log_events,
    priced,
    stored_span,
    to_spans,
    with_events,
)
from flywheel.tracing.redact import Redactor
from flywheel.tracing.store_sink import close_open, mark_open, span_row, trace_members, trace_row
from flywheel.types import Span

TENANT = "default"  # what the receiver stamps on spans sent to an open server
_BATCH = 500
Values = Callable[[Path], Iterator[tuple[int, Any]]]
Progress = Callable[[str, int, int], None]


def import_otlp(
    store: Store,
    p: Path,
    values: Values,
    redactor: Redactor,
    models: dict[str, Any] | None,
    progress: Progress | None,
) -> tuple[int, int, int]:
    """(lines, traces imported, traces already in the store) of an OTLP/JSON file, all or nothing."""
    lines = 0
    events: dict[tuple[str, str], list[Any]] = {}  # the content log records, by (trace id, span id)
    for n, obj in values(p):  # check every line first
        logs = _logs(obj, p, n)
        if logs is None:
            _spans(obj, p, n, models)
        for key, evs in logs.items() if logs else ():
            events.setdefault(key, []).extend(evs)
        lines += 1
        if progress is not None and lines % 100 == 0:
            progress("read", lines, 0)
    new: dict[str, bool] = {}  # trace id → whether this import added (or completed) a span of it
    seen: set[str] = set()
    with store.begin() as conn:
        for k, (n, obj) in enumerate(values(p)):
            if k >= lines:  # (lines appended since the check: not checked, not written)
                break
            if _logs(obj, p, n) is not None:
                continue
            spans = [s for s in _spans(obj, p, n, models) if s.span_id not in seen]
            seen.update(s.span_id for s in spans)
            stored = _stored(conn, [s.span_id for s in spans])  # (their content, if any, comes below)
            fresh = [
                with_events(s, events.pop((s.trace_id, s.span_id), []))
                for s in spans
                if s.span_id not in stored
            ]
            rows = [span_row(redactor(s)) for s in fresh]
            if rows:
                conn.execute(spans_t.insert(), rows)
            for s in spans:
                new[s.trace_id] = new.get(s.trace_id, False) or s.span_id not in stored
            if progress is not None and (k + 1) % 100 == 0:
                progress("write", k + 1, lines)
        for tid in _complete_stored(conn, events, redactor):  # content for spans stored before
            new[tid] = True
        added = [tid for tid, is_new in new.items() if is_new]
        for i in range(0, len(added), _BATCH):
            _trace_rows(conn, added[i : i + _BATCH])
    return lines, len(added), len(new) - len(added)


def _stored(conn: Connection, span_ids: list[str]) -> set[str]:
    out: set[str] = set()
    for i in range(0, len(span_ids), _BATCH):
        chunk = span_ids[i : i + _BATCH]
        out.update(conn.execute(select(spans_t.c.span_id).where(spans_t.c.span_id.in_(chunk))).scalars())
    return out


def _complete_stored(
    conn: Connection, events: dict[tuple[str, str], list[Any]], redactor: Redactor
) -> set[str]:
    """Content log records whose spans are not in this file but in the store (their traces' file was imported
    first): those spans get the content they lack, as the receiver does; the ids of their traces."""
    done: set[str] = set()
    keys = list(events)
    for i in range(0, len(keys), _BATCH):
        chunk = keys[i : i + _BATCH]
        rows = conn.execute(select(spans_t).where(spans_t.c.span_id.in_([s for _, s in chunk]))).mappings()
        for row in [dict(r) for r in rows]:
            evs = events.get((row["trace_id"], row["span_id"]))
            if evs is None or row["tenant"] != TENANT:
                continue  # (another tenant's span: its content is not this import's to write)
            span = stored_span(row)
            updated = with_events(span, evs)
            if updated is not span:
                conn.execute(delete(spans_t).where(spans_t.c.span_id == row["span_id"]))
                conn.execute(spans_t.insert(), [span_row(redactor(updated))])
                done.add(row["trace_id"])
    return done


def _logs(obj: Any, p: Path, n: int) -> dict[tuple[str, str], list[Any]] | None:
    """The GenAI content events of a logs line (`{"resourceLogs": [...]}`, as instrumentations that send prompts
    as log records export them), by (trace id, span id); None for any other line."""
    if not isinstance(obj, dict) or not any(k in obj for k in ("resourceLogs", "resource_logs")):
        return None
    try:
        return dict(log_events(camel(obj)))
    except OtlpError as exc:
        raise UserError(
            _named(exc.message, exc.param), where=f"{p}:{n}", hint="OTLP/JSON logs: hex trace and span ids"
        ) from None


def _spans(obj: Any, p: Path, n: int, models: dict[str, Any] | None) -> list[Span]:
    try:
        data = _request(obj)
    except Bad as bad:
        raise UserError(
            f"`{bad.field_name}`: {bad.message}", where=f"{p}:{n}", hint="a Phoenix span or a LangSmith run"
        ) from None
    if data is None:
        raise UserError(
            "not an OTLP trace export: a JSON object with `resourceSpans` is expected",
            where=f"{p}:{n}",
            hint="one ExportTraceServiceRequest (OTLP/JSON) per line, as the Collector's file "
            "exporter writes, Phoenix spans or LangSmith runs; or use --format flywheel|openai-log|langfuse",
        )
    try:
        spans = to_spans(data, TENANT)
    except OtlpError as exc:
        raise UserError(
            _named(exc.message, exc.param),
            where=f"{p}:{n}",
            hint="OTLP/JSON: hex trace and span ids, times in Unix nanoseconds",
        ) from None
    return [priced(s, models) for s in spans] if models else spans


def _named(message: str, param: str | None) -> str:
    """The decoder's message with the JSON path of the bad field quoted (named first when it does not say it)."""
    if not param:
        return message
    return message.replace(param, f"`{param}`", 1) if param in message else f"`{param}`: {message}"


def _request(obj: Any) -> dict[str, Any] | None:
    """An ExportTraceServiceRequest in OTLP's lowerCamelCase JSON: from one written with the proto field names
    (`resource_spans`, `start_time_unix_nano`, `string_value`: Phoenix's OTLP download), Tempo's `batches`, a
    page of bare spans (`{"data": [span, …]}`, Phoenix's `/v1/projects/{id}/spans/otlpv1`) or Phoenix's own
    span JSON (import_phoenix); else None."""
    if not isinstance(obj, dict):
        return None
    phoenix = import_phoenix.to_request(obj)  # (Phoenix's own span JSON, its snake_case keys as they are)
    if phoenix is not None:
        return phoenix
    runs = import_langsmith.to_request(obj)  # (LangSmith's runs)
    if runs is not None:
        return runs
    obj = camel(obj)
    if isinstance(obj.get("resourceSpans"), list):
        return obj
    if isinstance(obj.get("batches"), list):
        return {"resourceSpans": obj["batches"]}
    page = obj.get("data")
    if isinstance(page, list) and all(isinstance(s, dict) and "spanId" in s for s in page):
        return {"resourceSpans": [{"scopeSpans": [{"spans": page}]}]}
    return None


def _trace_rows(conn: Connection, trace_ids: list[str]) -> None:
    """The trace rows of `trace_ids` from all their spans in the store (a trace without its root span yet has
    none: it shows as incomplete, as when the receiver gets it)."""
    members = trace_members(conn, trace_ids)
    roots = conn.execute(
        select(spans_t).where(spans_t.c.trace_id.in_(trace_ids), spans_t.c.parent_id.is_(None))
    ).mappings()
    rows = list({r["trace_id"]: trace_row(dict(r), members[r["trace_id"]]) for r in roots}.values())
    if rows:
        conn.execute(delete(traces_t).where(traces_t.c.trace_id.in_([r["trace_id"] for r in rows])))
        conn.execute(traces_t.insert(), rows)
        close_open(conn, [r["trace_id"] for r in rows])
    ended = {r["trace_id"] for r in rows}
    opened = [(tid, min(m["start_ns"] for m in spans) / 1e9) for tid, spans in members.items() if tid not in ended]
    if opened:
        mark_open(conn, opened)
