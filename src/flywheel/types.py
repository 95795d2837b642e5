"""The records every layer speaks. Pydantic models, no behaviour beyond small helpers."""

from __future__ import annotations

import hashlib
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
SpanKind = Literal["app", "llm", "retrieval", "guard", "cache", "tool", "eval", "embedding", "other"]


def content_hash(*parts: str, n: int = 16) -> str:
    """Stable short id from content (sha256 hex prefix)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:n]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- model calls


class Message(Record):
    role: Role
    content: str = ""
    name: str | None = None
    # OpenAI wire shapes: an assistant turn asking for tools carries `tool_calls`
    # ([{id, type: "function", function: {name, arguments (a JSON string)}}]); a `tool` turn answers one by
    # `tool_call_id`, its result in `content`.
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


_NO_OP = {"top_p": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0}


class ChatRequest(Record):
    messages: list[Message]
    model: str = "default"  # an alias from flywheel.yaml
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI function tools: [{type: "function", function: {name, …}}]
    tool_choice: str | dict[str, Any] | None = None  # auto | none | required | {type: function, function: {name}}
    timeout: float | None = None  # seconds, overrides the alias default
    metadata: dict[str, Any] = Field(default_factory=dict)  # tenant, app, prompt version, cache directives
    n: int = 1  # choices wanted (OpenAI `n`, 1..16): one request where the provider takes `n`, else n requests
    parallel_tool_calls: bool | None = None  # OpenAI's; Anthropic: tool_choice.disable_parallel_tool_use
    # OpenAI's: the answer tokens' log-probabilities, with `top_logprobs` (0..20) alternatives each; providers
    # that cannot return them refuse the request (gateway/logprobs.py)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # sampling: each reaches the providers whose API takes it and is dropped for the others (docs/gateway.md,
    # "Sampling parameters"); all but `user` are part of the exact cache key
    top_p: float | None = None
    top_k: int | None = None  # Anthropic's; OpenAI-compatible and Azure aliases drop it (OpenAI refuses it)
    seed: int | None = None  # OpenAI's best-effort determinism; Anthropic has none
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    user: str | None = None  # the end user (OpenAI `user`, Anthropic `metadata.user_id`): never a cache key part

    def sampling(self, name: str) -> Any:
        """The value of sampling parameter `name` to send or key on: None when unset or the APIs' own no-op
        default (top_p 1, penalties 0) — clients that always send those must not reach a reasoning model that
        refuses the field (o-series, gpt-5), nor split the cache from clients that leave them out."""
        value = getattr(self, name)
        return None if name in _NO_OP and value == _NO_OP[name] else value

    @classmethod
    def of(cls, text: str, *, system: str | None = None, **kw: Any) -> ChatRequest:
        msgs = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=text)]
        return cls(messages=msgs, **kw)

    def last_user(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""


class Usage(Record):
    """Tokens of one call. `input_tokens` counts every input token, cached or not (OpenAI's `prompt_tokens`;
    Anthropic's and Bedrock's uncached input plus their cache reads and writes); `cache_read_tokens` and
    `cache_write_tokens` are the part of them the provider served from, or wrote to, its prompt cache, which
    `price.cache_read` / `price.cache_write` price. `reasoning_tokens` is the part of `output_tokens` a reasoning
    model spent thinking (OpenAI's `completion_tokens_details.reasoning_tokens`; Anthropic counts thinking in its
    output tokens without a separate number, so 0 there); it is billed as output."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


class Choice(Record):
    """One of the n answers of a request with n > 1."""

    text: str
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None  # as ChatResult.logprobs
    reasoning: str | None = None  # what the model thought before this answer (as ChatResult.reasoning)


class ChatResult(Record):
    text: str
    alias: str  # what the caller asked for
    model: str  # the resolved provider model that answered, with pinned version when known
    provider: str
    usage: Usage = Field(default_factory=Usage)  # all attempts, failed included
    cost_usd: float = 0.0  # all attempts, failed included
    latency_ms: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None
    trace_id: str | None = None
    cached: bool = False
    raw: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{id, type: "function", function: {name, arguments}}]
    choices: list[Choice] | None = None  # every choice of an n > 1 request (`text` is the first); None for n = 1
    # the answer's tokens when the request asked for `logprobs` (OpenAI `choices[].logprobs.content`): each
    # {token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}
    logprobs: list[dict[str, Any]] | None = None
    # what a reasoning model thought before answering (an OpenAI-compatible upstream's `reasoning_content` /
    # `reasoning`, a leading <think>…</think> taken out of the text, or Anthropic's thinking blocks); never part
    # of `text`; with n > 1, the first choice's (each choice has its own on `Choice.reasoning`)
    reasoning: str | None = None
    # False when the attempt that answered got no token usage from its upstream (a server that ignores
    # `stream_options.include_usage`, such as llama-cpp-python's): its tokens are counted 0, not estimated
    usage_reported: bool = True


