"""Sampling strategies: several model calls for one answer, traded for quality.

    spec = StrategySpec.parse("self_consistency:5")          # or best_of:3:judge, critique:2, ensemble:a+b+c
    result = spec.build().chat(gateway, request)               # a ChatResult; also: await ….achat(...)
    gw = StrategyGateway(gateway, spec)                        # a gateway whose answers all use the strategy

- `self_consistency:N[:field=PATH]` — N samples (temperature 0.8 unless the request sets one), majority vote
  on the normalized answer (the text after a last `Answer:` line when there is one; case, width, spacing and
  end punctuation ignored) or on a field of a JSON answer (`field=verdict`, dotted paths for nested fields).
  Ties go to the answer that sorts first, so the same samples always give the same winner.
- `best_of:N[:judge[=ALIAS] | :CHECK[=ARG]]` — N samples ranked by a check (`best_of:3:is-json`,
  `best_of:3:contains=Paris`; passed first, then score) or by a judge that sees every candidate and names the
  best (default; the judge alias defaults to the request's). Ties go to the earlier sample.
- `critique:R[:ALIAS]` — draft, then up to R rounds of critique (by ALIAS, default the request's) → revise;
  stops early when the critic answers `NO ISSUES`.
- `ensemble:A+B+C[:judge[=ALIAS]]` — one answer from each alias; majority vote (default) or a judge.

Votes, checks, judges and critics see each reply as its answer: the request's prefill put back, reasoning blocks
(<thinking>, <think>, the request's `metadata.reasoning_tag`) removed; the winner is returned as it was sampled.

The result's usage, cost and attempts sum EVERY call (samples, judge, critiques, LLM checks); latency is the
wall time of the whole strategy; `raw["strategy"]` says what happened (samples, votes, winner). Every call is
traced under one parent span `strategy.<name>`. Requests with `tools` and requests marked with a
`metadata.purpose` (judges, the strategies' own calls) or `n` > 1 pass through `StrategyGateway` unchanged.
Samples (self_consistency, best_of) are ONE gateway call with `n` = N (split by 16) where the alias's provider
takes `n` (openai_compat): one round trip, one `llm` span holding every sample and their whole cost. Otherwise,
or when that call fails, they are N calls, one `gateway.chat` span each (docs/strategies.md).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flywheel.errors import GatewayError, UserError
from flywheel.gateway.choices import MAX_CHOICES, split_choices, supports_n
from flywheel.gateway.strategy_spec import (  # noqa: F401 - the spec grammar, re-exported from here
    ALIASES,
    FORMS,
    MAX_SAMPLES,
    NAMES,
    StrategySpec,
    build_check,
    parse_strategies,
)
from flywheel.prompts.reasoning import strip_reasoning
from flywheel.tracing import in_context, tracer
from flywheel.types import ChatRequest, ChatResult, Message, Usage

SAMPLE_TEMPERATURE = 0.8
_FINAL = re.compile(r"^\W*(?:final answer|answer|答案)\W*[:：]\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_BEST = re.compile(r"best\W*[:：]?\s*\[?\s*(?:candidate\s*)?#?(\d+)", re.IGNORECASE)
_TRIM = " \t\n.。!！?？,，;；:：'\"`*_()[]"
# flywheel's scaffold (a prompt's `reasoning: true`) and the tag R1-style reasoning models write
REASONING_TAGS = ("thinking", "think")


# ------------------------------------------------------------------ answers and votes


def normalize_answer(text: str) -> str:
    """What a vote compares: the text after the last `Answer:` line if any, NFKC, case-folded, spaces
    collapsed, surrounding punctuation and markup stripped."""
    found = _FINAL.findall(text)
    core = found[-1] if found else text
    core = " ".join(unicodedata.normalize("NFKC", core).casefold().split())
    return core.strip(_TRIM)


def _prefill(request: ChatRequest) -> str:
    """The start of the answer the request sends as a trailing assistant message (the provider continues it)."""
    last = request.messages[-1] if request.messages else None
    return last.content if last is not None and last.role == "assistant" else ""


def final_text(text: str, request: ChatRequest | None = None) -> str:
    """A reply as its answer: after the request's prefill (a trailing assistant message) when the reply is its
    continuation, without reasoning blocks (<thinking>, <think>, the request's `metadata.reasoning_tag`). What
    votes, checks, judges and critics look at; the user's answer is finished the same way (RenderedPrompt.finish)."""
    tag = request.metadata.get("reasoning_tag") if request is not None else None
    prefill = _prefill(request) if request is not None else ""
    if prefill and not text.startswith(prefill):  # the provider returned the continuation of the prefill
        text = prefill + text
    lowered = text.lower()
    for t in dict.fromkeys([*REASONING_TAGS, *([str(tag)] if tag else [])]):
        if f"<{t.lower()}" in lowered or f"</{t.lower()}" in lowered:
            text = strip_reasoning(text, t)
    return text


def field_value(text: str, path: str) -> str | None:
    """The JSON answer's field at the dotted `path`, as a canonical string; None when absent or not JSON."""
    from flywheel.gateway.structured import parse_lenient

    try:
        value: Any = parse_lenient(text)
    except ValueError:
        return None
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    if isinstance(value, str):
        return normalize_answer(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def vote(keys: list[str | None]) -> tuple[int | None, Counter[str]]:
    """(index of the first sample holding the winning key, the counts); most votes wins, ties go to the key that
    sorts first. None keys (no answer) do not vote."""
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, counts
    best = min(counts, key=lambda k: (-counts[k], k))
    return keys.index(best), counts


# ------------------------------------------------------------------ calls, metered


class _Calls:
    """Every call a strategy makes, for the totals; `many` runs requests on threads under the current span."""

    def __init__(self, gateway: Any):
        self.gateway = gateway
        self.results: list[ChatResult] = []
        self.errors: list[str] = []

    def one(self, request: ChatRequest) -> ChatResult:
        result = self.gateway.chat(request)
        self.results.append(result)
        return result

    def many(self, requests: list[ChatRequest]) -> list[ChatResult | None]:
        """Results in request order; a failed call is None (and its error kept) unless every call failed."""
        def call(req: ChatRequest) -> ChatResult | GatewayError:
            try:
                return self.gateway.chat(req)  # type: ignore[no-any-return]
            except GatewayError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(8, len(requests))) as pool:
            got = list(pool.map(in_context(call), requests))
        out: list[ChatResult | None] = []
        for r in got:
            if isinstance(r, GatewayError):
                self.errors.append(r.message)
                out.append(None)
            else:
                self.results.append(r)
                out.append(r)
        if all(r is None for r in out):
            raise next(r for r in got if isinstance(r, GatewayError))
        return out


class _Metered:
    """The gateway as a check sees it inside a strategy: its calls count in the strategy's totals."""

    def __init__(self, calls: _Calls):
        self._calls = calls

    def chat(self, request: ChatRequest) -> ChatResult:
        return self._calls.one(request)

    async def achat(self, request: ChatRequest) -> ChatResult:
        return await asyncio.to_thread(in_context(self._calls.one), request)

    def __getattr__(self, name: str) -> Any:
        if name == "_calls":
            raise AttributeError(name)
        return getattr(self._calls.gateway, name)


# ------------------------------------------------------------------ strategies


class Strategy:
    """`none`: one plain call. Subclasses implement `pick`: (answer, details) from the calls they make."""

    def __init__(self, spec: StrategySpec):
        self.spec = spec

    def chat(self, gateway: Any, request: ChatRequest) -> ChatResult:
        if self.spec.name == "none":
            return gateway.chat(request)  # type: ignore[no-any-return]
        t0 = time.perf_counter()
        with tracer.span(f"strategy.{self.spec.name}", "other", {"strategy": str(self.spec)},
                         **{"flywheel.strategy": str(self.spec)}) as span:
            calls = _Calls(gateway)
            winner, details = self.pick(calls, request)
            if calls.errors:
                details["failed_calls"] = calls.errors
            result = _total(request, winner, calls.results, details, t0, span.trace_id)
            span.set(outputs=winner.text, **{"flywheel.strategy.calls": len(calls.results),
                                             "flywheel.strategy.cost_usd": result.cost_usd})
            return result

    async def achat(self, gateway: Any, request: ChatRequest) -> ChatResult:
        """`chat` on a worker thread (the samples run on threads either way), spans nested under the caller's."""
        return await asyncio.to_thread(in_context(self.chat), gateway, request)

    def pick(self, calls: _Calls, request: ChatRequest) -> tuple[ChatResult, dict[str, Any]]:
        raise NotImplementedError


def _total(request: ChatRequest, winner: ChatResult, results: list[ChatResult], details: dict[str, Any],
           t0: float, trace_id: str) -> ChatResult:
    usage = Usage()
    for r in results:
        usage = usage + r.usage
    return winner.model_copy(update={
        "alias": request.model, "usage": usage, "cost_usd": sum(r.cost_usd for r in results),
        "attempts": sum(r.attempts for r in results), "latency_ms": (time.perf_counter() - t0) * 1000.0,
        "trace_id": trace_id, "raw": {"strategy": details}, "cached": False})


def _sampled(request: ChatRequest, n: int) -> list[ChatRequest]:
    """n copies to sample; with a `seed`, sample i gets seed + i (reproducible, yet not n copies of one answer)."""
    temperature = request.temperature if request.temperature is not None else SAMPLE_TEMPERATURE
    seed = request.seed
    return [request.model_copy(update={"temperature": temperature, "seed": None if seed is None else seed + i})
            for i in range(n)]


def _samples(calls: _Calls, request: ChatRequest, n: int) -> list[ChatResult | None]:
    """n samples: `n`-requests (at most MAX_CHOICES choices each) where the provider takes `n`, else (or when
    those fail) n separate requests. Each choice becomes a ChatResult of its own; the totals count the calls."""
    gateway = calls.gateway
    try:  # does the provider answering first take `n`? (no for a scripted gateway, or an alias failing to build)
        takes_n = supports_n(gateway.provider(gateway.chain(request.model)[0]))
    except Exception:  # noqa: BLE001 - then the samples go one by one
        takes_n = False
    if n > 1 and takes_n:
        sizes = [min(MAX_CHOICES, n - start) for start in range(0, n, MAX_CHOICES)]
        try:  # (with a seed, each n-request its own: one seed samples its n choices apart already)
            got = calls.many([one.model_copy(update={"n": size})
                              for one, size in zip(_sampled(request, len(sizes)), sizes, strict=True)])
        except GatewayError:  # every n-request failed (`many` kept why): try the samples one by one
            pass
        else:
            out: list[ChatResult | None] = []
            for size, r in zip(sizes, got, strict=True):
                out.extend([None] * size if r is None else split_choices(r))
            return out
    return calls.many(_sampled(request, n))


class SelfConsistency(Strategy):
    def pick(self, calls: _Calls, request: ChatRequest) -> tuple[ChatResult, dict[str, Any]]:
        samples = _samples(calls, request, self.spec.n)
        path = self.spec.field
        answers = [None if s is None else final_text(s.text, request) for s in samples]
        keys = [None if a is None else field_value(a, path) if path else normalize_answer(a) for a in answers]
        index, counts = vote(keys)
        if index is None:  # no sample had the field: fall back to the first answer
            index = next(i for i, s in enumerate(samples) if s is not None)
        winner = samples[index]
        assert winner is not None
        top = counts.most_common(1)[0][1] if counts else 0
        return winner, {"name": "self_consistency", "samples": [s.text if s else None for s in samples],
                        "votes": dict(counts), "winner": keys[index], "agreement": top / len(samples)}


class BestOfN(Strategy):
    def pick(self, calls: _Calls, request: ChatRequest) -> tuple[ChatResult, dict[str, Any]]:
        samples = _samples(calls, request, self.spec.n)
        answered = [(i, s) for i, s in enumerate(samples) if s is not None]
        details: dict[str, Any] = {"name": "best_of", "samples": [s.text if s else None for s in samples]}
        if self.spec.check:
            index, details["scores"] = self._by_check(calls, request, answered)
        else:
            texts = [final_text(s.text, request) for _, s in answered]
            index, details["judge"] = _judge(calls, request, texts, self.spec.judge)
            index = answered[index][0]
        details["winner"] = index
        winner = samples[index]
        assert winner is not None
        return winner, details

    def _by_check(self, calls: _Calls, request: ChatRequest,
                  answered: list[tuple[int, ChatResult]]) -> tuple[int, list[dict[str, Any]]]:
        from flywheel.checks import CheckContext, Services

        check = build_check(self.spec.check or "")
        ctx = CheckContext(input=request.last_user(),
                           services=Services(gateway=_Metered(calls), judge_model=request.model))
        scores: list[dict[str, Any]] = []
        for i, sample in answered:
            r = check.run(final_text(sample.text, request), ctx)
            scores.append({"sample": i, "passed": r.passed, "score": r.score, "reason": r.reason})
        best = max(scores, key=lambda s: (s["passed"], s["score"], -s["sample"]))
        return best["sample"], scores


JUDGE_SYSTEM = ("You compare candidate answers to the same request and choose the best one: correct, complete, "
                "and following the request. Reason briefly, then end with one final line `Best: N`, where N is "
                "the number of the best candidate.")
CRITIC_SYSTEM = ("You review a draft answer. List the concrete problems a revision must fix (wrong facts, missing "
                 "parts, not following the request, unclear wording). If it has none, reply exactly NO ISSUES.")


def _own_call(request: ChatRequest, purpose: str) -> dict[str, Any]:
    """Metadata of a judge / critic call: who it is for (tenant, app, user: spans and costs are attributed to
    them), not the request's prompt version (the call does not use that prompt)."""
    kept: dict[str, Any] = {k: request.metadata[k] for k in ("tenant", "app", "user", "session_id")
                            if k in request.metadata}
    return {**kept, "purpose": purpose}


def _transcript(request: ChatRequest) -> str:
    return "\n\n".join(f"{m.role}: {m.content}" for m in request.messages if m.role != "system" and m.content)


def _judge(calls: _Calls, request: ChatRequest, texts: list[str], judge: str | None) -> tuple[int, dict[str, Any]]:
    """(index of the best of `texts`, what the judge said); the first text when the judge names none."""
    shown = "\n\n".join(f'<candidate n="{i}">\n{t}\n</candidate>' for i, t in enumerate(texts, 1))
    ask = ChatRequest(model=judge or request.model, temperature=0.0, metadata=_own_call(request, "strategy_judge"),
                      messages=[Message(role="system", content=JUDGE_SYSTEM),
                                Message(role="user", content=f"<request>\n{_transcript(request)}\n</request>\n\n"
                                                             f"{shown}\n\nWhich candidate is best?")])
    said = calls.one(ask).text
    found = _BEST.findall(final_text(said))  # a reasoning judge may weigh "best: 2" before it decides
    n = int(found[-1]) if found else 0
    if not 1 <= n <= len(texts):
        return 0, {"said": said[:500], "error": "the judge named no candidate; the first was kept"}
    return n - 1, {"said": said[:500], "best": n}


class SelfCritique(Strategy):
    def pick(self, calls: _Calls, request: ChatRequest) -> tuple[ChatResult, dict[str, Any]]:
        draft = calls.one(request)
        rounds: list[dict[str, str]] = []
        stopped = "rounds"
        for _ in range(self.spec.n):
            critique = calls.one(ChatRequest(
                model=self.spec.critic or request.model, temperature=0.0, metadata=_own_call(request, "strategy_critique"),
                messages=[Message(role="system", content=CRITIC_SYSTEM),
                          Message(role="user", content=f"<request>\n{_transcript(request)}\n</request>\n\n"
                                                       f"<draft>\n{final_text(draft.text, request)}\n</draft>")])).text
            critique = final_text(critique)  # a reasoning critic's thinking is neither a verdict nor feedback
            if normalize_answer(critique).startswith("no issues"):
                stopped = "no_issues"
                rounds.append({"draft": draft.text, "critique": critique})
                break
            prefill = _prefill(request)  # the draft goes back whole, and the new answer starts with it again
            head = request.messages[:-1] if prefill else request.messages
            whole = draft.text if draft.text.startswith(prefill) else prefill + draft.text
            revise = request.model_copy(update={"messages": [
                *head, Message(role="assistant", content=whole),
                Message(role="user", content=f"A reviewer found these problems in your answer:\n{critique}\n\n"
                                             "Write the improved answer to my request. Reply with the answer only."),
                *([Message(role="assistant", content=prefill)] if prefill else [])]})
            rounds.append({"draft": draft.text, "critique": critique})
            draft = calls.one(revise)
        return draft, {"name": "critique", "rounds": rounds, "stopped": stopped}


class Ensemble(Strategy):
    def pick(self, calls: _Calls, request: ChatRequest) -> tuple[ChatResult, dict[str, Any]]:
        answers = calls.many([request.model_copy(update={"model": a}) for a in self.spec.aliases])
        details: dict[str, Any] = {"name": "ensemble", "answers": dict(zip(
            self.spec.aliases, [a.text if a else None for a in answers], strict=True))}
        if self.spec.judge is not None:
            answered = [i for i, a in enumerate(answers) if a is not None]
            texts = [final_text(answers[i].text, request) for i in answered]  # type: ignore[union-attr]
            k, details["judge"] = _judge(calls, request, texts, self.spec.judge)
            index: int | None = answered[k]
        else:
            index, counts = vote([normalize_answer(final_text(a.text, request)) if a else None for a in answers])
            details["votes"] = dict(counts)
        assert index is not None
        winner = answers[index]
        assert winner is not None
        details["winner"] = self.spec.aliases[index]
        return winner, details


# ------------------------------------------------------------------ as a gateway


def requested(request: ChatRequest) -> tuple[Strategy, ChatRequest] | None:
    """The strategy a request asks for in `metadata.strategy` (a spec string) and the request without it, or
    None (no strategy, `none`, or a request that passes through: tools, a `metadata.purpose`). The hook for
    `Gateway.chat` / `achat`: `picked = requested(request)`; `if picked: return picked[0].chat(self, picked[1])`."""
    text = request.metadata.get("strategy")
    if not text or request.tools or request.metadata.get("purpose"):
        return None
    spec = StrategySpec.parse(str(text), where="metadata.strategy")
    if spec.name == "none":
        return None
    if request.n != 1:
        raise UserError(f"metadata.strategy ({text}) answers with one choice, and this request asks for n={request.n}",
                        where="metadata.strategy", hint="drop `n` to use the strategy, or drop the strategy for n choices")
    plain = request.model_copy(update={"metadata": {k: v for k, v in request.metadata.items() if k != "strategy"}})
    return spec.build(), plain


class StrategyGateway:
    """A gateway whose `chat` / `achat` answer with a strategy; everything else (stream, resolve, chain,
    providers) is the wrapped gateway's. Requests with tools or a `metadata.purpose` (judges) pass through."""

    def __init__(self, gateway: Any, spec: StrategySpec | str):
        self.gateway = gateway
        self.spec = StrategySpec.parse(spec) if isinstance(spec, str) else spec
        self.strategy = self.spec.build()

    def _plain(self, request: ChatRequest) -> bool:
        return (self.spec.name == "none" or bool(request.tools) or bool(request.metadata.get("purpose"))
                or request.n != 1)

    def chat(self, request: ChatRequest) -> ChatResult:
        if self._plain(request):
            return self.gateway.chat(request)  # type: ignore[no-any-return]
        return self.strategy.chat(self.gateway, request)

    async def achat(self, request: ChatRequest) -> ChatResult:
        if self._plain(request):
            return await self.gateway.achat(request)  # type: ignore[no-any-return]
        return await self.strategy.achat(self.gateway, request)

    def __getattr__(self, name: str) -> Any:
        if name in ("gateway", "spec", "strategy"):  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.gateway, name)
