"""Load past request/response logs as traces, with their original timestamps (`flywheel traces import`).

Formats (one JSON object per line; or one JSON document: an array of them, or pretty-printed objects one after
the other; plain or gzip; a UTF-8 BOM is skipped; a line that is unmistakably another format, by keys only that
format has, is refused naming the right one):
- `flywheel`: `{timestamp, app, model, input, output, tenant?, session_id?, user_id?, metadata?, latency_ms?,
  usage?: {input_tokens, output_tokens}, cost_usd?, error?}`; `input` is a text or a list of chat messages.
- `openai-log`: `{request: {model, messages, response_format?, …}, response: {choices, usage, created, model},
  timestamp?, app?, tenant?, latency_ms?, metadata?}` (an OpenAI chat completion request and its response),
  or a Responses API call (`request.input`, `response.output`: see import_responses).
- `langfuse`: Langfuse traces with their observations (see import_langfuse).
- `otlp`: OTLP/JSON trace exports, spans read as the OTLP receiver reads them (see import_otlp); `phoenix`:
  Phoenix's own span JSON, read as the OpenInference OTLP spans they were (see import_phoenix); `langsmith`:
  LangSmith's runs, read the same way (see import_langsmith).

A `flywheel` or `openai-log` record becomes a root span (the app) and an `llm` child span (the model call); a
Langfuse trace its root and one span per observation. Spans go through the same redactor and row conversion as
flywheel's own (`store_sink.span_row` / `trace_row`), so secrets are scrubbed the same way. Trace ids are a
hash of the line's content (of a Langfuse trace's id): importing a file twice adds nothing the second time.
The file is read twice, never held whole: every line is checked first, then the rows are written in batches in
one transaction, so a bad line (reported as FILE:LINE and the field) leaves the store untouched.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select

from flywheel.errors import UserError
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.tracing import import_langfuse, import_langsmith, import_phoenix, import_responses
from flywheel.tracing.import_fields import (
    FORMATS,
    MAX_LATENCY_MS,
    SPAN_FORMATS,
    Bad,
    Record,
    chat_messages,
    error_text,
    meta_obj,
    opt_num,
    opt_str,
    output_text,
    time_of,
)
from flywheel.tracing.import_otlp import import_otlp
from flywheel.tracing.redact import Redactor
from flywheel.tracing.store_sink import span_row, trace_row
from flywheel.tracing.tracer import make_span
from flywheel.types import Span

Progress = Callable[[str, int, int], None]  # (phase "read" | "write", done, total; 0: not known yet)
_BATCH = 500




@dataclass
class ImportResult:
    lines: int = 0
    imported: int = 0
    already: int = 0  # traces that were in the store already (an earlier import of the same lines)

    def to_json(self) -> dict[str, int]:
        return {"lines": self.lines, "imported": self.imported, "already_present": self.already}




def _checked(path: str | Path, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise UserError(f"unknown import format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"no such file: {p}", hint="give the path of a JSON-lines log file")
    return p


def _records(p: Path, fmt: str) -> Iterator[Record]:
    """The file's records one by one (a JSON Lines file is streamed, never held whole)."""
    parse, expand = _PARSERS[fmt], _EXPAND.get(fmt, lambda obj: [obj])
    for n, value in _values(p):
        for obj in expand(value) if isinstance(value, dict) else [value]:
            try:
                if not isinstance(obj, dict):
                    raise Bad("(line)", "a line must be a JSON object")
                other = _other_format(obj, fmt)
                if other is not None:
                    raise UserError(f"this line is in the {other} format, not {fmt}", where=f"{p}:{n}",
                                    hint=f"import it with `--format {other}`")
                rec = parse(obj)
            except Bad as bad:
                other = _other_format(obj, None) if isinstance(obj, dict) else None
                hint = (f"this looks like the {other} format: `--format {other}`" if other not in (None, fmt)
                        else f"see `flywheel traces import --help` for the {fmt} format")
                raise UserError(f"`{bad.field_name}`: {bad.message}", where=f"{p}:{n}", hint=hint) from None
            rec.line = n
            identity = rec.source_id or json.dumps(obj, sort_keys=True, ensure_ascii=False)
            rec.digest = hashlib.sha256(f"{fmt}\n{identity}".encode()).hexdigest()
            yield rec


