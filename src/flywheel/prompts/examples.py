"""N-shot examples of a prompt file: their schema, which of them go into a request, and how they are shown.

    examples:
      - {input: "How do I pin a model?", output: "Set `version:` on the alias [1]."}
      - messages: [{role: user, content: "…"}, {role: assistant, content: "…"}]
    shots: {k: 3, select: similar, shuffle: true, seed: 7}

Selection is deterministic: `first` keeps file order, `random` draws k with `seed`, `similar` keeps the k
examples whose input is closest to the request's query — lexical cosine over `flywheel.text.tokenize` tokens
(CJK-aware, no model needed), or cosine of an embedder's vectors when one is passed. Similar examples are
ordered least to most similar, so the closest sits next to the real question; `shuffle` reorders the chosen
ones with `seed`. Where a template uses `{{examples}}` they are written inline in the prompt's format (XML,
Markdown or JSON); otherwise each becomes a user turn and an assistant turn before the request.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.protocols import Embedder
from flywheel.text import tokenize
from flywheel.types import Message

MIN_EXAMPLES = 5  # fewer representative examples than this rarely cover the cases a prompt meets
EXAMPLE_ROLES = ("user", "assistant")


class ExampleTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str


class Example(BaseModel):
    """One shot: an `input` and its `output`, or a short conversation of user/assistant `messages`."""

    model_config = ConfigDict(extra="forbid")
    input: str | None = None
    output: str | None = None
    messages: list[ExampleTurn] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Example:
        if self.messages is not None:
            if self.input is not None or self.output is not None:
                raise ValueError("an example has either `input` and `output`, or `messages`, not both")
            if not self.messages or self.messages[-1].role != "assistant":
                raise ValueError("an example's `messages` must end with an assistant turn")
        elif self.input is None or self.output is None:
            raise ValueError("an example needs both `input` and `output` (or a list of `messages`)")
        return self

    def turns(self) -> list[Message]:
        if self.messages is not None:
            return [Message(role=t.role, content=t.content) for t in self.messages]
        return [Message(role="user", content=self.input or ""), Message(role="assistant", content=self.output or "")]

    def query_text(self) -> str:
        """What a request's query is compared with: the input, or every user turn."""
        if self.messages is not None:
            return "\n".join(t.content for t in self.messages if t.role == "user")
        return self.input or ""


class Shots(BaseModel):
    """How the examples of a prompt file are picked and ordered for one request."""

    model_config = ConfigDict(extra="forbid")
    k: int | None = Field(default=None, ge=1, strict=True)  # how many go into a request (default: all)
    select: Literal["first", "random", "similar"] = "first"
    shuffle: bool = False
    seed: int = 0
    query: str | None = None  # the variable compared with each example (default: question, else input)


@lru_cache(maxsize=20_000)  # an example's tokens, computed once, not again on every request (read-only)
def _vector(text: str) -> Counter[str]:
    return Counter(tokenize(text))


def lexical_similarity(a: str, b: str) -> float:
    """Cosine of the token counts of two texts (0 when either has no keyword token)."""
    va, vb = _vector(a), _vector(b)
    dot = sum(n * vb[t] for t, n in va.items() if t in vb)
    if not dot:
        return 0.0
    return dot / math.sqrt(sum(n * n for n in va.values()) * sum(n * n for n in vb.values()))


def _embedding_scores(query: str, texts: Sequence[str], embedder: Embedder) -> list[float]:
    rows = embedder.embed([query, *texts])
    q = [float(x) for x in rows[0]]
    qn = math.sqrt(sum(x * x for x in q)) or 1.0
    out = []
    for row in rows[1:]:
        r = [float(x) for x in row]
        rn = math.sqrt(sum(x * x for x in r)) or 1.0
        out.append(sum(x * y for x, y in zip(q, r, strict=True)) / (qn * rn))
    return out


def select_examples(examples: Sequence[Example], shots: Shots, query: str | None = None,
                    embedder: Embedder | None = None) -> list[int]:
    """Indexes of the examples that go into one request, in the order they are shown."""
    n = len(examples)
    k = min(shots.k or n, n)
    if shots.select == "similar" and query:
        texts = [e.query_text() for e in examples]
        scores = (_embedding_scores(query, texts, embedder) if embedder is not None
                  else [lexical_similarity(query, t) for t in texts])
        best = sorted(range(n), key=lambda i: (-scores[i], i))[:k]
        chosen = list(reversed(best))  # the most similar last, next to the request
    elif shots.select == "random":
        chosen = random.Random(shots.seed).sample(range(n), k)
    else:
        chosen = list(range(k))
    if shots.shuffle:
        random.Random(shots.seed).shuffle(chosen)
    return chosen


def format_examples(examples: Sequence[Example], style: str) -> str:
    """The examples written inline for `{{examples}}`, in the prompt's structured-input style."""
    if style == "json":
        rows = [e.model_dump(exclude_none=True) for e in examples]
        return json.dumps(rows, ensure_ascii=False, indent=2)
    blocks = []
    for n, e in enumerate(examples, start=1):
        pairs = ([(t.role, t.content) for t in e.messages] if e.messages is not None
                 else [("input", e.input or ""), ("output", e.output or "")])
        if style == "xml":
            inner = "\n".join(f"<{tag}>\n{text.strip()}\n</{tag}>" for tag, text in pairs)
            blocks.append(f'<example n="{n}">\n{inner}\n</example>')
        else:
            inner = "\n".join(f"**{tag.capitalize()}:** {text.strip()}" for tag, text in pairs)
            blocks.append(f"### Example {n}\n{inner}")
    return "\n\n".join(blocks)


def examples_body(examples: Sequence[Example]) -> list[dict[str, Any]]:
    """The examples as plain data, for the content hash and the store."""
    return [e.model_dump(exclude_none=True) for e in examples]
