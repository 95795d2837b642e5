"""LangSmith's runs, read as OTLP spans (`flywheel traces import --format langsmith`).

A LangSmith export is its runs, one per line (`runs.jsonl`: `client.list_runs(...)`, each run's JSON) or one JSON
array of them: `{id, name, run_type, start_time, end_time, inputs, outputs, error, extra: {metadata,
invocation_params}, parent_run_id, trace_id, dotted_order, tags, prompt_tokens, completion_tokens, total_tokens,
total_cost, …}`. Each run becomes the OpenInference OTLP span it stands for, read by the same reader as `--format
otlp` (import_otlp): `run_type` is its kind (llm, chain, tool, retriever, embedding; prompt and parser: other),
the trace is its `trace_id`, a run's span id derives from its id (the same run in two exports is one span),
inputs and outputs are LangChain's serialised messages or generations turned into chat messages (`{"role",
"content"}`, tool calls as OpenAI `tool_calls`), an OpenAI request / completion (`wrap_openai`) or a function's
arguments and result as they are; model from `ls_model_name` or the invocation parameters, tokens and cost from
the run's own counts, session from `metadata.session_id` / `thread_id` / `conversation_id`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flywheel.tracing.import_fields import Bad, otlp_kvs, time_of

_KINDS = {"llm": "LLM", "chain": "CHAIN", "tool": "TOOL", "retriever": "RETRIEVER", "embedding": "EMBEDDING",
          "prompt": "CHAIN", "parser": "CHAIN"}
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool",
          "HumanMessage": "user", "AIMessage": "assistant", "SystemMessage": "system", "ToolMessage": "tool",
          "AIMessageChunk": "assistant", "HumanMessageChunk": "user", "FunctionMessage": "tool"}
_SESSION_KEYS = ("session_id", "thread_id", "conversation_id")


def is_run(obj: Any) -> bool:
    return isinstance(obj, dict) and "run_type" in obj and "id" in obj and (
        "trace_id" in obj or "dotted_order" in obj or "parent_run_id" in obj)


def to_request(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The OTLP request holding the run(s) of one JSON value (a run, or `{"runs": [...]}`); else None. A bad
    field raises import_fields.Bad naming it."""
    runs = obj["runs"] if isinstance(obj.get("runs"), list) else [obj]
    if not runs or not all(is_run(r) for r in runs):
        return None
    return {"resourceSpans": [{"scopeSpans": [{"spans": [_span(r) for r in runs]}]}]}


def _id(value: Any, name: str) -> str:
    text = str(value or "").replace("-", "").lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise Bad(name, "a run id is a UUID")
    return text


def _span_id(run_id: Any, name: str) -> str:
    return hashlib.sha256(_id(run_id, name).encode()).hexdigest()[:16]


