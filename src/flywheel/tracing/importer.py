"""Load past request/response logs as traces, with their original timestamps (`flywheel traces import`).

Formats (one JSON object per line, or one JSON array of them as Langfuse's UI exports; a UTF-8 BOM is skipped;
a line that is unmistakably another format, by keys only that format has, is refused naming the right one):
- `flywheel`: `{timestamp, app, model, input, output, tenant?, session_id?, user_id?, metadata?, latency_ms?,
  usage?: {input_tokens, output_tokens}, cost_usd?, error?}`; `input` is a text or a list of chat messages.
- `openai-log`: `{request: {model, messages, response_format?, …}, response: {choices, usage, created, model},
  timestamp?, app?, tenant?, latency_ms?, metadata?}` (an OpenAI chat completion request and its response).
- `langfuse`: a Langfuse trace export line: `{id, timestamp, name, input, output, sessionId?, userId?,
  metadata?, latency? (s), totalCost?, observations?: [{type: GENERATION, model, usage / usageDetails,
  startTime, endTime, calculatedTotalCost?}]}`; the generations' tokens are summed (and their costs without
  a `totalCost`).

Each record becomes one trace: a root span (the app) and an `llm` child span (the model call), written through
the same redactor and row conversion as flywheel's own spans (`store_sink.span_row` / `trace_row`), so secrets
are scrubbed the same way. Trace ids are a hash of the line's content: importing a file twice adds nothing the
second time. Every line is read and checked before anything is written, and all rows go in one transaction:
a bad line (reported as FILE:LINE and the field) leaves the store untouched.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.text.lines import split_lines
from flywheel.tracing.redact import Redactor
from flywheel.tracing.store_sink import span_row, trace_row
from flywheel.tracing.tracer import make_span
from flywheel.types import Span

FORMATS = ("flywheel", "openai-log", "langfuse")
Progress = Callable[[str, int, int], None]  # (phase "read" | "write", done, total)
_BATCH = 500
# span times are kept as signed 64-bit nanoseconds: up to 2262-04-11; counts in the store's 64-bit integers
MAX_TIME = (2**63 - 1) / 1e9 - 366 * 86400.0  # (leaving a year for the call's latency)
MAX_COUNT = float(2**62)
MAX_LATENCY_MS = 366 * 86400e3


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
    tool_calls: list[dict[str, Any]] | None = None  # the tools the model asked for (OpenAI's message.tool_calls)


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
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # a gzip file (logs are often rotated as .jsonl.gz)
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")  # (a byte-order mark, as Windows tools write, is not data)
    except FileNotFoundError:
        raise UserError(f"no such file: {p}", hint="give the path of a JSON-lines log file") from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise UserError(f"cannot read {p}: {exc}", hint="the file must be UTF-8 JSON lines (or gzip of them)") from None
    parse = _PARSERS[fmt]
    items = _array_items(text, p) if text.lstrip()[:1] == "[" else _lines(text, p)
    total = len(items)
    out: list[Record] = []
    for n, obj in items:
        try:
            if not isinstance(obj, dict):
                raise _Bad("(line)", "a line must be a JSON object")
            other = _other_format(obj, fmt)
            if other is not None:
                raise UserError(f"this line is in the {other} format, not {fmt}", where=f"{p}:{n}",
                                hint=f"import it with `--format {other}`")
            rec = parse(obj)
        except _Bad as bad:
            other = _other_format(obj, None) if isinstance(obj, dict) else None
            hint = (f"this looks like the {other} format: `--format {other}`" if other not in (None, fmt)
                    else f"see `flywheel traces import --help` for the {fmt} format")
            raise UserError(f"`{bad.field_name}`: {bad.message}", where=f"{p}:{n}", hint=hint) from None
        rec.line = n
        rec.digest = hashlib.sha256(f"{fmt}\n{json.dumps(obj, sort_keys=True, ensure_ascii=False)}".encode()).hexdigest()
        out.append(rec)
        if progress is not None and len(out) % 1000 == 0:
            progress("read", len(out), total)
    return out


def _lines(text: str, p: Path) -> list[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines text."""
    out: list[tuple[int, Any]] = []
    for n, raw in enumerate(split_lines(text), start=1):
        if not raw.strip():
            continue
        try:
            out.append((n, json.loads(raw)))
        except ValueError as exc:
            raise UserError(f"line {n} is not valid JSON: {exc}", where=f"{p}:{n}",
                            hint="one JSON object per line (JSON Lines), or one JSON array of objects") from None
    return out


def _array_items(text: str, p: Path) -> list[tuple[int, Any]]:
    """(line where it starts, value) of each element of a file holding one JSON array (as Langfuse's UI exports)."""
    decoder = json.JSONDecoder()
    out: list[tuple[int, Any]] = []
    i = text.index("[") + 1
    line, counted = 1, 0  # the line number at text[counted]

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line, counted = line + text.count("\n", counted, pos), pos
        return line

    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        n = line_at(i)
        if i < len(text) and text[i] == "]":
            if text[i + 1:].strip():
                raise UserError("text after the end of the JSON array", where=f"{p}:{n}",
                                hint="one JSON array of objects, or one JSON object per line")
            return out
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError as exc:
            raise UserError(f"the JSON array is not valid at line {n}: {exc}", where=f"{p}:{n}",
                            hint="the file is truncated or not JSON; one JSON array of objects, or JSON Lines") from None
        out.append((n, value))


