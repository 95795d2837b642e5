"""Langfuse's trace exports as flywheel traces (`flywheel traces import --format langfuse`).

A line (or an element of a JSON array, or the whole file when it is one pretty-printed object) is one of:
- a trace as the public API returns it (`GET /api/public/traces/{id}`): `{id, timestamp, name, input, output,
  sessionId, userId, metadata, tags, release, version, environment, latency (s), totalCost, observations}`,
  `observations` being ObservationsView objects (`{id, type, name, startTime, endTime, completionStartTime,
  parentObservationId, model, modelParameters, input, output, metadata, level, statusMessage, usage,
  usageDetails, costDetails, calculatedTotalCost, promptName, promptVersion, …}`);
- the UI's trace download: `{"trace": {…}, "observations": […]}`;
- a page of the traces list (`GET /api/public/traces`): `{"data": [trace, …], "meta": {…}}` (its observations
  are ids only: those traces get one model span, as before observations were known).

The trace becomes the root span (its name is the app); every observation becomes a span of its own under its
parent observation (or the root), with its kind (GENERATION: llm, EMBEDDING, RETRIEVER, TOOL, EVALUATOR,
GUARDRAIL; SPAN, EVENT, AGENT, CHAIN: other), times, model, tokens (`usageDetails` `input*` / `output*` keys,
else `usage`), cost (`costDetails.total`, else the deprecated `calculatedTotalCost`), parameters, prompt,
metadata and level: ERROR is the span's error (its `statusMessage`), and the trace's when a top-level
observation failed; WARNING is kept as an attribute. Input and output that Langfuse kept as JSON text are
decoded. A trace's identity is its Langfuse id: the same trace in two exports is imported once.
"""

from __future__ import annotations

import json
from typing import Any

from flywheel.tracing import otlp_conventions
from flywheel.tracing.import_fields import (
    MAX_LATENCY_MS,
    Bad,
    Record,
    Step,
    chat_messages,
    opt_num,
    opt_str,
    output_text,
    time_of,
)
from flywheel.types import SpanKind

_MODEL_KINDS = ("llm", "embedding")


def expand(obj: dict[str, Any]) -> list[Any]:
    """The traces one JSON value holds: a list page's `data`, else the value itself."""
    if isinstance(obj.get("data"), list) and isinstance(obj.get("meta"), dict) and "timestamp" not in obj:
        return list(obj["data"])
    return [obj]


def parse(obj: dict[str, Any]) -> Record:
    if isinstance(obj.get("trace"), dict) and "timestamp" not in obj:  # the UI's download
        obj = {**obj["trace"], "observations": obj.get("observations")}
    if "timestamp" not in obj and "traceId" in obj and "startTime" in obj:
        raise Bad(
            "(line)",
            "a Langfuse observation, not a trace: export traces with their observations "
            "(GET /api/public/traces/{id}, or the UI's trace download)",
        )
    if "timestamp" not in obj:
        raise Bad("timestamp", "missing")
    observations = obj.get("observations") or []
    if not isinstance(observations, list):
        raise Bad("observations", "must be a list")
    started = time_of(obj["timestamp"], "timestamp")
    latency = obj.get("latency")
    metadata = _metadata(obj.get("metadata"))
    if obj.get("tags"):
        metadata = {**metadata, "tags": obj["tags"]}
    app = opt_str(obj, "name", limit=100)
    tenant = opt_str(metadata, "tenant", "metadata.tenant", limit=100)
    raw = _steps(observations, started, app, tenant)
    steps = [s for s, _, _ in raw]
    top = sorted((r for r in raw if r[0].parent is None), key=lambda r: r[0].started)
    # without the trace's own input / output: the first top-level observation's input, the last one's output
    question, answer = _decoded(obj.get("input")), _decoded(obj.get("output"))
    if question is None and top:
        question = top[0][1]
    if answer is None and top:
        answer = top[-1][2]
    gens = [o for o in observations if isinstance(o, dict) and o.get("type") == "GENERATION"]
    rec = Record(
        line=0,
        digest="",
        started=started,
        latency_ms=None
        if latency is None
        else opt_num(latency, "latency", most=MAX_LATENCY_MS / 1e3) * 1000.0,
        app=app,
        model=opt_str(gens[0], "model", "observations.model") if gens else None,
        messages=_messages(question),
        output=_answer_text(answer),
        tenant=tenant,
        session_id=opt_str(obj, "sessionId"),
        user_id=opt_str(obj, "userId"),
        metadata=metadata,
        cost_usd=opt_num(obj.get("totalCost"), "totalCost"),
        name=opt_str(obj, "name", limit=200),
        error=next((s.error for s, _, _ in top if s.error), None),
        steps=steps,
    )
    trace_id = opt_str(obj, "id", limit=500)
    if trace_id:
        rec.source_id = f"langfuse:{trace_id}"
    return rec