def _values(p: Path) -> Iterator[tuple[int, Any]]:
    """(line, value) of each JSON value of the file: JSON Lines read line by line, or a whole JSON document (an
    array, pretty-printed objects) decoded value by value as it is read, so neither is ever held whole. Plain
    or gzip; a UTF-8 byte-order mark, as Windows tools write, is skipped."""
    try:
        with p.open("rb") as head:
            gz = head.read(2) == b"\x1f\x8b"  # a gzip file (logs are often rotated as .jsonl.gz)
        with io.TextIOWrapper(gzip.open(p, "rb") if gz else p.open("rb"), encoding="utf-8-sig") as f:
            n = 0
            while line := f.readline(_CHUNK):  # (a bounded read: a whole array is often written on one line)
                n += 1
                if len(line) == _CHUNK and line[-1] != "\n" and line.lstrip()[:1] != "[":
                    line += f.readline()  # a long JSON Lines record: read whole (an array is read as it goes)
                if not line.strip():
                    continue
                if _one_document(line):
                    yield from _json_values(f, line, n, p)
                    return
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    raise UserError(f"line {n} is not valid JSON: {exc}", where=f"{p}:{n}",
                                    hint="one JSON object per line (JSON Lines), or one JSON array of objects") from None
                yield n, value
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        if _magic(p) == b"PAR1":
            raise UserError(f"{p} is a Parquet file (Phoenix's TraceDataset.save or a spans dataframe's "
                            "to_parquet): import reads JSON", hint="save the spans with "
                            "`df.to_json(FILE, orient='records', lines=True)` and import it with --format phoenix") from None
        raise UserError(f"cannot read {p}: {exc}", hint="the file must be UTF-8 JSON lines (or gzip of them); "
                        f"formats read: {', '.join(FORMATS)}") from None


def _magic(p: Path) -> bytes:
    try:
        with p.open("rb") as f:
            return f.read(4)
    except OSError:
        return b""


def _one_document(first_line: str) -> bool:
    """Whether a file whose first line this is holds JSON spread over lines (one array, or pretty-printed objects
    as a UI downloads a trace) rather than JSON Lines: the line opens an array, or an object it does not close."""
    start = first_line.strip()
    if start[:1] == "[":
        return True
    if start[:1] != "{":
        return False
    try:
        json.loads(start)
    except ValueError:
        return True
    return False


_CHUNK = 1 << 20  # characters read at a time from a file that is one JSON document


def _json_values(f: io.TextIOBase, first: str, first_line: int, p: Path) -> Iterator[tuple[int, Any]]:
    """(line where it starts, value) of each element of a file holding one JSON array (as Langfuse's UI exports),
    or of each of the JSON values written one after the other (pretty-printed objects), from `first` (the line
    at `first_line`) and the rest of `f`. Decoded one value at a time over a buffer holding little more than
    the value being read (the stdlib has no streaming JSON parser; raw_decode over a sliding window is one), so
    memory stays flat however large the file."""
    decoder = json.JSONDecoder()
    buf, i, eof = first, 0, False
    line, at = first_line, 0  # the line number at buf[at] (counted as the reading goes, never twice)
    array = first.lstrip()[:1] == "["
    if array:
        i = buf.index("[") + 1
    what = "the JSON array is" if array else "the JSON is"
    skip = " \t\r\n," if array else " \t\r\n"

    def more() -> bool:
        """Drop what was decoded and read at least as much again as is left (a value longer than a chunk is
        read in doubling steps, not decoded again once per chunk); False at the end of the file."""
        nonlocal buf, i, line, at, eof
        chunk = f.read(max(_CHUNK, len(buf) - i))
        line, at = line + buf.count("\n", at, i), 0
        buf, i = buf[i:] + chunk, 0
        eof = not chunk
        return not eof

    while True:
        while True:
            while i < len(buf) and buf[i] in skip:
                i += 1
            if i < len(buf) or not more():
                break
        line, at = line + buf.count("\n", at, i), i
        n = line
        if i == len(buf):  # the end of the file
            if array:
                raise UserError(f"{what} not valid at line {n}: the file ends before the array's `]`",
                                where=f"{p}:{n}", hint="the file is truncated; one JSON array of objects, or JSON Lines")
            return
        if array and buf[i] == "]":
            i += 1
            while True:  # only white space may follow, to the end of the file
                if buf[i:].strip():
                    raise UserError("text after the end of the JSON array", where=f"{p}:{n}",
                                    hint="one JSON array of objects, or one JSON object per line")
                i = len(buf)
                if not more():
                    return
        try:
            value, end = decoder.raw_decode(buf, i)
        except json.JSONDecodeError as exc:
            # cut short by the end of what was read (not an error in the middle of it): read on and try again
            cut = exc.pos >= len(buf) - 64 or exc.msg.startswith("Unterminated string")
            row, col = n + buf.count("\n", i, exc.pos), exc.pos - buf.rfind("\n", 0, exc.pos)
            if cut and not eof and more():
                continue
            raise UserError(f"{what} not valid at line {row} column {col}: {exc.msg}", where=f"{p}:{n}",
                            hint="the file is truncated or not JSON; one JSON array of objects, or JSON Lines") from None
        if end == len(buf) and not eof:  # (a number cut at the buffer's end reads as a shorter one)
            if more():
                continue
            end = len(buf)  # (the end of the file: what is left is this value)
        i = end
        yield n, value