def _other_format(obj: dict[str, Any], fmt: str | None) -> str | None:
    """The format `obj` unmistakably is (by keys only that format's lines have), when that is not `fmt`
    (None: whichever it looks like): a file given with the wrong --format is named, not read as something else."""
    if fmt != "openai-log" and isinstance(obj.get("request"), dict) and isinstance(obj.get("response"), dict):
        return "openai-log"
    # (one camelCase `userId` is any JavaScript app's log; a trace id with two of Langfuse's fields is Langfuse's)
    langfuse_keys = sum(k in obj for k in ("sessionId", "userId", "totalCost", "latency", "htmlPath"))
    if fmt != "langfuse" and (isinstance(obj.get("observations"), list) or "htmlPath" in obj
                              or ("id" in obj and langfuse_keys >= 2)):
        return "langfuse"
    return None


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
    answer: Any = rec.output
    if rec.tool_calls:  # as the gateway records a model call that asked for tools
        answer, state = {"content": rec.output or "", "tool_calls": rec.tool_calls}, "ok"
    root = make_span(span_id=_id(rec.digest, "root"), trace_id=trace_id, parent_id=None,
                     name=rec.name or rec.app or "imported", kind="app" if rec.app else "other", start_ns=start,
                     end_ns=end, inputs={"question": question if isinstance(question, str) else None},
                     outputs=None if answer is None else {"text": rec.output or "", **(
                         {"tool_calls": rec.tool_calls} if rec.tool_calls else {})}, output_state=state,
                     error=rec.error, attributes=attrs)
    llm = make_span(span_id=_id(rec.digest, "llm"), trace_id=trace_id, parent_id=root.span_id,
                    name="gateway.chat", kind="llm", start_ns=start, end_ns=end,
                    inputs={"messages": rec.messages, "params": rec.params}, outputs=answer,
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
        # a number past 1e11 seconds (year 5138) is in a smaller unit: ms, µs or ns since the epoch
        for unit in (1e3, 1e6, 1e9):
            if t > 1e11:
                t = float(value) / unit
        if not math.isfinite(t) or not 0 <= t <= MAX_TIME:
            raise _Bad(name, "not a valid Unix time (seconds, milliseconds, microseconds or nanoseconds)")
        return t
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Bad(name, f"cannot read {value!r} as an ISO 8601 date-time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        if not 0 <= parsed.timestamp() <= MAX_TIME:
            raise _Bad(name, f"{value!r} is before 1970 or after 2262")
        return parsed.timestamp()
    raise _Bad(name, "a time is Unix seconds or an ISO 8601 date-time")


def _opt_str(obj: dict[str, Any], key: str, name: str | None = None, limit: int = 200) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _Bad(name or key, "must be a string")
    return str(value)[:limit]


def _opt_num(value: Any, name: str, *, integer: bool = False, most: float = MAX_COUNT) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise _Bad(name, "must be a non-negative number")
    if value > most:
        raise _Bad(name, f"{value} is too large (at most {most:g})")
    return int(value) if integer else float(value)


def _messages(value: Any, name: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                 for m in value):
        return [{"role": m["role"], "content": _content(m.get("content"))} for m in value]
    if isinstance(value, dict):
        inner = value.get("messages")  # {"messages": [...]}, as LangChain's runs log their input
        if isinstance(inner, list) and inner and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                     for m in inner):
            return _messages(inner, f"{name}.messages")
        text = _only_text(value)
        return [{"role": "user", "content": text if text is not None else json.dumps(value, ensure_ascii=False)}]
    raise _Bad(name, "a text, or a list of chat messages with `role` and `content`")


def _only_text(value: dict[str, Any]) -> str | None:
    """The text of an object with a single field that is a text (`{"question": "…"}`), else None."""
    return next(iter(value.values())) if len(value) == 1 and isinstance(next(iter(value.values())), str) else None


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
        text = _only_text(value)
        return text if text is not None else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return _content(value) if all(isinstance(p, dict) for p in value) else json.dumps(value, ensure_ascii=False)
    raise _Bad(name, "a text (or null)")


def _error(value: Any) -> str | None:
    """The error of a failed call: a text, or an API error object (`{"message", "type", …}`) as its message."""
    if isinstance(value, dict):
        message = value.get("message")
        value = message if isinstance(message, str) and message else json.dumps(value, ensure_ascii=False)
    return _opt_str({"error": value}, "error", limit=20_000)


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
        latency_ms=_opt_num(obj.get("latency_ms"), "latency_ms", most=MAX_LATENCY_MS), app=_opt_str(obj, "app", limit=100),
        model=_opt_str(obj, "model"), messages=_messages(obj["input"], "input"), output=_output(obj["output"], "output"),
        tenant=_opt_str(obj, "tenant", limit=100), session_id=_opt_str(obj, "session_id"),
        user_id=_opt_str(obj, "user_id"), metadata=_meta(obj.get("metadata"), "metadata"),
        input_tokens=_opt_num(usage.get("input_tokens", usage.get("prompt_tokens")), "usage.input_tokens",
                              integer=True),
        output_tokens=_opt_num(usage.get("output_tokens", usage.get("completion_tokens")), "usage.output_tokens",
                               integer=True),
        cost_usd=_opt_num(obj.get("cost_usd"), "cost_usd"), error=_error(obj.get("error")))


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
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not (isinstance(tool_calls, list) and all(isinstance(c, dict) for c in tool_calls)):
        raise _Bad("response.choices.0.message.tool_calls", "must be a list of tool call objects")
    stamp = obj.get("timestamp", resp.get("created"))
    if stamp is None:
        raise _Bad("response.created", "missing (or give a top-level `timestamp`)")
    usage = resp.get("usage") or {}
    params = {k: req[k] for k in ("temperature", "max_tokens", "response_format", "stop") if req.get(k) is not None}
    return Record(
        line=0, digest="", started=_time(stamp, "timestamp" if "timestamp" in obj else "response.created"),
        latency_ms=_opt_num(obj.get("latency_ms"), "latency_ms", most=MAX_LATENCY_MS), app=_opt_str(obj, "app", limit=100),
        model=_opt_str(resp, "model", "response.model") or _opt_str(req, "model", "request.model"),
        messages=_messages(req["messages"], "request.messages"), output=output,
        tenant=_opt_str(obj, "tenant", limit=100), session_id=_opt_str(obj, "session_id"),
        user_id=_opt_str(req, "user", "request.user"), metadata=_meta(obj.get("metadata"), "metadata"),
        input_tokens=_opt_num(usage.get("prompt_tokens"), "response.usage.prompt_tokens", integer=True),
        output_tokens=_opt_num(usage.get("completion_tokens"), "response.usage.completion_tokens", integer=True),
        cost_usd=_opt_num(obj.get("cost_usd"), "cost_usd"), params=params, tool_calls=tool_calls or None)


