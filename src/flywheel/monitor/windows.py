"""Metrics per time window and group, over stored traces (flywheel.yaml `monitor:`; `flywheel monitor`).

    stats = compute(store, window="1d", since=time.time() - 7 * 86400, group_by=("app",))
    for w in stats: print(w.start, w.group, w.metrics["error_rate"])

Windows are aligned to multiples of their length since the Unix epoch (a "1d" window is a UTC day). Counts and
sums over the `traces` table (volume, errors, cost, tokens, empty outputs) are SQL aggregates per window bucket;
the metrics that read text (refusals via `flywheel.apps.refusal.declined`, output length, JSON validity, the
answer's language against the question's via `flywheel.text.language`), latency percentiles, guard triggers,
cache hits and feedback are computed in Python over the spans and feedback rows of the window's traces. Both
halves give the same numbers on SQLite and PostgreSQL (floats are rounded to 9 decimals).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Float, Integer, case, cast, func, select

from flywheel.apps.refusal import declined
from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema_feedback import feedback as feedback_t
from flywheel.store.schema_feedback import is_current
from flywheel.text.language import detect_language
from flywheel.tracing.query import product_traffic

GROUP_FIELDS = ("app", "model", "prompt_version", "tenant")
WORKER_TRACE = "monitor.online"  # traces of the online evaluators' own judge calls: never monitored or scored

# metric name → what it measures (the names `monitor.alerts[].metric` may use)
METRICS: dict[str, str] = {
    "volume": "traces in the window",
    "error_rate": "share of traces that ended in an error",
    "latency_p50_ms": "median trace latency (ms)",
    "latency_p95_ms": "95th percentile trace latency (ms)",
    "cost_usd": "total cost of the window's traces (USD)",
    "cost_per_trace_usd": "mean cost per trace (USD)",
    "tokens": "input + output tokens",
    "empty_output_rate": "share of traces that did not fail but answered nothing",
    "refusal_rate": "share of non-empty answers that decline (\"I don't know\", model refusals; zh + en)",
    "output_chars_mean": "mean answer length in characters",
    "json_requested": "traces whose model call asked for JSON (response_format)",
    "json_valid_rate": "share of those whose answer parses as JSON",
    "language_mismatch_rate": "share of answers in another language than their question",
    "guard_trigger_rate": "share of traces where a guard did not pass",
    "pii_hits": "traces where a PII guard fired",
    "cache_hit_rate": "share of cache lookups that hit",
    "negative_feedback_rate": ("share of traces with negative user feedback (thumbs down, score < 0.5; a changed "
                               "vote counts as the last one)"),
    "online_pass_rate": "share of online check / judge results that passed",
}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str, what: str = "window") -> float:
    """`30m`, `1h`, `1d`, `7d`, `2w` → seconds; anything else is a UserError."""
    m = _DURATION.match(str(text))
    if not m or float(m.group(1)) <= 0:
        raise UserError(f"cannot read {what} {text!r}", hint="write a number and a unit: 30m, 1h, 1d, 7d, 2w")
    return float(m.group(1)) * _SECONDS[m.group(2)]


def check_period(since: float, until: float) -> None:
    """A period that ends before it starts is the user's mistake, not an empty report."""
    if since >= until:
        raise UserError("--since is not before --until", hint="give a --since earlier than --until")


def parse_time(text: str | float | None, *, now: float | None = None, what: str = "--since") -> float | None:
    """A point in time: Unix seconds, an ISO date/time (UTC unless it says otherwise), or a duration ago (`7d`):
    tracing's one reader of times, with an unreadable one (also `nan`, `inf`, a duration too long to count) a
    UserError naming `what`."""
    from flywheel.tracing.search import parse_time as read_time

    try:
        return read_time(text, now)
    except ValueError:
        raise UserError(f"cannot read {what} {text!r}",
                        hint="write a duration ago (7d, 12h), a date (2026-10-01) or a time (2026-10-01T08:00)") from None


