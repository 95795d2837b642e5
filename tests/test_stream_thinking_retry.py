"""A stream broken while the model was still thinking (only reasoning reached the consumer) is retried or falls
back; the new attempt thinks again. The consumer must never get two thoughts spliced into one: a retry that
repeats the thinking already shown resumes it (nothing twice), one that thinks otherwise — another sample, a
fallback model — shows none of its thinking; the answer comes from it either way."""

from __future__ import annotations

from typing import ClassVar

from flywheel.config import ModelAlias
from flywheel.gateway import Gateway, RetryPolicy
from flywheel.gateway.providers.base import BaseProvider, ProviderError, make_chunk, make_usage
from flywheel.types import ChatRequest

FAST = RetryPolicy(base_s=0.001, max_s=0.002)
FIRST = ["The user asks ", "about France. "]
WHOLE = "The user asks about France. Its capital is Paris."


class Thinking(BaseProvider):
    """Each model's streams, in order: a list of reasoning pieces, then either a break or the answer."""

    name = "thinking"
    scripts: ClassVar[dict[str, list[tuple[list[str], str | None]]]] = {}

    def stream(self, alias, request, timeout):
        thought, answer = self.scripts[alias.model].pop(0)
        for piece in thought:
            yield make_chunk("", reasoning=piece)
        if answer is None:
            raise ProviderError("connection reset mid-stream", kind="connection", retryable=True)
        yield make_chunk(answer)
        yield make_chunk("", "stop", make_usage(10, 5))


def _stream(scripts: dict, **alias: object) -> tuple[str, str, object]:
    Thinking.scripts = scripts
    models = {"a": ModelAlias(model="m1", **alias), "b": ModelAlias(model="m2")}
    gw = Gateway(models, retry=FAST)
    gw.register_provider("openai_compat", lambda a: Thinking(a))
    chunks = gw.stream(ChatRequest.of("Capital of France?", model="a"))
    got = list(chunks)
    return "".join(c.reasoning or "" for c in got), "".join(c.delta for c in got), chunks.result


def test_a_retry_that_thinks_the_same_resumes_the_thought_once():
    thought, answer, result = _stream({"m1": [(FIRST, None), ([WHOLE[:20], WHOLE[20:]], "Paris.")]},
                                      max_retries=1)
    assert (thought, answer) == (WHOLE, "Paris.")
    assert result.reasoning == WHOLE


def test_a_fallback_that_thinks_otherwise_shows_none_of_its_thinking():
    other = ["Considering the question, ", "France's capital is Paris."]
    thought, answer, result = _stream({"m1": [(FIRST, None)], "m2": [(other, "Paris.")]},
                                      max_retries=0, fallbacks=["b"])
    assert thought == "".join(FIRST)  # what was shown stays whole, never "The user asks about France. s Paris."
    assert answer == "Paris."
    assert result.reasoning == "".join(other)  # the trace and the result keep the answering model's own
