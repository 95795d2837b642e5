"""Load past request/response logs as traces, with their original timestamps (`flywheel traces import`).

Formats (one JSON object per line):
- `flywheel`: `{timestamp, app, model, input, output, tenant?, session_id?, user_id?, metadata?, latency_ms?,
  usage?: {input_tokens, output_tokens}, cost_usd?, error?}`; `input` is a text or a list of chat messages.
- `openai-log`: `{request: {model, messages, response_format?, …}, response: {choices, usage, created, model},
  timestamp?, app?, tenant?, latency_ms?, metadata?}` (an OpenAI chat completion request and its response).
- `langfuse`: a Langfuse trace export line: `{id, timestamp, name, input, output, sessionId?, userId?,
  metadata?, latency? (s), totalCost?, observations?: [{type: GENERATION, model, usage / usageDetails,
  startTime, endTime, calculatedTotalCost?}]}`.

Each record becomes one trace: a root span (the app) and an `llm` child span (the model call), written through
the same redactor and row conversion as flywheel's own spans (`store_sink.span_row` / `trace_row`), so secrets
are scrubbed the same way. Trace ids are a hash of the line's content: importing a file twice adds nothing the
second time. Every line is read and checked before anything is written, and all rows go in one transaction:
a bad line (reported as FILE:LINE and the field) leaves the store untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.tracing.redact import Redactor
from flywheel.tracing.store_sink import span_row, trace_row
from flywheel.tracing.tracer import make_span
from flywheel.types import Span

FORMATS = ("flywheel", "openai-log", "langfuse")
Progress = Callable[[str, int, int], None]  # (phase "read" | "write", done, total)
_BATCH = 500


@dataclass
class Record:
    """One past call, normalised."""

    line: int
    digest: str
    started: float  # Unix seconds
    latency_ms: float | None
    app: str | None
    model: str | None
    messages: list[dict[str, Any]]
    output: str | None
    tenant: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass
class ImportResult:
    lines: int = 0
    imported: int = 0
    already: int = 0  # traces that were in the store already (an earlier import of the same lines)

    def to_json(self) -> dict[str, int]:
        return {"lines": self.lines, "imported": self.imported, "already_present": self.already}


class _Bad(Exception):
    def __init__(self, field_name: str, message: str):
        self.field_name, self.message = field_name, message


def read_file(path: str | Path, fmt: str = "flywheel", progress: Progress | None = None) -> list[Record]:
    """Every record of the file, checked; the first bad line raises UserError naming FILE:LINE and the field."""
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no such file: {p}", hint="give the path of a JSON-lines log file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {p}: {exc}", hint="the file must be UTF-8 JSON lines") from None
    parse = _PARSERS[fmt]
    lines = text.splitlines()
    out: list[Record] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise UserError(f"line {n} is not valid JSON: {exc}", where=f"{p}:{n}",
                            hint="one JSON object per line (JSON Lines)") from None
        try:
            if not isinstance(obj, dict):
                raise _Bad("(line)", "a line must be a JSON object")
            rec = parse(obj)
        except _Bad as bad:
            raise UserError(f"`{bad.field_name}`: {bad.message}", where=f"{p}:{n}",
                            hint=f"see `flywheel traces import --help` for the {fmt} format") from None
        rec.line = n
        rec.digest = hashlib.sha256(f"{fmt}\n{json.dumps(obj, sort_keys=True, ensure_ascii=False)}".encode()).hexdigest()
        out.append(rec)
        if progress is not None and n % 1000 == 0:
            progress("read", n, len(lines))
    return out


def import_file(store: Store, path: str | Path, fmt: str = "flywheel", *, redactor: Redactor | None = None,
                progress: Progress | None = None) -> ImportResult:
    """Read, check and store every record of `path` as a trace (all or nothing)."""
    records = read_file(path, fmt, progress)
    result = ImportResult(lines=len(records))
    redactor = redactor or Redactor.from_config(None)
    seen: set[str] = set()
    unique = []
    for rec in records:
        if rec.digest[:32] not in seen:
            seen.add(rec.digest[:32])
            unique.append(rec)
    result.already = len(records) - len(unique)
    with store.begin() as conn:
        existing: set[str] = set()
        ids = [r.digest[:32] for r in unique]
        for i in range(0, len(ids), _BATCH):
            existing.update(conn.execute(select(traces_t.c.trace_id).where(
                traces_t.c.trace_id.in_(ids[i:i + _BATCH]))).scalars())
        todo = [r for r in unique if r.digest[:32] not in existing]
        result.already += len(unique) - len(todo)
        for i in range(0, len(todo), _BATCH):
            span_rows: list[dict[str, Any]] = []
            trace_rows: list[dict[str, Any]] = []
            for rec in todo[i:i + _BATCH]:
                rows = [span_row(redactor(s)) for s in to_spans(rec)]
                span_rows.extend(rows)
                trace_rows.append(trace_row(rows[0], rows))
            conn.execute(spans_t.insert(), span_rows)
            conn.execute(traces_t.insert(), trace_rows)
            if progress is not None:
                progress("write", min(i + _BATCH, len(todo)), len(todo))
        result.imported = len(todo)
    return result


def to_spans(rec: Record) -> list[Span]:
    """The root span and its llm child for one record (ids derived from the record's content)."""
    trace_id = rec.digest[:32]
    start = int(rec.started * 1e9)
    end = start + int((rec.latency_ms or 0.0) * 1e6)
    question = next((m.get("content") for m in reversed(rec.messages) if m.get("role") == "user"), None)
    attrs: dict[str, Any] = {"flywheel.imported": True}
    for key, value in (("flywheel.app", rec.app), ("flywheel.tenant", rec.tenant),
                       ("flywheel.session_id", rec.session_id), ("flywheel.user_id", rec.user_id)):
        if value:
            attrs[key] = value
    if rec.metadata:
        attrs["flywheel.metadata"] = rec.metadata
    llm_attrs: dict[str, Any] = {"gen_ai.operation.name": "chat"}
    fields: tuple[tuple[str, Any], ...] = (("gen_ai.request.model", rec.model), ("gen_ai.usage.input_tokens", rec.input_tokens),
                       ("gen_ai.usage.output_tokens", rec.output_tokens), ("flywheel.cost_usd", rec.cost_usd),
                       ("flywheel.app", rec.app), ("flywheel.tenant", rec.tenant))
    for key, value in fields:
        if value is not None:
            llm_attrs[key] = value
    state = "missing" if rec.output is None else ("empty" if not rec.output.strip() else "ok")
    root = make_span(span_id=_id(rec.digest, "root"), trace_id=trace_id, parent_id=None,
                     name=rec.name or rec.app or "imported", kind="app" if rec.app else "other", start_ns=start,
                     end_ns=end, inputs={"question": question if isinstance(question, str) else None},
                     outputs=None if rec.output is None else {"text": rec.output}, output_state=state,
                     error=rec.error, attributes=attrs)
    llm = make_span(span_id=_id(rec.digest, "llm"), trace_id=trace_id, parent_id=root.span_id,
                    name="gateway.chat", kind="llm", start_ns=start, end_ns=end,
                    inputs={"messages": rec.messages, "params": rec.params}, outputs=rec.output,
                    output_state=state, error=rec.error, attributes=llm_attrs)
    return [root, llm]


def _id(digest: str, part: str) -> str:
    return hashlib.sha256(f"{digest}:{part}".encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- field readers


def _time(value: Any, name: str) -> float:
    if isinstance(value, bool) or value is None:
        raise _Bad(name, "missing" if value is None else "a time is Unix seconds or an ISO 8601 date-time")
    if isinstance(value, (int, float)):
        t = float(value)
        t = t / 1000.0 if t > 1e11 else t  # milliseconds
        if not math.isfinite(t) or t < 0:
            raise _Bad(name, "not a valid Unix time")
        return t
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Bad(name, f"cannot read {value!r} as an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise _Bad(name, "a time is Unix seconds or an ISO 8601 date-time")


def _opt_str(obj: dict[str, Any], key: str, name: str | None = None, limit: int = 200) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _Bad(name or key, "must be a string")
    return str(value)[:limit]


def _opt_num(value: Any, name: str, *, integer: bool = False) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _Bad(name, "must be a non-negative number")
    return int(value) if integer else float(value)


def _messages(value: Any, name: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 for m in value):
        return [{"role": m["role"], "content": _content(m.get("content"))} for m in value]
    if isinstance(value, dict):
        return [{"role": "user", "content": json.dumps(value, ensure_ascii=False)}]
    raise _Bad(name, "a text, or a list of chat messages with `role` and `content`")


def _content(value: Any) -> str:
    if isinstance(value, list):  # content parts
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _output(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("content", "text", "output", "completion"):
            if isinstance(value.get(key), str):
                return str(value[key])
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return _content(value) if all(isinstance(p, dict) for p in value) else json.dumps(value, ensure_ascii=False)
    raise _Bad(name, "a text (or null)")


def _meta(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(name, "must be an object")
    return value


def _flywheel(obj: dict[str, Any]) -> Record:
    for key in ("timestamp", "input", "output"):
        if key not in obj:
            raise _Bad(key, "missing")
    usage = obj.get("usage") or {}
    if not isinstance(usage, dict):
        raise _Bad("usage", "must be an object with input_tokens / output_tokens")
    return Record(
        line=0, digest="", started=_time(obj["timestamp"], "timestamp"),
        latency_ms=_opt_num(obj.get("latency_ms"), "latency_ms"), app=_opt_str(obj, "app", limit=100),
        model=_opt_str(obj, "model"), messages=_messages(obj["input"], "input"), output=_output(obj["output"], "output"),
        tenant=_opt_str(obj, "tenant", limit=100), session_id=_opt_str(obj, "session_id"),
        user_id=_opt_str(obj, "user_id"), metadata=_meta(obj.get("metadata"), "metadata"),
        input_tokens=_opt_num(usage.get("input_tokens", usage.get("prompt_tokens")), "usage.input_tokens",
                              integer=True),
        output_tokens=_opt_num(usage.get("output_tokens", usage.get("completion_tokens")), "usage.output_tokens",
                               integer=True),
        cost_usd=_opt_num(obj.get("cost_usd"), "cost_usd"), error=_opt_str(obj, "error", limit=20_000))


def _openai(obj: dict[str, Any]) -> Record:
    req, resp = obj.get("request"), obj.get("response")
    if not isinstance(req, dict):
        raise _Bad("request", "missing (an OpenAI chat completion request object)")
    if not isinstance(resp, dict):
        raise _Bad("response", "missing (an OpenAI chat completion response object)")
    if "messages" not in req:
        raise _Bad("request.messages", "missing")
    choices = resp.get("choices")
    if not isinstance(choices, list):
        raise _Bad("response.choices", "missing (a list)")
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message: dict[str, Any] = first["message"] if isinstance(first.get("message"), dict) else {}
    output = _output(message.get("content", first.get("text")), "response.choices.0.message.content")
    stamp = obj.get("timestamp", resp.get("created"))
    if stamp is None:
        raise _Bad("response.created", "missing (or give a top-level `timestamp`)")
    usage = resp.get("usage") or {}
    params = {k: req[k] for k in ("temperature", "max_tokens", "response_format", "stop") if req.get(k) is not None}
    return Record(
        line=0, digest="", started=_time(stamp, "timestamp" if "timestamp" in obj else "response.created"),
        latency_ms=_opt_num(obj.get("latency_ms"), "latency_ms"), app=_opt_str(obj, "app", limit=100),
        model=_opt_str(resp, "model", "response.model") or _opt_str(req, "model", "request.model"),
        messages=_messages(req["messages"], "request.messages"), output=output,
        tenant=_opt_str(obj, "tenant", limit=100), session_id=_opt_str(obj, "session_id"),
        user_id=_opt_str(req, "user", "request.user"), metadata=_meta(obj.get("metadata"), "metadata"),
        input_tokens=_opt_num(usage.get("prompt_tokens"), "response.usage.prompt_tokens", integer=True),
        output_tokens=_opt_num(usage.get("completion_tokens"), "response.usage.completion_tokens", integer=True),
        cost_usd=_opt_num(obj.get("cost_usd"), "cost_usd"), params=params)


def _langfuse(obj: dict[str, Any]) -> Record:
    if "timestamp" not in obj:
        raise _Bad("timestamp", "missing")
    observations = obj.get("observations") or []
    if not isinstance(observations, list):
        raise _Bad("observations", "must be a list")
    gens = [o for o in observations if isinstance(o, dict) and o.get("type") == "GENERATION"]
    gen = gens[0] if gens else {}
    usage = gen.get("usageDetails") or gen.get("usage") or {}
    if not isinstance(usage, dict):
        raise _Bad("observations.usage", "must be an object")
    latency = obj.get("latency")
    metadata = _meta(obj.get("metadata"), "metadata")
    if obj.get("tags"):
        metadata = {**metadata, "tags": obj["tags"]}
    cost = obj.get("totalCost", gen.get("calculatedTotalCost"))
    return Record(
        line=0, digest="", started=_time(obj["timestamp"], "timestamp"),
        latency_ms=None if latency is None else _opt_num(latency, "latency") * 1000.0,
        app=_opt_str(obj, "name", limit=100), model=_opt_str(gen, "model", "observations.model"),
        messages=_messages(obj.get("input") if obj.get("input") is not None else gen.get("input", ""), "input"),
        output=_output(obj.get("output") if obj.get("output") is not None else gen.get("output"), "output"),
        tenant=_opt_str(metadata, "tenant", "metadata.tenant", limit=100),
        session_id=_opt_str(obj, "sessionId"), user_id=_opt_str(obj, "userId"), metadata=metadata,
        input_tokens=_opt_num(usage.get("input", usage.get("promptTokens")), "usage.input", integer=True),
        output_tokens=_opt_num(usage.get("output", usage.get("completionTokens")), "usage.output", integer=True),
        cost_usd=_opt_num(cost, "totalCost"), name=_opt_str(obj, "name", limit=200))


_PARSERS: dict[str, Callable[[dict[str, Any]], Record]] = {"flywheel": _flywheel, "openai-log": _openai,
                                                            "langfuse": _langfuse}
