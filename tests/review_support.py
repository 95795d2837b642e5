"""Traces for the review tests, written straight into the store's `traces` and `spans` tables (the shape the
tracing sink writes: an app root span, a retrieval span, a gateway span with its attempt, optional guard span)."""

from __future__ import annotations

import secrets
import time
from typing import Any

DAY = 86_400.0


def add_traces(store, specs: list[dict[str, Any]]) -> list[str]:
    """Insert one trace per spec: keys input, output, app, tenant, started_at, model, prompt_version,
    guard_action, sources ([(chunk_id, source, score)]), system. Returns the trace ids, in order."""
    traces, spans = store.table("traces"), store.table("spans")
    trace_rows, span_rows, ids = [], [], []
    now = time.time()
    for i, spec in enumerate(specs):
        tid = spec.get("trace_id") or secrets.token_hex(16)
        ids.append(tid)
        start = spec.get("started_at", now - 60 + i * 0.001)
        question, answer = spec.get("input", f"question {i}"), spec.get("output", f"answer {i}")
        app, tenant, model = spec.get("app", "docs_qa"), spec.get("tenant", "default"), spec.get("model", "small")
        trace_rows.append({"trace_id": tid, "name": app, "kind": "app", "started_at": start, "ended_at": start + 0.1,
                           "latency_ms": 100.0, "status": "ok", "input_preview": question[:200],
                           "output_preview": answer[:200], "output_state": "ok", "tenant": tenant, "app": app,
                           "model": model, "prompt_version": spec.get("prompt_version", "v1"), "span_count": 4,
                           "error_count": 0, "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.0})
        ns = int(start * 1e9)
        root = secrets.token_hex(8)
        messages = [{"role": "system", "content": spec.get("system", "Answer from the sources.")},
                    {"role": "user", "content": f"Sources: [1] …\n\nQuestion: {question}"}]
        common = {"end_ns": ns + 1000, "latency_ms": 1.0, "output_state": "ok", "error": None, "model": None,
                  "provider": None, "input_tokens": None, "output_tokens": None, "cost_usd": None,
                  "prompt_version": None, "tenant": tenant, "app": app}
        span_rows.append({**common, "span_id": root, "trace_id": tid, "parent_id": None, "name": app, "kind": "app",
                          "start_ns": ns, "inputs": {"question": question},
                          "outputs": {"text": answer, "citations": [1]}, "attributes": {"flywheel.app": app}})
        sources = spec.get("sources", [("c1", "docs/a.md", 0.9)])
        span_rows.append({**common, "span_id": secrets.token_hex(8), "trace_id": tid, "parent_id": root,
                          "name": "retrieval.search", "kind": "retrieval", "start_ns": ns + 1, "inputs": {"query": question},
                          "outputs": [{"chunk_id": c, "source": s, "score": sc} for c, s, sc in sources],
                          "attributes": {}})
        if spec.get("guard_action"):
            guard = secrets.token_hex(8)
            span_rows.append({**common, "span_id": guard, "trace_id": tid, "parent_id": root, "name": "guard.judge",
                              "kind": "guard", "start_ns": ns + 2, "inputs": {"stage": "output"},
                              "outputs": {"passed": False}, "attributes": {
                                  "flywheel.guard.check": "judge", "flywheel.guard.action": spec["guard_action"]}})
            # an LLM judge's call inside the guard: never the "final prompt" of the answer
            span_rows.append({**common, "span_id": secrets.token_hex(8), "trace_id": tid, "parent_id": guard,
                              "name": "gateway.chat", "kind": "llm", "start_ns": ns + 5,
                              "inputs": {"messages": [{"role": "user", "content": "JUDGE PROMPT"}]},
                              "outputs": "PASS", "attributes": {}})
        top = secrets.token_hex(8)
        span_rows.append({**common, "span_id": top, "trace_id": tid, "parent_id": root, "name": "gateway.chat",
                          "kind": "llm", "start_ns": ns + 3, "inputs": {"messages": messages}, "outputs": answer,
                          "attributes": {}})
        span_rows.append({**common, "span_id": secrets.token_hex(8), "trace_id": tid, "parent_id": top,
                          "name": f"chat {model}", "kind": "llm", "start_ns": ns + 4,
                          "inputs": {"messages": messages, "params": {"model": model}}, "outputs": answer,
                          "attributes": {}})
    with store.begin() as conn:
        conn.execute(traces.insert(), trace_rows)
        conn.execute(spans.insert(), span_rows)
    return ids
