"""The OpenAI chat and legacy-completions wire shapes for openai_proxy.py: the request bodies (validated as OpenAI
validates them: unknown fields refused), their translation to a flywheel `ChatRequest`, and the response objects
(`chat.completion` / `text_completion`, usage, log-probabilities) built from an answer. No routing here."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from flywheel.gateway import logprobs as gateway_logprobs
from flywheel.gateway.providers.base import trusted
from flywheel.server import calls
from flywheel.server.errors import ApiError
from flywheel.types import Answer, ChatRequest, Message, Usage

# ChatRequest's defaults, for building one from an already-validated body without validating it again
_REQUEST_DEFAULTS = {name: f.get_default(call_default_factory=True) for name, f in ChatRequest.model_fields.items()
                     if not f.is_required()}
LEGACY = "/v1/completions"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "stop": "stop", "max_tokens": "length",
          "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls"}


# `stream: null` is "not streamed": the OpenAI API types it nullable (the openai SDK's own signature takes
# `stream=None`), as do the Responses and legacy completions bodies; the Messages wire takes it the same way
NullableFlag = Annotated[bool, BeforeValidator(lambda v: False if v is None else v)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    # an earlier answer's thinking, sent back with it (`messages.append(choice.message)`): accepted and dropped, as
    # DeepSeek advises; no model is sent its earlier reasoning (an Anthropic one would refuse it unsigned).
    # `reasoning_details` is OpenRouter's structured (and encrypted) form of it
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    # what else the openai SDK sends back with an appended ChatCompletionMessage (the fields its provider
    # answered): `annotations` (url citations of a web-search answer) are dropped; `audio` and the legacy
    # `function_call` only as null (to_messages refuses a value: text only, tool calls in `tool_calls`)
    annotations: list[dict[str, Any]] | None = None
    audio: dict[str, Any] | None = None
    function_call: dict[str, Any] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionIn(BaseModel):
    """The OpenAI chat-completions body. `top_p`, `seed`, `frequency_penalty`, `presence_penalty` and `user` reach
    the provider where its API takes them; parameters the gateway has no use for (logit_bias, store …) are
    accepted and ignored, as OpenAI-compatible servers commonly do."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: NullableFlag = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=16)
    user: str | None = Field(default=None, max_length=256)
    metadata: dict[str, str] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=gateway_logprobs.MAX_TOP_LOGPROBS)
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    verbosity: str | None = None
    modalities: list[str] | None = None
    # OpenAI parameters taken as absent when null (clients send them so); a value: refused by name in
    # openai_proxy.refuse_unsupported, except `prediction` (Predicted Outputs, a latency hint: accepted and ignored)
    audio: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None


