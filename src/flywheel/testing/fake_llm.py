"""A fake LLM: a real HTTP server on 127.0.0.1 speaking the OpenAI and Anthropic wire protocols.

Point any OpenAI-compatible client (``base_url=llm.base_url``) or the Anthropic SDK
(``base_url=llm.anthropic_base_url``) at it, script the answers, and inject faults::

    from flywheel.testing.fake_llm import FakeLLM, Fault

    with FakeLLM() as llm:
        llm.add(r"capital of France", "Paris.")
        llm.fail(Fault.RATE_LIMIT, times=2, retry_after=0.1)
        client = openai.OpenAI(base_url=llm.base_url, api_key="test")

Endpoints: ``POST /v1/chat/completions`` (also ``stream: true``, with ``stream_options.include_usage``),
``POST /v1/messages`` (Anthropic Messages, also streaming), ``POST /v1/embeddings`` (deterministic
pseudo-embeddings: texts sharing words are closer), ``GET /v1/models``; Azure OpenAI's routes (an alias with
``provider: azure`` and ``base_url: llm.url``, or ``llm.url + "/openai/v1"``) and Bedrock's Converse /
ConverseStream (``provider: bedrock``, ``base_url: llm.url``). Token counts follow the
simple deterministic tokenizer documented in :mod:`flywheel.testing.fake_llm_wire`. ``max_tokens`` cuts an answer
(``finish_reason: "length"``, ``stop_reason: "max_tokens"``); a stop sequence (OpenAI ``stop``, Anthropic
``stop_sequences``) ends it before the first one it contains (``"stop"``; ``stop_reason: "stop_sequence"`` with
``stop_sequence`` set).

A reply can also ask for tools: ``llm.add(r"weather", ToolCall("get_weather", {"city": "Paris"}))`` (or a list
of them) answers with tool calls on both wires, streamed too (only the first when the request says one at a time:
``parallel_tool_calls: false``, ``tool_choice.disable_parallel_tool_use``). The caller's tool result (an OpenAI ``tool``
message, an Anthropic ``tool_result`` block) counts as the last user message, so a second rule can match it::

    llm.add(r'"temp"', "It is 21 °C in Paris.")   # the tool returned {"temp": 21}

Several choices (OpenAI ``n``): each choice is answered on its own — a reply callable is called once per choice,
and ``Choices("42", "42", "41")`` hands its replies out in turn (cycling), the n choices of one request taking the
next n and successive requests the ones after, so one request with ``n=3`` and three requests get the same
answers. ``usage.completion_tokens`` sums the choices. (The Anthropic wire has no ``n``: one answer per request.)

Rules are tried in the order they were added; the first whose regex matches the last user message
(``re.search``, case-insensitive) and whose ``model`` (if given) equals the request's model answers.
Reply callables run on the thread serving that connection (one thread per connection).

``llm.requests`` lists the request bodies the server received and ``llm.injected`` the faults it injected (from
`fail` or `fault_rate`), in order. A test that wants to know whether faults happened should read ``injected``,
not infer it from ``len(requests)``: a client whose own timeout fires before its request reaches the server (an
event loop starved of CPU cannot even finish connecting) retries without the server seeing the first try, so the
request count rises and falls with the machine's load, not only with the faults.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple, Self

from flywheel.testing import fake_llm_wire as wire
from flywheel.testing.fake_llm_http import ServerThread
from flywheel.testing.fake_llm_wire import Scored, ToolCall

__all__ = ["Choices", "FakeLLM", "Fault", "FaultPlan", "Injected", "Reply", "Rule", "Scored", "ToolCall"]


class Choices:
    """Text replies handed out in turn, cycling: one per choice of a request (`n`), and on across requests."""

    def __init__(self, *replies: str):
        if not replies or not all(isinstance(r, str) for r in replies):
            raise TypeError("Choices takes one or more reply strings")
        self.replies = replies
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            reply = self.replies[self._next % len(self.replies)]
            self._next += 1
        return reply

    def __repr__(self) -> str:
        return f"Choices{self.replies!r}"


Reply = str | ToolCall | list[ToolCall] | Choices | Callable[[dict], "str | ToolCall | list[ToolCall]"]


class Fault(str, Enum):
    """Faults the server can inject. The value is the name used in YAML scripts."""

    RATE_LIMIT = "rate_limit"  # 429 with Retry-After (seconds) and retry-after-ms headers
    SERVER_ERROR = "server_error"  # 500 (or `status=`) with an OpenAI-style error body
    HANG = "hang"  # accept, send nothing for `seconds` (or until stop()), then answer normally
    DROP = "drop"  # close the socket without any response
    TRUNCATED_STREAM = "truncated_stream"  # stream: half the chunks, no [DONE]; otherwise half the body
    INVALID_JSON = "invalid_json"  # 200 whose body (or first SSE event) is not JSON


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern
    reply: Reply
    model: str | None = None
    latency: float | None = None


@dataclass
class FaultPlan:
    """A queued fault (from `fail`) and its parameters; `remaining` None means every matching request."""

    fault: Fault
    remaining: int | None = 1
    model: str | None = None
    retry_after: float = 0.0
    seconds: float = 30.0
    status: int = 500
    # only requests whose body this returns true for (None: every request); others pass untouched
    when: Callable[[dict], bool] | None = None
    message: str | None = None  # SERVER_ERROR's error message (None: the stock one)


class Injected(NamedTuple):
    """One fault the server injected: which, into a request for which model."""

    fault: Fault
    model: str | None


@dataclass
class FaultRate:
    rate: float
    faults: list[Fault]
    rng: random.Random
    model: str | None
    hang_seconds: float
    retry_after: float
    status: int = 500


class FakeLLM:
    """The fake server. Start it with ``with FakeLLM() as llm:`` or ``llm.start()`` / ``llm.stop()``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, default: Reply | None = None,
                 latency: float = 0.0, chunk_latency: float = 0.0, api_key: str | None = None,
                 models: Iterable[str] = ("fake-model", "fake-embedding")):
        self.host, self._want_port = host, port
        self.default: Reply | None = default  # None: echo "You said: <last user message>"
        self.latency = latency  # seconds before each answer or injected error (a rule's latency overrides it)
        self.chunk_latency = chunk_latency  # seconds between stream chunks
        self.api_key = api_key  # when set, requests must carry it (Bearer or x-api-key), else 401
        self.models = list(models)  # listed by GET /v1/models, with every model named by a rule
        self._rules: tuple[Rule, ...] = ()
        self._faults: list[FaultPlan] = []
        self._rates: list[FaultRate] = []
        self._requests: list[dict] = []
        self._injected: list[Injected] = []
        self._lock = threading.Lock()
        self._server: ServerThread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._server is None:
            self._server = ServerThread(self, self.host, self._want_port)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake LLM is not running: use `with FakeLLM() as llm:` or call llm.start()")
        return self._server.port

    @property
    def connections(self) -> int:
        """TCP connections accepted since start(): with keep-alive, one per pooled client connection."""
        return self._server.connections if self._server is not None else 0

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """For OpenAI-compatible clients: ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For the Anthropic SDK, which appends ``/v1/messages`` itself."""
        return self.url

    # ------------------------------------------------------------------ scripting

    def add(self, pattern: str, reply: Reply, *, model: str | None = None, latency: float | None = None) -> Rule:
        """Answer `reply` (text, tool calls, or callable(request_body) -> either) when `pattern` matches the last
        user message (or tool result)."""
        if not isinstance(reply, str | ToolCall | list | Choices) and not callable(reply):
            raise TypeError("reply must be a string, ToolCall(s), Choices or a callable(request_body) -> str")
        rule = Rule(re.compile(pattern, re.IGNORECASE | re.DOTALL), reply, model, latency)
        with self._lock:
            self._rules = (*self._rules, rule)
        return rule

    def fail(self, fault: Fault | str, times: int | None = 1, *, model: str | None = None,
             retry_after: float = 0.0, seconds: float = 30.0, status: int = 500,
             when: Callable[[dict], bool] | None = None, message: str | None = None) -> None:
        """Inject `fault` into the next `times` requests (None: all of them until clear_faults()).

        `model` restricts it to requests for that model, `when(body)` to the requests whose body (the parsed
        JSON, as `requests` records it) it returns true for — e.g. a provider that always refuses
        `response_format`: `fail(Fault.SERVER_ERROR, None, status=400, when=lambda b: "response_format" in b)`.
        A request it passes over does not use up `times`. Queued faults are used in the order added.
        RATE_LIMIT uses `retry_after` (seconds), HANG `seconds`, SERVER_ERROR `status` and `message`.
        """
        if when is not None and not callable(when):
            raise TypeError("when must be a callable(request_body) -> bool")
        plan = FaultPlan(Fault(fault), times, model, retry_after, seconds, status, when, message)
        if times is not None and times <= 0:
            return
        with self._lock:
            self._faults.append(plan)

    def fault_rate(self, rate: float, faults: Iterable[Fault | str] | None = None, *, seed: int | None = 0,
                   model: str | None = None, hang_seconds: float = 5.0, retry_after: float = 0.0,
                   status: int = 500) -> None:
        """Fail each request with probability `rate`, picking uniformly from `faults`.

        With a `seed` the sequence of injected faults is reproducible for a given order of requests.
        A second call for the same `model` replaces the first; rate 0 removes it. Faults queued by
        `fail()` take precedence.
        """
        chosen = [Fault(f) for f in (faults or (Fault.RATE_LIMIT, Fault.SERVER_ERROR))]
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        entry = FaultRate(rate, chosen, random.Random(seed), model, hang_seconds, retry_after, status)
        with self._lock:
            self._rates = [r for r in self._rates if r.model != model]
            if rate > 0:
                self._rates.append(entry)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rates.clear()

    def clear_rules(self) -> None:
        with self._lock:
            self._rules = ()

    def reset(self) -> None:
        """Forget rules, faults, recorded requests and injected faults (default, latency and api_key are kept)."""
        with self._lock:
            self._rules = ()
            self._faults.clear()
            self._rates.clear()
            self._requests.clear()
            self._injected.clear()

    @property
    def requests(self) -> list[dict]:
        """A copy of every request body received, in order, each with a ``path`` key added."""
        with self._lock:
            return list(self._requests)

    @property
    def injected(self) -> list[Injected]:
        """A copy of every fault injected so far (queued by `fail` or drawn by `fault_rate`), in order."""
        with self._lock:
            return list(self._injected)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def load_script(self, path: str | Path) -> Self:
        """Add rules, default, latency and faults from a YAML script (see flywheel.testing.fake_llm_script)."""
        from flywheel.testing.fake_llm_script import load_script

        load_script(self, path)
        return self

    # ------------------------------------------------------------------ used by the server thread

    def _record(self, entry: dict) -> None:
        with self._lock:
            self._requests.append(entry)

    def _take_fault(self, model: str | None, body: dict | None = None) -> FaultPlan | None:
        with self._lock:
            faults = list(self._faults)
        # `when` is the test's code: called outside the lock (it may read `requests`)
        chosen = [p for p in faults if (p.model is None or p.model == model)
                  and (p.when is None or bool(p.when(body if body is not None else {})))]
        with self._lock:
            for i, plan in enumerate(self._faults):
                if any(plan is c for c in chosen):
                    if plan.remaining is not None:
                        plan.remaining -= 1
                        if plan.remaining <= 0:
                            del self._faults[i]
                    self._injected.append(Injected(plan.fault, model))
                    return plan
            for entry in self._rates:
                if entry.model is None or entry.model == model:
                    if entry.rng.random() >= entry.rate:
                        return None
                    fault = entry.rng.choice(entry.faults)
                    self._injected.append(Injected(fault, model))
                    return FaultPlan(fault, None, model, entry.retry_after, entry.hang_seconds, entry.status)
        return None

    def _reply(self, body: dict, choices: int = 1) -> tuple[wire.Answer, float]:
        """The reply (one text per choice, as a tuple, when `choices` > 1 and they differ) and the delay before
        sending it. May raise if a user callable does."""
        user = wire.last_user_text(body)
        model = body.get("model")
        for rule in self._rules:
            if (rule.model is None or rule.model == model) and rule.pattern.search(user):
                delay = self.latency if rule.latency is None else rule.latency
                return _answers(rule.reply, body, choices), delay
        if self.default is None:
            return f"You said: {user}", self.latency
        return _answers(self.default, body, choices), self.latency

    def _reply_safe(self, body: dict) -> tuple[wire.Answer, float]:
        try:
            return self._reply(body)
        except Exception:  # noqa: BLE001 - only used to fill a truncated answer
            return "partial answer", 0.0

    def _model_names(self) -> list[str]:
        names = list(self.models)
        for rule in self._rules:
            if rule.model and rule.model not in names:
                names.append(rule.model)
        return names


def _answers(reply: Reply, body: dict, choices: int) -> wire.Answer:
    """`reply` answered once per choice; a tuple of texts when several choices differ."""
    answers = [_as_text(reply.take() if isinstance(reply, Choices) else reply(body) if callable(reply) else reply)
               for _ in range(choices)]
    first = answers[0]
    if isinstance(first, list) or all(a == first for a in answers):  # tool calls answer one choice
        return first
    return tuple(a if isinstance(a, str) else "" for a in answers)


def _as_text(value: Any) -> wire.Answer:
    if isinstance(value, ToolCall):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, ToolCall) for v in value):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a reply callable must return str or ToolCall(s), got {type(value).__name__}")
    return value