def _other_format(obj: dict[str, Any], fmt: str | None) -> str | None:
    """The format `obj` unmistakably is (by keys only that format's lines have), when that is not `fmt`
    (None: whichever it looks like): a file given with the wrong --format is named, not read as something else."""
    if fmt != "openai-log" and isinstance(obj.get("request"), dict) and isinstance(obj.get("response"), dict):
        return "openai-log"
    if fmt not in SPAN_FORMATS and import_phoenix.is_phoenix_span(obj):
        return "phoenix"
    if fmt not in SPAN_FORMATS and import_langsmith.is_run(obj):
        return "langsmith"
    if fmt not in SPAN_FORMATS and any(isinstance(obj.get(k), list) for k in ("resourceSpans", "resource_spans", "batches",
                                                                   "resourceLogs", "resource_logs")):
        return "otlp"
    # (one camelCase `userId` is any JavaScript app's log; a trace id with two of Langfuse's fields is Langfuse's)
    langfuse_keys = sum(k in obj for k in ("sessionId", "userId", "totalCost", "latency", "htmlPath"))
    if fmt != "langfuse" and (isinstance(obj.get("observations"), list) or "htmlPath" in obj
                              or ("id" in obj and langfuse_keys >= 2)):
        return "langfuse"
    page = obj.get("data") if isinstance(obj.get("meta"), dict) else None  # a page of Langfuse's traces list
    if fmt != "langfuse" and isinstance(page, list) and page and isinstance(page[0], dict):
        return "langfuse" if _other_format(page[0], None) == "langfuse" else None
    return None


def import_file(store: Store, path: str | Path, fmt: str = "flywheel", *, redactor: Redactor | None = None,
                progress: Progress | None = None, models: dict[str, Any] | None = None) -> ImportResult:
    """Read, check and store every record of `path` as a trace (all or nothing). The file is read twice: once to
    check every line (keeping only the trace ids), then to write, so a large log is never held in memory.
    `models` (flywheel.yaml's) price OTLP model spans that report tokens but no cost."""
    p = _checked(path, fmt)
    redactor = redactor or Redactor.from_config(None)
    if fmt in SPAN_FORMATS:  # (one reader: Phoenix's spans and LangSmith's runs are read as the OTLP spans they were)
        lines, imported, already = import_otlp(store, p, _values, redactor, models, progress)
        return ImportResult(lines=lines, imported=imported, already=already)
    ids: list[str] = []
    for rec in _records(p, fmt):
        ids.append(rec.digest[:32])
        if progress is not None and len(ids) % 1000 == 0:
            progress("read", len(ids), 0)
    result = ImportResult(lines=len(ids))
    unique = list(dict.fromkeys(ids))
    with store.begin() as conn:
        existing: set[str] = set()
        for i in range(0, len(unique), _BATCH):
            existing.update(conn.execute(select(traces_t.c.trace_id).where(
                traces_t.c.trace_id.in_(unique[i:i + _BATCH]))).scalars())
        todo = {tid for tid in unique if tid not in existing}
        result.already = len(ids) - len(todo)
        written: set[str] = set()
        batch: list[Record] = []
        for k, rec in enumerate(_records(p, fmt)):
            if k >= len(ids):  # (lines appended since the check: not checked, not written)
                break
            if rec.digest[:32] in todo and rec.digest[:32] not in written:
                written.add(rec.digest[:32])
                batch.append(rec)
            if len(batch) == _BATCH:
                _write(conn, batch, redactor, progress, len(written), len(todo))
                batch = []
        _write(conn, batch, redactor, progress, len(written), len(todo))
        result.imported = len(written)
    return result


