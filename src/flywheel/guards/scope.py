"""A judge guard's `scope:`: what it judges on a stream.

`sentence` (the default): each sentence before it is shown, with the tail already shown (a judge guard is
span-scope like pii: "never promises a refund" stops the stream before the promise). `answer`: the whole
answer, once, at the end of the stream, as a non-streamed answer is judged (criteria about the answer as a
whole — "cites its sources", "answers the question" — that no sentence alone meets). The text is shown as it
comes and a failure appends the guard's message, like the other end-of-answer checks (flywheel.guards.streaming).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flywheel.errors import ConfigError

SCOPES = ("sentence", "answer")


def judge_scope(value: Any, stage: str, name: str, check: Any, locate: Callable[[], str | None]) -> str | None:
    """The guard's `scope:` (None when not written); a ConfigError at `locate()` (its line) for a value other than
    SCOPES, or on a guard that is not an output judge guard (`check`: the built check, None for a sources guard)."""
    if value is None:
        return None
    where = locate()
    if not isinstance(value, str) or value not in SCOPES:
        raise ConfigError(f"guard `{name}`: scope must be {' or '.join(SCOPES)}, not {value!r}", where=where,
                          hint="sentence (the default): each sentence before it is shown; answer: the whole "
                               "answer once, at the end of a stream")
    if stage != "output":
        raise ConfigError(f"guard `{name}`: scope applies only to output guards (how a streamed answer is "
                          f"judged), not to {stage} guards", where=where, hint="remove `scope:`")
    if not getattr(check, "needs_llm", False):
        raise ConfigError(f"guard `{name}`: only a judge guard (an LLM check such as judge) takes a scope",
                          where=where, hint=f"remove `scope:`; `{name}` declares what it judges itself "
                                            "(docs/guards.md, Streaming)")
    return value