@dataclass
class WindowStats:
    """One window of one group: its metrics (None where nothing was measured) and the breakdowns behind them."""

    start: float
    end: float
    group: dict[str, str | None]
    metrics: dict[str, float | None]
    details: dict[str, Any] = field(default_factory=dict)  # languages, guard triggers by check, …

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "group": self.group, "metrics": self.metrics,
                "details": self.details}


def compute(store: Store, *, window: str | float = "1d", since: float | None = None, until: float | None = None,
            group_by: Sequence[str] = ("app",), where: dict[str, str] | None = None) -> list[WindowStats]:
    """Metrics of every (window, group) holding at least one trace in [since, until), oldest window first.
    `since` defaults to 7 windows before `until` (default: now); `where` keeps only traces whose group fields
    equal the given values."""
    width = parse_duration(window) if isinstance(window, str) else float(window)
    for name in (*group_by, *(where or {})):
        if name not in GROUP_FIELDS:
            raise UserError(f"cannot group or filter monitors by {name!r}",
                            hint=f"use one of: {', '.join(GROUP_FIELDS)}")
    until = time.time() if until is None else until
    since = until - 7 * width if since is None else since
    groups = tuple(dict.fromkeys(group_by))
    cond = [traces_t.c.started_at >= since, traces_t.c.started_at < until, product_traffic(traces_t)]
    cond += [traces_t.c[k] == v for k, v in (where or {}).items()]
    with store.connect() as conn:
        bucket = _bucket(conn.dialect.name, width)
        keys = [bucket.label("bucket"), *(traces_t.c[g] for g in groups)]
        agg = select(*keys, func.count().label("n"),
                     func.sum(case((traces_t.c.status == "error", 1), else_=0)).label("errors"),
                     func.sum(traces_t.c.cost_usd).label("cost"),
                     func.sum(traces_t.c.input_tokens + traces_t.c.output_tokens).label("tokens"),
                     ).where(*cond).group_by(*keys)
        sums = {(r["bucket"], *(r[g] for g in groups)): r for r in conn.execute(agg).mappings()}
        rows = conn.execute(select(bucket.label("bucket"), traces_t.c.trace_id, traces_t.c.latency_ms, traces_t.c.status,
                                   traces_t.c.input_preview, traces_t.c.output_preview,
                                   *(traces_t.c[g] for g in groups)).where(*cond)).mappings().all()
        members: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            members[(r["bucket"], *(r[g] for g in groups))].append(dict(r))
        details = trace_details(conn, [r["trace_id"] for r in rows])
    out = []
    for key in sorted(sums, key=lambda k: (k[0], *(str(v) for v in k[1:]))):
        s = sums[key]
        start = float(key[0]) * width
        out.append(_window(start, start + width, dict(zip(groups, key[1:], strict=True)), s, members[key],
                           details))
    return out


def _bucket(dialect: str, width: float) -> Any:
    # started_at >= 0, so truncation is floor; PostgreSQL's CAST(float AS int) rounds, hence floor() there
    scaled = traces_t.c.started_at / width
    if dialect == "postgresql":
        return cast(func.floor(scaled), Integer)
    return cast(cast(scaled, Float), Integer)