class StreamChunk(Record):
    delta: str
    finish_reason: str | None = None
    usage: Usage | None = None  # present on the final chunk when the provider reports it
    # OpenAI `delta.tool_calls` pieces: [{index, id?, type?, function: {name?, arguments (a fragment)}}]
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None  # the tokens of this delta, as ChatResult.logprobs
    reasoning: str | None = None  # a piece of the model's reasoning (ChatResult.reasoning), never in `delta`


# ---------------------------------------------------------------- retrieval


class Document(Record):
    id: str  # content hash
    text: str
    source: str  # path or URL
    title: str | None = None
    tenant: str = "default"
    metadata: dict[str, Any] = Field(default_factory=dict)  # page, heading path, user fields


class Chunk(Record):
    id: str  # content hash of (doc_id, text)
    doc_id: str
    text: str
    source: str
    tenant: str = "default"
    location: str | None = None  # "page 3", "Install > Linux"
    ordinal: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)


class Hit(Record):
    chunk: Chunk
    score: float  # fused score
    ranks: dict[str, int | None] = Field(default_factory=dict)  # {"bm25": 1, "dense": 4}
    scores: dict[str, float] = Field(default_factory=dict)


class Citation(Record):
    id: int  # the [n] used in the answer
    chunk_id: str
    source: str
    text: str
    location: str | None = None


# ---------------------------------------------------------------- checks, evals, feedback


class CheckResult(Record):
    passed: bool
    score: float  # 0..1
    reason: str = ""
    spec: str = ""  # stable hash of the check definition
    name: str = ""
    error: str | None = None  # the check itself failed to run
    details: dict[str, Any] = Field(default_factory=dict)


class Case(Record):
    id: str
    vars: dict[str, Any] = Field(default_factory=dict)
    reference: str | None = None
    checks: list[Any] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Feedback(Record):
    trace_id: str
    kind: Literal["thumbs", "score", "label", "comment", "correction", "implicit"] = "thumbs"
    value: Any = None
    comment: str | None = None
    user: str | None = None
    created_at: float = Field(default_factory=time.time)


# ---------------------------------------------------------------- tracing


class Span(Record):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    span_id: str
    trace_id: str
    parent_id: str | None = None
    name: str
    kind: SpanKind = "other"
    start_ns: int = 0
    end_ns: int | None = None
    inputs: Any = None
    outputs: Any = None
    output_state: Literal["ok", "empty", "missing"] = "missing"
    error: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @property
    def latency_ms(self) -> float | None:
        return None if self.end_ns is None else (self.end_ns - self.start_ns) / 1e6


RefusalKind = Literal["no_passage", "model_declined", "guard_blocked"]
CacheStatus = Literal["off", "miss", "exact", "semantic", "item"]  # off: no cache configured or bypassed


class Source(Record):
    """A passage the answer was built from (every retrieved source, cited or not)."""

    n: int  # its [n] in the prompt
    chunk_id: str
    source: str
    location: str | None = None
    text: str
    score: float = 0.0
    cited: bool = False


class GuardAction(Record):
    """What one guard did during a run."""

    stage: Literal["input", "sources", "output"]
    check: str
    action: str  # the on_fail action taken (block, redact, fix, reask, fallback, refrain, log, drop) or "pass"
    passed: bool
    reason: str = ""


class Answer(Record):
    """Everything a caller (CLI, server, evals) needs to know about one app run. Nobody listens on the tracer
    to find out what happened: it is all here."""

    text: str
    citations: list[Citation] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    trace_id: str | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    refused: bool = False  # the app said it does not know / the model declined / a guard blocked
    refusal: RefusalKind | None = None  # why, when refused
    usage: Usage = Field(default_factory=Usage)  # every model call of the run: retries, re-asks, judges
    cost_usd: float = 0.0  # every model call of the run: retries, re-asks and judge calls included
    models: dict[str, str] = Field(default_factory=dict)  # alias -> pinned provider model/version used
    prompt_version: str | None = None
    cache: CacheStatus = "off"
    guard_actions: list[GuardAction] = Field(default_factory=list)
    app: str | None = None
    latency_ms: float = 0.0
