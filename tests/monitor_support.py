"""Synthetic production traffic for the monitor tests: records in the `flywheel` import format, written with
`flywheel.tracing.importer` (original timestamps), plus extra spans (guards, cache lookups) on chosen traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flywheel.store import Store
from flywheel.tracing.importer import import_file
from flywheel.tracing.store_sink import span_row
from flywheel.tracing.tracer import make_span

DAY = 86400.0
T0 = 1_790_035_200.0  # 2026-09-22 00:00 UTC, a day boundary


def record(ts: float, *, app: str = "support", question: str = "How do I reset my password?",
           answer: str = "Open Settings, then Security, then Reset.", latency_ms: float = 100.0,
           error: str | None = None, cost: float | None = None, model: str = "gpt", **extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"timestamp": ts, "app": app, "model": model, "input": question, "output": answer,
                           "latency_ms": latency_ms, **extra}
    if error:
        rec["error"] = error
    if cost is not None:
        rec["cost_usd"] = cost
    return rec


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    return path


def load(store: Store, tmp: Path, records: list[dict[str, Any]], name: str = "traffic.jsonl") -> None:
    import_file(store, write_jsonl(tmp / name, records), "flywheel")


def add_span(store: Store, trace_id: str, name: str, kind: str, start_ns: int, attributes: dict[str, Any],
             n: int = 0) -> None:
    """An extra child span (a guard, a cache lookup) under the trace's root."""
    from sqlalchemy import select

    spans = store.table("spans")
    with store.begin() as conn:
        root = conn.execute(select(spans.c.span_id).where(spans.c.trace_id == trace_id,
                                                          spans.c.parent_id.is_(None))).scalar()
        rec = make_span(span_id=f"{abs(hash((trace_id, name, n))) % 16 ** 16:016x}", trace_id=trace_id,
                        parent_id=root, name=name, kind=kind, start_ns=start_ns, end_ns=start_ns + 1000,
                        inputs=None, outputs=None, output_state="missing", error=None, attributes=attributes)
        conn.execute(spans.insert(), [span_row(rec)])


def trace_ids(store: Store) -> list[tuple[str, float, str | None]]:
    from sqlalchemy import select

    traces = store.table("traces")
    with store.connect() as conn:
        return [tuple(r) for r in conn.execute(select(traces.c.trace_id, traces.c.started_at, traces.c.input_preview)
                                               .order_by(traces.c.started_at, traces.c.trace_id)).all()]