def _window(start: float, end: float, group: dict[str, Any], sums: Any, traces: list[dict[str, Any]],
            details: dict[str, dict[str, Any]]) -> WindowStats:
    n = int(sums["n"])
    latencies = sorted(t["latency_ms"] for t in traces if t["latency_ms"] is not None)
    infos = [details.get(t["trace_id"]) or _bare(t) for t in traces]
    answered = [i for i in infos if i["output"].strip()]
    refusals = sum(1 for i in answered if declined(i["output"]))
    asked_json = [i for i in infos if i["json"]]
    langs: Counter[str] = Counter()
    pairs = 0
    mismatched = 0
    for i in answered:
        q, a = _language(i["input"]) if i["input"] else "", _language(i["output"])
        langs[a or "?"] += 1
        if q and a:
            pairs += 1
            mismatched += q != a
    guards: Counter[str] = Counter()
    for i in infos:
        guards.update(i["guards"])
    lookups = sum(i["cache_lookups"] for i in infos)
    hits = sum(i["cache_hits"] for i in infos)
    online = [v for i in infos for v in i["online"]]
    metrics: dict[str, float | None] = {
        "volume": n,
        "error_rate": _r(int(sums["errors"] or 0) / n),
        "latency_p50_ms": _r(_percentile(latencies, 50)),
        "latency_p95_ms": _r(_percentile(latencies, 95)),
        "cost_usd": _r(float(sums["cost"] or 0.0)),
        "cost_per_trace_usd": _r(float(sums["cost"] or 0.0) / n),
        "tokens": int(sums["tokens"] or 0),
        "empty_output_rate": _r(sum(1 for t, i in zip(traces, infos, strict=True)
                                   if t["status"] != "error" and not i["output"].strip()) / n),
        "refusal_rate": _r(refusals / len(answered)) if answered else None,
        "output_chars_mean": _r(sum(len(i["output"]) for i in answered) / len(answered)) if answered else None,
        "json_requested": len(asked_json),
        "json_valid_rate": _r(sum(1 for i in asked_json if _is_json(i["output"])) / len(asked_json))
        if asked_json else None,
        "language_mismatch_rate": _r(mismatched / pairs) if pairs else None,
        "guard_trigger_rate": _r(sum(1 for i in infos if i["guards"]) / n),
        "pii_hits": sum(1 for i in infos if any(c.startswith("pii") for c in i["guards"])),
        "cache_hit_rate": _r(hits / lookups) if lookups else None,
        "negative_feedback_rate": _r(sum(1 for i in infos if i["negative"]) / n),
        "online_pass_rate": _r(sum(online) / len(online)) if online else None,
    }
    return WindowStats(start, end, group, metrics, {
        "languages": dict(sorted(langs.items())), "guard_triggers": dict(sorted(guards.items())),
        "online_results": len(online)})


@lru_cache(maxsize=20_000)
def _language(text: str) -> str:  # answers and questions repeat (refusal messages, FAQs)
    return detect_language(text)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 9)