def _steps(
    observations: list[Any], trace_start: float, app: str | None, tenant: str | None
) -> list[tuple[Step, Any, Any]]:
    """Each observation's step with its raw (decoded) input and output."""
    by_key: dict[str, tuple[Step, Any, Any]] = {}
    for i, o in enumerate(observations):
        if isinstance(o, dict):  # (the list endpoint gives ids only)
            step = _step(o, f"observations.{i}", i, trace_start, app, tenant)
            by_key.pop(step[0].key, None)  # an id given twice (an unmerged update): the later one is current
            by_key[step[0].key] = step
    raw = list(by_key.values())
    steps = [s for s, _, _ in raw]
    keys = {s.key for s in steps}
    for s in steps:  # a parent not in the export: the step hangs from the root
        if s.parent not in keys:
            s.parent = None
    parents = {s.key: s.parent for s in steps}
    for s in steps:  # a loop of parents is broken at its first step, which then hangs from the root
        p, hops = s.parent, 0
        while p is not None and p != s.key and hops <= len(steps):
            p, hops = parents[p], hops + 1
        if p == s.key:
            s.parent = parents[s.key] = None
    return raw


def _step(
    o: dict[str, Any], where: str, index: int, trace_start: float, app: str | None, tenant: str | None
) -> tuple[Step, Any, Any]:
    key = opt_str(o, "id", f"{where}.id", limit=500) or f"#{index}"
    parent = o.get("parentObservationId")
    if parent is not None and not isinstance(parent, str):
        raise Bad(f"{where}.parentObservationId", "must be a text (the id of the parent observation)")
    obs_type = opt_str(o, "type", f"{where}.type") or "SPAN"
    kind: SpanKind = otlp_conventions.KINDS.get(obs_type.lower(), "other")
    started = trace_start if o.get("startTime") is None else time_of(o["startTime"], f"{where}.startTime")
    ended = None if o.get("endTime") is None else max(started, time_of(o["endTime"], f"{where}.endTime"))
    if ended is None and obs_type.upper() == "EVENT":
        ended = started  # an event is a point in time
    level = opt_str(o, "level", f"{where}.level")
    status = opt_str(o, "statusMessage", f"{where}.statusMessage", limit=20_000)
    error = (status or "error") if level == "ERROR" else None
    attrs: dict[str, Any] = {
        "flywheel.imported": True,
        "langfuse.observation.id": key,
        "langfuse.observation.type": obs_type,
    }
    if level not in (None, "DEFAULT"):
        attrs["langfuse.observation.level"] = level
    if status and not error:
        attrs["langfuse.observation.status_message"] = status
    model = opt_str(o, "model", f"{where}.model") or opt_str(
        o, "providedModelName", f"{where}.providedModelName"
    )
    tokens = _tokens(o, where)
    cost = _cost(o, where)
    for name, value in (
        ("gen_ai.request.model", model),
        ("gen_ai.usage.input_tokens", tokens[0]),
        ("gen_ai.usage.output_tokens", tokens[1]),
        ("flywheel.cost_usd", cost),
    ):
        # (a span's usage is all zeros in Langfuse's API: only model calls and real figures are kept)
        if value is not None and (kind in _MODEL_KINDS or value):
            attrs[name] = value
    if kind == "llm":
        attrs["gen_ai.operation.name"] = "chat"
    if o.get("promptName"):
        attrs["flywheel.prompt.name"] = opt_str(o, "promptName", f"{where}.promptName")
        attrs["flywheel.prompt.version"] = opt_str(o, "promptVersion", f"{where}.promptVersion")
    if o.get("completionStartTime") is not None:
        first = time_of(o["completionStartTime"], f"{where}.completionStartTime")
        attrs["langfuse.observation.time_to_first_token_ms"] = round(max(0.0, first - started) * 1000.0, 3)
    metadata = _metadata(o.get("metadata"))
    if metadata:
        attrs["flywheel.metadata"] = metadata
    if app:
        attrs["flywheel.app"] = app
    if tenant:
        attrs["flywheel.tenant"] = tenant
    raw_in, raw_out = _decoded(o.get("input")), _decoded(o.get("output"))
    if kind == "llm":
        params = _decoded(o.get("modelParameters"))
        inputs: Any = (
            None
            if raw_in is None and not params
            else {
                "messages": _messages(raw_in) if raw_in is not None else [],
                "params": params if isinstance(params, dict) else {},
            }
        )
        outputs: Any = _llm_answer(raw_out)
    else:
        inputs, outputs = raw_in, raw_out
    step = Step(
        key=key,
        parent=parent,
        name=opt_str(o, "name", f"{where}.name") or obs_type.lower(),
        kind=kind,
        started=started,
        ended=ended,
        inputs=inputs,
        outputs=outputs,
        error=error,
        attributes=attrs,
    )
    return step, raw_in, raw_out