def _langfuse(obj: dict[str, Any]) -> Record:
    if "timestamp" not in obj:
        raise _Bad("timestamp", "missing")
    observations = obj.get("observations") or []
    if not isinstance(observations, list):
        raise _Bad("observations", "must be a list")
    gens = [(i, o) for i, o in enumerate(observations) if isinstance(o, dict) and o.get("type") == "GENERATION"]
    gen = gens[0][1] if gens else {}
    # an agent's trace has several model calls: its tokens (and, without a trace total, cost) are theirs summed
    tokens: dict[str, int | None] = {"input": None, "output": None}
    gen_cost: float | None = None
    for i, o in gens:
        usage = o.get("usageDetails") or o.get("usage") or {}
        if not isinstance(usage, dict):
            raise _Bad(f"observations.{i}.usage", "must be an object")
        for side, legacy in (("input", "promptTokens"), ("output", "completionTokens")):
            n = _opt_num(usage.get(side, usage.get(legacy)), f"observations.{i}.usage.{side}", integer=True)
            tokens[side] = tokens[side] if n is None else (tokens[side] or 0) + n
        c = _opt_num(o.get("calculatedTotalCost"), f"observations.{i}.calculatedTotalCost")
        gen_cost = gen_cost if c is None else (gen_cost or 0.0) + c
    latency = obj.get("latency")
    metadata = _meta(obj.get("metadata"), "metadata")
    if obj.get("tags"):
        metadata = {**metadata, "tags": obj["tags"]}
    cost = obj.get("totalCost")
    return Record(
        line=0, digest="", started=_time(obj["timestamp"], "timestamp"),
        latency_ms=None if latency is None else _opt_num(latency, "latency", most=MAX_LATENCY_MS / 1e3) * 1000.0,
        app=_opt_str(obj, "name", limit=100), model=_opt_str(gen, "model", "observations.model"),
        messages=_messages(obj.get("input") if obj.get("input") is not None else gen.get("input", ""), "input"),
        output=_output(obj.get("output") if obj.get("output") is not None else gen.get("output"), "output"),
        tenant=_opt_str(metadata, "tenant", "metadata.tenant", limit=100),
        session_id=_opt_str(obj, "sessionId"), user_id=_opt_str(obj, "userId"), metadata=metadata,
        input_tokens=tokens["input"], output_tokens=tokens["output"],
        cost_usd=gen_cost if cost is None else _opt_num(cost, "totalCost"), name=_opt_str(obj, "name", limit=200))


_PARSERS: dict[str, Callable[[dict[str, Any]], Record]] = {"flywheel": _flywheel, "openai-log": _openai,
                                                            "langfuse": _langfuse}
