"""One table from the attributes other instrumentation SDKs send to flywheel's span fields.

Spans received over OTLP come from OpenTelemetry's GenAI instrumentations, OpenLLMetry (`traceloop-sdk` and
its `opentelemetry-instrumentation-*` packages, current and pre-0.50 attribute names), OpenInference, Langfuse
(v3+, `langfuse.observation.*`), OpenLIT, Pydantic Logfire, Pydantic AI (`pydantic_ai.all_messages`,
`final_result`), MLflow tracing (`mlflow.*`, every value JSON-encoded) and the Vercel AI SDK's telemetry (`ai.*`:
`ai.model.id`, `ai.usage.inputTokens` or the older `promptTokens`, `ai.operationId` for the kind; its prompts and
answers are read in genai_content). Each names the same facts differently; `normalise` writes them under the one
name flywheel reads (the store's columns: model, tokens, cost, session and user ids), `kind` picks the span kind, and `CONTENT_KEYS` / `is_content_key` say which attributes carry prompt or answer text:
that text is lifted into the span's inputs/outputs (see genai_content) and not kept twice in its attributes,
so `tracing.capture_content: false` keeps it out of the store.

A key the sender already set under flywheel's name wins; otherwise the first source present in the table.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flywheel.types import SpanKind

# flywheel's attribute <- the other SDKs' names for it, first present wins
ALIASES: dict[str, tuple[str, ...]] = {
    "gen_ai.request.model": ("llm.model_name", "langfuse.observation.model.name", "gen_ai.model",
                             "mlflow.llm.model", "mlflow.spanInputs.model",
                             "ai.model.id"),  # (the request's, on a failed call)
    "gen_ai.response.model": ("ai.response.model",),
    "gen_ai.provider.name": ("gen_ai.system", "llm.provider", "llm.system", "mlflow.llm.provider"),
    "gen_ai.operation.name": ("llm.request.type",),  # OpenLLMetry before the GenAI names: chat, completion
    "gen_ai.usage.input_tokens": ("gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens", "llm.token_count.prompt",
                                  "langfuse.observation.usage_details.input",
                                  "langfuse.observation.usage_details.prompt_tokens",
                                  "mlflow.chat.tokenUsage.input_tokens", "ai.usage.inputTokens",
                                  "ai.usage.promptTokens", "ai.usage.tokens"),  # (AI SDK embeddings: `tokens`)
    "gen_ai.usage.output_tokens": ("gen_ai.usage.completion_tokens", "llm.usage.completion_tokens",
                                   "llm.token_count.completion", "langfuse.observation.usage_details.output",
                                   "langfuse.observation.usage_details.completion_tokens",
                                   "mlflow.chat.tokenUsage.output_tokens", "ai.usage.outputTokens",
                                   "ai.usage.completionTokens"),
    "gen_ai.usage.total_tokens": ("llm.usage.total_tokens", "llm.token_count.total",
                                  "langfuse.observation.usage_details.total",
                                  "langfuse.observation.usage_details.total_tokens",
                                  "mlflow.chat.tokenUsage.total_tokens", "ai.usage.totalTokens"),
    # USD; OpenLIT's gen_ai.usage.cost, OpenInference's llm.cost.total, Langfuse's cost_details.total, MLflow's
    "flywheel.cost_usd": ("gen_ai.usage.cost", "llm.cost.total", "langfuse.observation.cost_details.total",
                          "mlflow.llm.cost.total_cost"),
    "flywheel.session_id": ("session.id", "gen_ai.conversation.id", "traceloop.association.properties.session_id",
                            "langfuse.session.id", "ai.telemetry.metadata.sessionId"),
    "flywheel.user_id": ("user.id", "enduser.id", "traceloop.association.properties.user_id", "langfuse.user.id",
                         "ai.telemetry.metadata.userId"),  # (the AI SDK's `experimental_telemetry.metadata`)
    "gen_ai.tool.name": ("ai.toolCall.name",),
    "gen_ai.tool.call.id": ("ai.toolCall.id",),
    "gen_ai.request.temperature": ("langfuse.observation.model.parameters.temperature",
                                   "mlflow.spanInputs.temperature", "ai.settings.temperature"),
    "gen_ai.request.max_tokens": ("langfuse.observation.model.parameters.max_tokens", "mlflow.spanInputs.max_tokens",
                                  "ai.settings.maxOutputTokens", "ai.settings.maxTokens"),
    "gen_ai.request.top_p": ("langfuse.observation.model.parameters.top_p", "mlflow.spanInputs.top_p",
                             "ai.settings.topP"),
}
_NUMERIC = {"gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.total_tokens",
            "flywheel.cost_usd", "gen_ai.request.temperature", "gen_ai.request.max_tokens", "gen_ai.request.top_p"}
# attributes whose value is a JSON object: read as `key.field` (Langfuse sends usage, cost and parameters so,
# MLflow usage and cost)
JSON_OBJECTS = ("langfuse.observation.usage_details", "langfuse.observation.cost_details",
                "langfuse.observation.model.parameters", "mlflow.chat.tokenUsage", "mlflow.llm.cost",
                "mlflow.spanInputs")
# Logfire's scrubber replaces a value whose key looks sensitive (`session.id` matches "session") with this text:
# not an id, so it is dropped rather than grouping every trace into one session
_SCRUBBED = re.compile(r"^\[Scrubbed due to '[^']*'\]$")

# the span kind: the first of these attributes present, its value looked up (case-insensitively) below
KIND_KEYS = ("gen_ai.operation.name", "llm.request.type", "openinference.span.kind", "traceloop.span.kind",
             "langfuse.observation.type", "mlflow.spanType", "ai.operationId")
KINDS: dict[str, SpanKind] = {
    "chat": "llm", "text_completion": "llm", "completion": "llm", "generate_content": "llm", "llm": "llm",
    "generation": "llm", "embeddings": "embedding", "embedding": "embedding", "execute_tool": "tool",
    "tool": "tool", "retriever": "retrieval", "reranker": "retrieval", "guardrail": "guard",
    "evaluator": "eval", "chain": "other", "agent": "other", "workflow": "other", "task": "other",
    "span": "other", "event": "other", "chat_model": "llm", "parser": "other", "memory": "other",
    "unknown": "other",
    # the Vercel AI SDK (`ai.operationId`, lowercased): the provider call under each function is the model call,
    # the function itself (`ai.generateText`, `ai.embed` …, possibly several calls and tools) is not, as
    # OpenInference's mapping of these spans has it
    "ai.generatetext.dogenerate": "llm", "ai.streamtext.dostream": "llm", "ai.generateobject.dogenerate": "llm",
    "ai.streamobject.dostream": "llm", "ai.embed.doembed": "embedding", "ai.embedmany.doembed": "embedding",
    "ai.toolcall": "tool", "ai.rerank.dorerank": "retrieval",
}

# prompt / answer text (read by genai_content; generic values are unwrapped there)
# chat messages in the GenAI form: the model call's, else Pydantic AI's whole run on its agent span
INPUT_MESSAGES = ("gen_ai.input.messages", "pydantic_ai.all_messages")
INPUT_VALUES = ("input.value", "traceloop.entity.input", "langfuse.observation.input", "mlflow.spanInputs",
                "gen_ai.tool.call.arguments")
OUTPUT_VALUES = ("output.value", "traceloop.entity.output", "langfuse.observation.output", "mlflow.spanOutputs",
                 "gen_ai.tool.call.result", "final_result")
# the AI SDK's: prompts, answers, tool arguments and results, embedded texts (their vectors too: not kept)
AI_SDK_CONTENT = ("ai.prompt", "ai.prompt.messages", "ai.response.text", "ai.response.toolCalls",
                  "ai.response.object", "ai.response.reasoning", "ai.toolCall.args", "ai.toolCall.result",
                  "ai.value", "ai.values", "ai.embedding", "ai.embeddings", "ai.documents", "ai.ranking")
CONTENT_KEYS = frozenset({*INPUT_MESSAGES, "gen_ai.output.messages", "gen_ai.system_instructions",
                          "gen_ai.prompt", "gen_ai.completion", *INPUT_VALUES, *OUTPUT_VALUES, *AI_SDK_CONTENT})
_CONTENT_PATTERN = re.compile(r"^(gen_ai\.(prompt|completion)\.\d+\.(content|role|tool_calls\..*)"
                              r"|llm\.(input|output)_messages\.\d+\.message\.(content|role|contents\..*"
                              r"|tool_calls\..*))$")


def is_content_key(key: str) -> bool:
    """Whether the attribute carries prompt or answer text (lifted into inputs/outputs, not kept as attribute)."""
    return key in CONTENT_KEYS or bool(_CONTENT_PATTERN.match(key))


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    return None


def _flatten_json(attrs: dict[str, Any]) -> dict[str, Any]:
    """`key.field` views of the JSON-object attributes (not stored: only read through the table)."""
    out: dict[str, Any] = {}
    for key in JSON_OBJECTS:
        raw = attrs.get(key)
        try:
            obj = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.update({f"{key}.{k}": v for k, v in obj.items() if not isinstance(v, (dict, list))})
    return out


def _mlflow_decoded(attrs: dict[str, Any], sdk: str | None) -> dict[str, Any]:
    """An MLflow span's attributes with their values JSON-decoded (MLflow writes every value as JSON: a model
    name arrives as `"gpt-4o"` with its quotes; in its GenAI-conventions mode only its own `mlflow.*` names are
    gone, so the resource's `telemetry.sdk.name: mlflow` tells); other spans' as they are."""
    if sdk != "mlflow" and "mlflow.spanType" not in attrs and "mlflow.traceRequestId" not in attrs:
        return attrs
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


_ID_SOURCES = ("flywheel.session_id", "flywheel.user_id", *ALIASES["flywheel.session_id"],
               *ALIASES["flywheel.user_id"])


def normalise(attrs: dict[str, Any], sdk: str | None = None) -> dict[str, Any]:
    """`attrs` with flywheel's names filled in from the other SDKs' (the originals are kept, MLflow's decoded;
    a session or user id Logfire scrubbed is dropped). `sdk` is the resource's `telemetry.sdk.name`."""
    attrs = _mlflow_decoded(attrs, sdk)
    attrs = {k: v for k, v in attrs.items()
             if not (k in _ID_SOURCES and isinstance(v, str) and _SCRUBBED.match(v))}
    view = {**_flatten_json(attrs), **attrs}
    out = dict(attrs)
    for target, sources in ALIASES.items():
        if out.get(target) not in (None, ""):
            continue
        for source in sources:
            value = view.get(source)
            if target in _NUMERIC:
                value = _number(value)
            if value not in (None, ""):
                out[target] = value
                break
    return out


def kind(attrs: dict[str, Any]) -> SpanKind:
    """The kind from the first of KIND_KEYS whose value is known (an unknown one, such as `invoke_agent`,
    lets a later key decide), else `other`."""
    for key in KIND_KEYS:
        value = attrs.get(key)
        if isinstance(value, str) and value.lower() in KINDS:
            return KINDS[value.lower()]
    return "other"