def _span(run: dict[str, Any]) -> dict[str, Any]:
    extra = _obj(run.get("extra"))
    meta, params = _obj(extra.get("metadata")), _obj(extra.get("invocation_params"))
    outputs = run.get("outputs")
    llm_output = outputs.get("llm_output") if isinstance(outputs, dict) else None
    model = (meta.get("ls_model_name") or params.get("model") or params.get("model_name")
             or (llm_output.get("model_name") if isinstance(llm_output, dict) else None))
    attrs: dict[str, Any] = {"openinference.span.kind": _KINDS.get(str(run.get("run_type")), "CHAIN"),
                             "langsmith.run_id": str(run["id"])}
    llm = run.get("run_type") == "llm"
    inputs = _inputs(run.get("inputs")) if llm else run.get("inputs")
    if run.get("run_type") == "chain" and isinstance(inputs, dict) and len(inputs) == 1:
        only = next(iter(inputs.values()))
        inputs = only if isinstance(only, str) else inputs  # (a chain of one text input: `{"q": "…"}` is the question)
    if inputs not in (None, {}):
        attrs["input.value"] = _encoded(inputs)
    answer = _outputs(outputs) if llm else _unwrapped(outputs)
    used = _usage(outputs) if llm else {}
    if answer is not None:
        attrs["output.value"] = _encoded(answer)
    for key, value in (("llm.model_name", model), ("llm.provider", meta.get("ls_provider")),
                       ("llm.token_count.prompt", run.get("prompt_tokens", used.get("input_tokens"))),
                       ("llm.token_count.completion", run.get("completion_tokens", used.get("output_tokens"))),
                       ("llm.token_count.total", run.get("total_tokens", used.get("total_tokens"))),
                       ("llm.cost.total", _number(run.get("total_cost"))),
                       ("session.id", next((meta[k] for k in _SESSION_KEYS if meta.get(k)), None)),
                       ("user.id", meta.get("user_id")), ("langsmith.tags", run.get("tags") or None)):
        if value is not None and value != "":
            attrs[key] = value
    error = run.get("error")
    end = run.get("end_time")
    return {
        "traceId": _id(run.get("trace_id") or run["id"], "trace_id"),
        "spanId": _span_id(run["id"], "id"),
        "parentSpanId": _span_id(run["parent_run_id"], "parent_run_id") if run.get("parent_run_id") else "",
        "name": str(run.get("name") or run.get("run_type") or "run")[:200],
        "startTimeUnixNano": _nanos(run.get("start_time"), "start_time"),
        "endTimeUnixNano": None if end is None else _nanos(end, "end_time"),
        "attributes": otlp_kvs(attrs),
        "status": {"code": 2, "message": str(error).strip().splitlines()[-1][:2000] if str(error).strip() else ""}
        if error else {"code": 0},
    }


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _encoded(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _nanos(value: Any, name: str) -> str:
    return str(round(time_of(value, name) * 1e9))  # (LangSmith's times are UTC without an offset: read so)


def _number(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)  # (a Decimal may come as text)
    except (TypeError, ValueError):
        return None




def _inputs(value: Any) -> Any:
    """A model run's input as chat messages: LangChain's (`{"messages": [[message, …]]}`, serialised) or its
    prompts (`{"prompts": ["…"]}`); an OpenAI request (`{"messages": [{"role", …}]}`) as it is."""
    if not isinstance(value, dict):
        return value
    msgs = value.get("messages")
    if isinstance(msgs, list) and msgs and isinstance(msgs[0], list):
        msgs = msgs[0]  # (one list per prompt in the batch: the first)
    if isinstance(msgs, list) and msgs and all(isinstance(m, dict) for m in msgs) and "role" not in msgs[0]:
        return {"messages": [_message(m) for m in msgs]}
    prompts = value.get("prompts")
    if isinstance(prompts, list) and prompts and isinstance(prompts[0], str):
        return {"messages": [{"role": "user", "content": prompts[0]}]}
    return value


def _outputs(value: Any) -> Any:
    """A model run's answer: LangChain's generations as the answer message, an OpenAI completion as it is."""
    if not isinstance(value, dict) or not isinstance(value.get("generations"), list):
        return value
    gens = value["generations"]
    first = gens[0][0] if gens and isinstance(gens[0], list) and gens[0] else (gens[0] if gens else None)
    if not isinstance(first, dict):
        return value
    if isinstance(first.get("message"), dict):
        return [_message(first["message"])]
    return [{"role": "assistant", "content": first.get("text")}]


def _usage(outputs: Any) -> dict[str, Any]:
    """A model run's token counts from its answer (what LangSmith counts from when the run has none of its own):
    the message's `usage_metadata`, else `llm_output.token_usage`."""
    if not isinstance(outputs, dict):
        return {}
    gens = outputs.get("generations")
    first = gens[0][0] if isinstance(gens, list) and gens and isinstance(gens[0], list) and gens[0] else None
    message = first.get("message") if isinstance(first, dict) else None
    body = message.get("kwargs", message) if isinstance(message, dict) else {}
    if isinstance(body, dict) and isinstance(body.get("usage_metadata"), dict):
        return body["usage_metadata"]
    llm_output = outputs.get("llm_output")
    usage = llm_output.get("token_usage") if isinstance(llm_output, dict) else None
    if isinstance(usage, dict):
        return {"input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens"),
                "total_tokens": usage.get("total_tokens")}
    return {}


def _unwrapped(value: Any) -> Any:
    """A chain's or a tool's output: `{"output": x}` is x, and a message (LangChain's `{"content", "type"}`) its
    content."""
    if isinstance(value, dict) and set(value) == {"output"}:
        value = value["output"]
    if isinstance(value, dict) and "content" in value and value.get("type") in ("ai", "AIMessage", "AIMessageChunk"):
        return value["content"]
    return value


def _message(m: dict[str, Any]) -> dict[str, Any]:
    """A LangChain message (serialised `{"lc", "id": […, "HumanMessage"], "kwargs"}`, or `{"type", "data"}`)
    as a chat message, its tool calls as OpenAI `tool_calls`."""
    body = _obj(m.get("kwargs")) or _obj(m.get("data")) or m
    ids = m.get("id")
    kind = ids[-1] if isinstance(ids, list) and ids else body.get("type") or m.get("type")
    out: dict[str, Any] = {"role": _ROLES.get(str(kind), str(kind or "user")), "content": _text(body.get("content"))}
    calls = body.get("tool_calls")
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [{"id": c.get("id"), "type": "function", "function": {
            "name": c.get("name"), "arguments": json.dumps(c.get("args") or {}, ensure_ascii=False)}}
            for c in calls if isinstance(c, dict)]
    if body.get("tool_call_id"):
        out["tool_call_id"] = body["tool_call_id"]
    return out


def _text(content: Any) -> Any:
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [p.get("text") for p in content if p.get("type") == "text" and isinstance(p.get("text"), str)]
        return "".join(texts) if texts else content
    return content
