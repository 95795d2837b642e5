"""The opt-in chain-of-thought scaffold: the model thinks inside <thinking>…</thinking>, the user sees the rest.

    reasoning: true                 # or {tag: scratchpad}

`strip_reasoning` removes every reasoning block from an answer (also an unclosed one the model never finished,
and the tail of a block whose opening tag was sent as prefill), so only the final answer is shown, cached and
checked; `split_reasoning` returns both parts, for tracing.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TAG = "thinking"
INSTRUCTION = ("Before answering, think the problem through step by step inside <{tag}></{tag}> tags. "
               "Then write your final answer after </{tag}>; only the text after </{tag}> is shown to the user.")


class Reasoning(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag: str = Field(default=DEFAULT_TAG, pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")
    instruction: str = INSTRUCTION  # `{tag}` is replaced by the tag

    def scaffold(self) -> str:
        return self.instruction.replace("{tag}", self.tag)


@lru_cache(maxsize=16)
def _patterns(tag: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    t = re.escape(tag)
    closed = re.compile(rf"<{t}(?:\s[^>]*)?>(.*?)</{t}\s*>", re.DOTALL | re.IGNORECASE)
    unclosed = re.compile(rf"<{t}(?:\s[^>]*)?>(.*)\Z", re.DOTALL | re.IGNORECASE)
    tail = re.compile(rf"\A(.*?)</{t}\s*>", re.DOTALL | re.IGNORECASE)  # the opening tag went out as prefill
    return closed, unclosed, tail


def split_reasoning(text: str, tag: str = DEFAULT_TAG) -> tuple[str, str]:
    """(final answer, reasoning) of a model's text."""
    closed, unclosed, tail = _patterns(tag)
    thoughts: list[str] = []
    m = tail.match(text)
    if m and f"<{tag}".lower() not in m.group(1).lower():
        thoughts.append(m.group(1))
        text = text[m.end():]

    def keep(match: re.Match[str]) -> str:
        thoughts.append(match.group(1))
        return ""

    text = closed.sub(keep, text)
    text = unclosed.sub(keep, text)
    return text.strip(), "\n\n".join(t.strip() for t in thoughts)


def strip_reasoning(text: str, tag: str = DEFAULT_TAG) -> str:
    """`text` without its reasoning blocks: the final answer only."""
    return split_reasoning(text, tag)[0]