class CompletionIn(BaseModel):
    """The legacy text-completions body (POST /v1/completions: LlamaIndex's `OpenAILike` and other completion-model
    clients use it), answered as a chat with the prompt as the user message."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: NullableFlag = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=16)
    user: str | None = Field(default=None, max_length=256)
    suffix: str | None = None
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=gateway_logprobs.MAX_TOP_LOGPROBS)
    best_of: int | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    logit_bias: dict[str, float] | None = None

    def prompts(self) -> list[str]:
        """The prompt texts: one, or several (LangChain's completion-model `OpenAI.batch` / `generate` send a list)."""
        given = [self.prompt] if isinstance(self.prompt, str) else self.prompt
        if not given or not all(isinstance(p, str) for p in given):
            raise ApiError(400, "`prompt` must be text, a string or a list of strings (token ids are not supported)",
                           param="prompt", code="unsupported_value")
        if len(given) > 1 and self.stream:
            raise ApiError(400, "several prompts cannot be streamed in one request; send one request per prompt",
                           param="prompt", code="unsupported_value")
        return given  # type: ignore[return-value]

    def as_chat(self, prompt: str) -> ChatCompletionIn:
        for name in ("suffix", "echo"):
            if getattr(self, name) not in (None, False):
                raise ApiError(400, f"`{name}` is not supported on /v1/completions", param=name,
                               code="unsupported_parameter")
        return ChatCompletionIn.model_construct(
            model=self.model, messages=[ChatMessageIn.model_construct(role="user", content=prompt, name=None,
                                                                      tool_calls=None, tool_call_id=None)],
            **{k: getattr(self, k) for k in ("stream", "stream_options", "temperature", "max_tokens", "stop", "n",
                                             "user", "top_p", "seed", "frequency_penalty", "presence_penalty")},
            logprobs=True if self.logprobs is not None else None, top_logprobs=self.logprobs or None,
            **{k: None for k in ("max_completion_tokens", "metadata", "response_format", "tools", "tool_choice",
                                 "modalities", "parallel_tool_calls")})


def text_of(content: str | list[ContentPart] | None, param: str) -> str:
    """A message's content as the one text a flywheel Message holds: text parts joined with a newline, as vLLM
    flattens them for a chat template (joined with "", "part one" + "part two" reached the model as
    "part onepart two"). One part is its text unchanged, so `"hi"` and `[{"type": "text", "text": "hi"}]` are the
    same request (the same cache key and trace input)."""
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for i, part in enumerate(content):
        if part.type not in ("text", "input_text") or part.text is None:
            raise ApiError(400, f"content part type {part.type!r} is not supported (text only)",
                           param=f"{param}.{i}.type", code="unsupported_content")
        parts.append(part.text)
    return "\n".join(parts)


def to_messages(messages: list[ChatMessageIn]) -> list[Message]:
    out = []
    for i, m in enumerate(messages):
        role = "system" if m.role == "developer" else m.role
        if m.role == "tool" and not m.tool_call_id:
            raise ApiError(400, "a tool message needs the `tool_call_id` it answers", param=f"messages.{i}",
                           code="invalid_value")
        if m.function_call is not None:
            raise ApiError(400, "`function_call` (legacy function calling) is not supported: send the call in "
                           "`tool_calls` and its result as a `tool` message", param=f"messages.{i}.function_call",
                           code="unsupported_parameter")
        if m.audio is not None:
            raise ApiError(400, "`audio` (a reference to an earlier audio answer) is not supported: send the "
                           "answer's text as `content`", param=f"messages.{i}.audio", code="unsupported_parameter")
        # already validated as ChatMessageIn: built without a second validation pass (the per-request hot path)
        out.append(trusted(Message, {
            "role": role, "content": text_of(m.content, f"messages.{i}.content"), "name": m.name,
            "tool_calls": (m.tool_calls or None) if m.role == "assistant" else None,
            "tool_call_id": m.tool_call_id if m.role == "tool" else None}))
    return out


def chat_request(body: ChatCompletionIn, tenant: str, session: str | None = None) -> ChatRequest:
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    meta = calls.request_metadata(tenant, body.user, session, body.metadata)
    for i, tool in enumerate(body.tools or ()):
        fn = tool.get("function")
        if tool.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise ApiError(400, "a tool must be {type: function, function: {name, description?, parameters?}}",
                           param=f"tools.{i}", code="invalid_value")
    return trusted(ChatRequest, {
        **_REQUEST_DEFAULTS, "messages": to_messages(body.messages), "model": body.model,
        "temperature": body.temperature, "max_tokens": body.max_completion_tokens or body.max_tokens,
        "stop": stop or None, "response_format": body.response_format, "tools": body.tools or None,
        "tool_choice": body.tool_choice, "metadata": meta, "n": body.n or 1,
        "parallel_tool_calls": body.parallel_tool_calls, "logprobs": body.logprobs, "top_logprobs": body.top_logprobs,
        "top_p": body.top_p, "seed": body.seed, "frequency_penalty": body.frequency_penalty,
        "presence_penalty": body.presence_penalty, "user": body.user})


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object; `prompt_tokens_details.cached_tokens` is the part of the prompt the provider served
    from its prompt cache (OpenAI's cached tokens, Anthropic's cache reads); `completion_tokens_details
    .reasoning_tokens`, the part of the completion a reasoning model spent thinking, only when the upstream
    reported some."""
    out: dict[str, Any] = {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                           "total_tokens": usage.input_tokens + usage.output_tokens,
                           "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def _message(text: str, tool_calls: list[dict[str, Any]] | None, reasoning: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": text or None if tool_calls else text, "refusal": None}
    if reasoning:  # DeepSeek's field for what a reasoning model thought (this choice's)
        out["reasoning_content"] = reasoning
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def chat_logprobs(tokens: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """A chat choice's (or chunk's) `logprobs` field from the answer's tokens."""
    return {"content": tokens, "refusal": None} if tokens else None


def legacy_logprobs(tokens: list[dict[str, Any]] | None, offset: int = 0) -> dict[str, Any] | None:
    """A text completion's `logprobs` field ({tokens, token_logprobs, top_logprobs, text_offset}) from a chat
    answer's tokens; `offset` is where the first token starts in the completion's text."""
    if not tokens:
        return None
    offsets = []
    for t in tokens:
        offsets.append(offset)
        offset += len(t.get("token") or "")
    return {"tokens": [t.get("token") for t in tokens], "token_logprobs": [t.get("logprob") for t in tokens],
            "top_logprobs": [{a.get("token"): a.get("logprob") for a in t.get("top_logprobs") or ()} for t in tokens],
            "text_offset": offsets}


# one choice of an answer: (text, finish reason, tool calls, tokens with their log-probabilities)
Picked = tuple[str, str | None, Any, list[dict[str, Any]] | None]


def completion(call: calls.Call, model: str, choices: list[Picked], usage: Usage,
               extra: dict[str, Any], reasoning: list[str | None] | None = None) -> dict[str, Any]:
    """The completion body; `reasoning`: each choice's reasoning, in the choices' order (None: none)."""
    thought = list(reasoning or [])
    thought += [None] * (len(choices) - len(thought))
    if call.route == LEGACY:  # a text completion: `text` where a chat has `message`
        return {"id": f"cmpl-{call.trace_id}", "object": "text_completion", "created": int(time.time()),
                "model": model, "choices": [{"index": i, "text": text, "logprobs": legacy_logprobs(lp),
                                             "finish_reason": FINISH.get(fr or "stop", "stop")}
                                            for i, (text, fr, _, lp) in enumerate(choices)],
                "usage": usage_json(usage), "flywheel": {"trace_id": call.trace_id, **extra}}
    return {
        "id": f"chatcmpl-{call.trace_id}", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": i, "message": _message(text, tools, thought[i]),
                     "logprobs": chat_logprobs(lp),
                     "finish_reason": "tool_calls" if tools else FINISH.get(fr or "stop", "stop")}
                    for i, (text, fr, tools, lp) in enumerate(choices)],
        "usage": usage_json(usage), "system_fingerprint": None,
        "flywheel": {"trace_id": call.trace_id, **extra},
    }


def answer_extra(answer: Answer) -> dict[str, Any]:
    return {"app": answer.app, "refused": answer.refused, "refusal": answer.refusal, "cache": answer.cache,
            "cost_usd": answer.cost_usd, "models": answer.models,
            "citations": [c.model_dump() for c in answer.citations]}

