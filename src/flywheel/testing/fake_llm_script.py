"""YAML scripts for the fake LLM (`flywheel fake-llm --script FILE`, or `FakeLLM.load_script(FILE)`).

Either a list of rules, or a mapping::

    default: "I don't know."          # reply when no rule matches (default: echo)
    latency_ms: 20                     # before every answer
    rules:
      - match: capital of France       # regex, case-insensitive, on the last user message (or tool result)
        reply: Paris.
      - match: what is 6 times 7
        reply: ["Answer: 42", "Answer: 42", "Answer: 41"]   # a list: handed out in turn, one per choice (`n`)
      - match: Capital of Italy
        reply: B
        logprobs: {A: -0.4, B: -1.3, C: -3.0}   # optional: the first token's alternatives (a list: one per token)
      - match: weather in Paris
        tool_call: {name: get_weather, arguments: {city: Paris}}   # instead of reply: ask for a tool
        model: small                   # optional: only for requests naming this model
        latency_ms: 200                # optional: overrides the global latency
    faults:                            # optional, used in order
      - fault: rate_limit              # rate_limit | server_error | hang | drop | truncated_stream | invalid_json
        times: 2
        retry_after: 0.5
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from flywheel.config import read_yaml, validation_error, where
from flywheel.errors import ConfigError

if TYPE_CHECKING:
    from flywheel.testing.fake_llm import Choices, FakeLLM
    from flywheel.testing.fake_llm_wire import ToolCall


HINT = ("a script is a list of {match, reply (or tool_call: {name, arguments}), logprobs?, reasoning?, model?, "
        "latency_ms?} or a "
        "mapping with rules:, default:, "
        "latency_ms: and faults: (see `flywheel fake-llm --help`)")


class ScriptToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = {}


class ScriptRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match: str
    reply: str | list[str] | None = None
    tool_call: ScriptToolCall | list[ScriptToolCall] | None = None
    logprobs: dict[str, float] | list[dict[str, float]] | None = None  # scripted alternatives (fake_llm_wire.Scored)
    # the reply's thinking, returned as `reasoning_content` on the OpenAI wire (fake_llm_wire.Reasoned)
    reasoning: str | None = None
    model: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)


class ScriptFault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fault: str
    times: int | None = Field(default=1, ge=1)
    model: str | None = None
    retry_after: float = Field(default=0.0, ge=0)
    seconds: float = Field(default=30.0, ge=0)
    status: int = Field(default=500, ge=400, le=599)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    rules: list[ScriptRule] = []
    faults: list[ScriptFault] = []


def load_script(llm: FakeLLM, path: str | Path) -> Script:
    """Validate the whole script first (ConfigError with file:line), then apply it to `llm`."""
    from flywheel.testing.fake_llm import Fault

    path = Path(path)
    data, lines = read_yaml(path)
    if data is None:
        data = {}
    try:
        if isinstance(data, list):
            script = Script(rules=TypeAdapter(list[ScriptRule]).validate_python(data))
        elif isinstance(data, dict):
            script = Script.model_validate(data)
        else:
            raise ConfigError("a fake-llm script must be a list of rules or a mapping with `rules:`",
                              where=f"{path}:1", hint=HINT)
    except ValidationError as exc:
        error = validation_error(exc, path, lines)
        raise ConfigError(error.message, where=error.where, hint=HINT) from None
    rules_at = () if isinstance(data, list) else ("rules",)
    for i, rule in enumerate(script.rules):
        if (rule.reply is None) == (rule.tool_call is None):
            raise ConfigError("a rule needs exactly one of `reply:` and `tool_call:`",
                              where=where(path, lines, (*rules_at, i)), hint=HINT)
        if rule.logprobs is not None and rule.reply is None:
            raise ConfigError("`logprobs:` scores a text reply; this rule has no `reply:`",
                              where=where(path, lines, (*rules_at, i, "logprobs")),
                              hint="give the rule a `reply:`, or drop `logprobs:`")
        if rule.reply == []:
            raise ConfigError("`reply:` is an empty list", where=where(path, lines, (*rules_at, i, "reply")),
                              hint="give one reply, or a list of replies handed out in turn")
        try:
            re.compile(rule.match)
        except re.error as exc:
            raise ConfigError(f"`match` is not a valid regular expression: {exc}",
                              where=where(path, lines, (*rules_at, i, "match")),
                              hint="escape special characters such as ( ) [ ] ? * + with a backslash") from None
    faults = []
    for i, entry in enumerate(script.faults):
        try:
            faults.append(Fault(entry.fault))
        except ValueError:
            raise ConfigError(f"unknown fault `{entry.fault}`", where=where(path, lines, ("faults", i, "fault")),
                              hint="use one of: " + ", ".join(f.value for f in Fault)) from None
    if script.default is not None:
        llm.default = script.default
    if script.latency_ms is not None:
        llm.latency = script.latency_ms / 1000
    for rule in script.rules:
        llm.add(rule.match, _answer(rule), model=rule.model,
                latency=None if rule.latency_ms is None else rule.latency_ms / 1000)
    for fault, entry in zip(faults, script.faults):
        llm.fail(fault, entry.times, model=entry.model, retry_after=entry.retry_after, seconds=entry.seconds,
                 status=entry.status)
    return script


def _answer(rule: ScriptRule) -> str | list[ToolCall] | Choices:
    from flywheel.testing.fake_llm import Choices
    from flywheel.testing.fake_llm_wire import Reasoned, Scored, ToolCall, count_tokens

    scored = [rule.logprobs] if isinstance(rule.logprobs, dict) else rule.logprobs
    if isinstance(rule.reply, list):
        return Choices(*(Scored(r, *scored) if scored else r for r in rule.reply))
    if isinstance(rule.reply, str) and rule.reasoning:
        return Reasoned(rule.reply, count_tokens(rule.reasoning), thought=rule.reasoning)
    if rule.reply is not None:
        return Scored(rule.reply, *scored) if scored else rule.reply
    calls = rule.tool_call if isinstance(rule.tool_call, list) else [rule.tool_call]
    return [ToolCall(c.name, c.arguments) for c in calls if c is not None]