def _percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile of sorted values (numpy's default method)."""
    if not values:
        return None
    pos = (len(values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _is_json(text: str) -> bool:
    body = text.strip()
    if body.startswith("```"):  # a fenced block is how models commonly wrap JSON; the fence is not the answer
        body = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", body)
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _bare(trace: dict[str, Any]) -> dict[str, Any]:
    return {"input": trace.get("input_preview") or "", "output": trace.get("output_preview") or "", "json": False,
            "guards": set(), "cache_lookups": 0, "cache_hits": 0, "negative": False, "online": []}


# ---------------------------------------------------------------------------- per-trace details from spans


def trace_details(conn: Any, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per trace: the question and answer text, whether JSON was asked for, guards that fired, cache lookups
    and hits, negative user feedback and online results (1 pass / 0 fail)."""
    out: dict[str, dict[str, Any]] = {}
    spans_by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    cols = [spans_t.c.trace_id, spans_t.c.parent_id, spans_t.c.name, spans_t.c.kind, spans_t.c.start_ns,
            spans_t.c.inputs, spans_t.c.outputs, spans_t.c.attributes]
    fb: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in range(0, len(trace_ids), 500):
        chunk = trace_ids[i:i + 500]
        for r in conn.execute(select(*cols).where(spans_t.c.trace_id.in_(chunk))).mappings():
            spans_by[r["trace_id"]].append(dict(r))
        q = select(feedback_t.c.trace_id, feedback_t.c.source, feedback_t.c.name, feedback_t.c.value).where(
            feedback_t.c.trace_id.in_(chunk), is_current(feedback_t))  # a changed vote counts as the later one
        for r in conn.execute(q).mappings():
            fb[r["trace_id"]].append(dict(r))
    for tid in trace_ids:
        out[tid] = _details(sorted(spans_by.get(tid, []), key=lambda s: s["start_ns"] or 0), fb.get(tid, []))
    return out


def _details(spans: list[dict[str, Any]], feedback: list[dict[str, Any]]) -> dict[str, Any]:
    question, answer = question_and_answer(spans)
    llms = [s for s in spans if s["kind"] == "llm"]
    wants_json = any(_asks_json(s["inputs"]) for s in llms)
    guards: set[str] = set()
    lookups = hits = 0
    for s in spans:
        attrs = s["attributes"] or {}
        if s["kind"] == "guard" and "flywheel.guard.on_fail" in attrs and attrs.get("flywheel.guard.action") not in (
                None, "pass"):
            guards.add(str(attrs.get("flywheel.guard.check")))
        if s["name"] == "cache.lookup" and "flywheel.cache.hit" in attrs:
            lookups += 1
            hits += bool(attrs["flywheel.cache.hit"])
    negative = False
    online: list[int] = []
    for f in feedback:
        value = f["value"]
        if f["source"] == "user":
            if f["name"] == "thumbs" and value == 0 or f["name"] == "score" and isinstance(value, (int, float)) \
                    and value < 0.5:
                negative = True
        elif f["source"] in ("check", "judge") and isinstance(value, dict) and isinstance(value.get("passed"), bool):
            online.append(int(value["passed"]))
    return {"input": question, "output": answer, "json": wants_json, "guards": guards, "cache_lookups": lookups,
            "cache_hits": hits, "negative": negative, "online": online}


def question_and_answer(spans: list[dict[str, Any]]) -> tuple[str, str]:
    """The user's question and the answer of one trace, from its spans (oldest first): the root span's inputs,
    else the app span's (a server request's root records none, and a cache hit has no model call to fall back
    on), else the retrieval query, else the first model call's last user message; the app span's answer, else
    the root's outputs, else the last model call's."""
    root = next((s for s in spans if s["parent_id"] is None), None)
    app = next((s for s in spans if s["kind"] == "app"), None)
    llms = [s for s in spans if s["kind"] == "llm"]
    question = text_of(root["inputs"]) if root else ""
    if not question and app is not None:
        question = text_of(app["inputs"])
    if not question:
        search = next((s for s in spans if s["kind"] == "retrieval"), None)
        question = text_of(search["inputs"]) if search else ""
    if not question and llms:
        question = text_of(llms[0]["inputs"])
    for s in (app, root, llms[-1] if llms else None):
        if s is not None and s["outputs"] is not None:
            answer = text_of(s["outputs"])
            if answer:
                return question, answer
    return question, ""


def _asks_json(inputs: Any) -> bool:
    if not isinstance(inputs, dict):
        return False
    params = inputs.get("params") if isinstance(inputs.get("params"), dict) else inputs
    fmt = params.get("response_format") if isinstance(params, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


_TEXT_KEYS = ("text", "answer", "output", "content", "question", "query", "input", "prompt", "message")


def text_of(value: Any) -> str:
    """The human text in a span's stored inputs/outputs: a string, the last user message, `text` / `answer` /
    `question` …, an OpenAI completion's first choice, or a list of texts joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        msgs = value.get("messages")
        if isinstance(msgs, list):
            for m in reversed(msgs):
                if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
                    return str(m["content"])
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            msg = choices[0].get("message") or {}
            if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                return str(msg["content"])
        for key in _TEXT_KEYS:
            if isinstance(value.get(key), str):
                return str(value[key])
        return ""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "role" in v for v in value):
            # a prompt's messages: its last user turn; a model's answer as messages (spans received over OTLP
            # keep `[{"role": "assistant", "content": …}]`): the last message's text
            last = value[-1].get("content")
            return text_of({"messages": value}) or (last if isinstance(last, str) else "")
        return "\n".join(t for t in (text_of(v) for v in value) if t)
    return ""


def known_metric(name: str) -> bool:
    return name in METRICS


def metric_names() -> Iterable[str]:
    return METRICS.keys()