def _write(conn: Connection, records: list[Record], redactor: Redactor, progress: Progress | None, done: int,
           total: int) -> None:
    if not records:
        return
    span_rows: list[dict[str, Any]] = []
    trace_rows: list[dict[str, Any]] = []
    for rec in records:
        rows = [span_row(redactor(s)) for s in to_spans(rec)]
        span_rows.extend(rows)
        trace_rows.append(trace_row(rows[0], rows))
    conn.execute(spans_t.insert(), span_rows)
    conn.execute(traces_t.insert(), trace_rows)
    if progress is not None:
        progress("write", done, total)


def to_spans(rec: Record) -> list[Span]:
    """The root span and its llm child for one record, or with the record's steps under it instead (ids derived
    from the record's identity)."""
    trace_id = rec.digest[:32]
    # (the trace encloses its steps: an observation may start before the trace's own timestamp)
    start = min([_ns(rec.started), *(_ns(s.started) for s in rec.steps)])
    end = max([_ns(rec.started) + int((rec.latency_ms or 0.0) * 1e6), *(_ns(s.ended) for s in rec.steps if s.ended)])
    question = next((m.get("content") for m in reversed(rec.messages) if m.get("role") == "user"), None)
    attrs: dict[str, Any] = {"flywheel.imported": True}
    for key, value in (("flywheel.app", rec.app), ("flywheel.tenant", rec.tenant),
                       ("flywheel.session_id", rec.session_id), ("flywheel.user_id", rec.user_id)):
        if value:
            attrs[key] = value
    if rec.metadata:
        attrs["flywheel.metadata"] = rec.metadata
    if rec.steps and rec.cost_usd is not None and all("flywheel.cost_usd" not in s.attributes for s in rec.steps):
        attrs["flywheel.cost_usd"] = rec.cost_usd  # the trace's total cost, when no step has its own
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
                     outputs=answer, output_state=state,  # (the answer itself, as the model call's: not wrapped)
                     error=rec.error, attributes=attrs)
    if rec.steps:
        return [root, *_step_spans(rec, root.span_id)]
    llm = make_span(span_id=_id(rec.digest, "llm"), trace_id=trace_id, parent_id=root.span_id,
                    name="gateway.chat", kind="llm", start_ns=start, end_ns=end,
                    inputs={"messages": rec.messages, "params": rec.params}, outputs=answer,
                    output_state=state, error=rec.error, attributes=llm_attrs)
    return [root, llm]


def _step_spans(rec: Record, root_id: str) -> list[Span]:
    out = []
    for step in rec.steps:
        text = step.outputs if isinstance(step.outputs, str) else None
        state = "missing" if step.outputs is None else ("empty" if text is not None and not text.strip() else "ok")
        out.append(make_span(
            span_id=_id(rec.digest, f"step:{step.key}"), trace_id=rec.digest[:32],
            parent_id=root_id if step.parent is None else _id(rec.digest, f"step:{step.parent}"),
            name=step.name[:200], kind=step.kind, start_ns=_ns(step.started),
            end_ns=None if step.ended is None else _ns(step.ended), inputs=step.inputs, outputs=step.outputs,
            output_state=state, error=step.error, attributes=step.attributes))
    return out


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def _id(digest: str, part: str) -> str:
    return hashlib.sha256(f"{digest}:{part}".encode()).hexdigest()[:16]