def _tokens(o: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    """(input, output) tokens: `usageDetails` sums its `input*` and `output*` keys (Langfuse splits cached and
    reasoning tokens off as `input_cached_tokens`, `output_reasoning_tokens` …); else `usage`
    (`input`/`output`, or the legacy `promptTokens`/`completionTokens`)."""
    details = _decoded(o.get("usageDetails"))
    if details is not None and not isinstance(details, dict):
        raise Bad(f"{where}.usageDetails", "must be an object")
    out: list[int | None] = [None, None]
    if details:
        for key, value in details.items():
            side = 0 if key.startswith("input") else 1 if key.startswith("output") else None
            n = opt_num(value, f"{where}.usageDetails.{key}", integer=True) if side is not None else None
            if side is not None and n is not None:
                out[side] = (out[side] or 0) + n
        if out != [None, None]:
            return out[0], out[1]
    usage = o.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise Bad(f"{where}.usage", "must be an object")
    for side, keys in enumerate(
        (
            ("input", "promptTokens", "prompt_tokens", "input_tokens"),
            ("output", "completionTokens", "completion_tokens", "output_tokens"),
        )
    ):
        key = next((k for k in keys if (usage or {}).get(k) is not None), None)
        if key is not None:
            out[side] = opt_num((usage or {})[key], f"{where}.usage.{key}", integer=True)
    return out[0], out[1]


def _cost(o: dict[str, Any], where: str) -> float | None:
    """USD: `costDetails.total` (else its parts summed), else `calculatedTotalCost`, `totalCost` (the UI's)
    or `usage.totalCost`."""
    details = _decoded(o.get("costDetails"))
    if isinstance(details, dict) and details:
        if details.get("total") is not None:
            return float(opt_num(details["total"], f"{where}.costDetails.total"))
        parts = [opt_num(v, f"{where}.costDetails.{k}") for k, v in details.items()]
        if any(p is not None for p in parts):
            return float(sum(p for p in parts if p is not None))
    for key in ("calculatedTotalCost", "totalCost"):
        if o.get(key) is not None:
            return float(opt_num(o[key], f"{where}.{key}"))
    usage: dict[str, Any] = o["usage"] if isinstance(o.get("usage"), dict) else {}
    if usage.get("totalCost") is not None:
        return float(opt_num(usage["totalCost"], f"{where}.usage.totalCost"))
    return None


def _decoded(value: Any) -> Any:
    """A value Langfuse kept as JSON text (an object, a list or a quoted string), decoded; else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _metadata(value: Any) -> dict[str, Any]:
    """Metadata as an object (Langfuse takes any JSON there: a text or a list is kept under `value`)."""
    value = _decoded(value)
    return {} if value is None else value if isinstance(value, dict) else {"value": value}


def _messages(value: Any) -> list[dict[str, Any]]:
    """Chat messages from any input: a message list (their other fields, such as `tool_calls`, kept), a
    `{"messages"}` request, a text; anything else as one user message of its JSON."""
    if isinstance(value, dict) and value and set(value) <= {"args", "kwargs"}:
        value = _call_argument(value)  # an @observe'd function's input
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in value)
    ):
        return [{**m, "content": _answer_text(m.get("content")) or ""} for m in value]
    try:
        return chat_messages(value, "input")
    except Bad:
        return [{"role": "user", "content": json.dumps(value, ensure_ascii=False)}]


def _call_argument(value: dict[str, Any]) -> Any:
    """The one argument of a decorated function's input (`{"args": ["…"], "kwargs": {}}`, as Langfuse's
    `@observe` records it); the input as it is when the call had several."""
    args, kwargs = value.get("args") or [], value.get("kwargs") or {}
    if isinstance(args, list) and isinstance(kwargs, dict) and len(args) + len(kwargs) == 1:
        return args[0] if args else next(iter(kwargs.values()))
    return value


def _answer_text(value: Any) -> str | None:
    try:
        return output_text(value, "output")
    except Bad:  # a number, a boolean: any JSON is a valid Langfuse output
        return json.dumps(value, ensure_ascii=False)


def _llm_answer(value: Any) -> Any:
    """A generation's output as flywheel's model spans keep it: the text, or `{"content", "tool_calls"}` when
    the model asked for tools (from a message, a list of messages or an OpenAI completion)."""
    if isinstance(value, dict) and isinstance(value.get("choices"), list) and value["choices"]:
        choice = value["choices"][0]
        value = choice.get("message", choice) if isinstance(choice, dict) else choice
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        value = value[-1]
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list) and value["tool_calls"]:
        return {"content": _answer_text(value.get("content")) or "", "tool_calls": value["tool_calls"]}
    return _answer_text(value)