def _flywheel(obj: dict[str, Any]) -> Record:
    for key in ("timestamp", "input", "output"):
        if key not in obj:
            raise Bad(key, "missing")
    usage = obj.get("usage") or {}
    if not isinstance(usage, dict):
        raise Bad("usage", "must be an object with input_tokens / output_tokens")
    return Record(
        line=0, digest="", started=time_of(obj["timestamp"], "timestamp"),
        latency_ms=opt_num(obj.get("latency_ms"), "latency_ms", most=MAX_LATENCY_MS), app=opt_str(obj, "app", limit=100),
        model=opt_str(obj, "model"), messages=chat_messages(obj["input"], "input"), output=output_text(obj["output"], "output"),
        tenant=opt_str(obj, "tenant", limit=100), session_id=opt_str(obj, "session_id"),
        user_id=opt_str(obj, "user_id"), metadata=meta_obj(obj.get("metadata"), "metadata"),
        input_tokens=opt_num(usage.get("input_tokens", usage.get("prompt_tokens")), "usage.input_tokens",
                              integer=True),
        output_tokens=opt_num(usage.get("output_tokens", usage.get("completion_tokens")), "usage.output_tokens",
                               integer=True),
        cost_usd=opt_num(obj.get("cost_usd"), "cost_usd"), error=error_text(obj.get("error")))


def _openai(obj: dict[str, Any]) -> Record:
    req, resp = obj.get("request"), obj.get("response")
    if not isinstance(req, dict):
        raise Bad("request", "missing (an OpenAI chat completion request object)")
    if not isinstance(resp, dict):
        raise Bad("response", "missing (an OpenAI chat completion response object)")
    if import_responses.is_responses(resp):  # a Responses API call (POST /v1/responses)
        return import_responses.parse(obj, req, resp)
    if "messages" not in req:
        raise Bad("request.messages", "missing")
    choices = resp.get("choices")
    if not isinstance(choices, list):
        raise Bad("response.choices", "missing (a list)")
    first = choices[0] if choices and isinstance(choices[0], dict) else {}
    message: dict[str, Any] = first["message"] if isinstance(first.get("message"), dict) else {}
    output = output_text(message.get("content", first.get("text")), "response.choices.0.message.content")
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not (isinstance(tool_calls, list) and all(isinstance(c, dict) for c in tool_calls)):
        raise Bad("response.choices.0.message.tool_calls", "must be a list of tool call objects")
    stamp = obj.get("timestamp", resp.get("created"))
    if stamp is None:
        raise Bad("response.created", "missing (or give a top-level `timestamp`)")
    usage = resp.get("usage") or {}
    params = {k: req[k] for k in ("temperature", "max_tokens", "response_format", "stop") if req.get(k) is not None}
    return Record(
        line=0, digest="", started=time_of(stamp, "timestamp" if "timestamp" in obj else "response.created"),
        latency_ms=opt_num(obj.get("latency_ms"), "latency_ms", most=MAX_LATENCY_MS), app=opt_str(obj, "app", limit=100),
        model=opt_str(resp, "model", "response.model") or opt_str(req, "model", "request.model"),
        messages=chat_messages(req["messages"], "request.messages"), output=output,
        tenant=opt_str(obj, "tenant", limit=100), session_id=opt_str(obj, "session_id"),
        user_id=opt_str(req, "user", "request.user"), metadata=meta_obj(obj.get("metadata"), "metadata"),
        input_tokens=opt_num(usage.get("prompt_tokens"), "response.usage.prompt_tokens", integer=True),
        output_tokens=opt_num(usage.get("completion_tokens"), "response.usage.completion_tokens", integer=True),
        cost_usd=opt_num(obj.get("cost_usd"), "cost_usd"), params=params, tool_calls=tool_calls or None)


_PARSERS: dict[str, Callable[[dict[str, Any]], Record]] = {"flywheel": _flywheel, "openai-log": _openai,
                                                            "langfuse": import_langfuse.parse}
_EXPAND: dict[str, Callable[[dict[str, Any]], list[Any]]] = {"langfuse": import_langfuse.expand}
