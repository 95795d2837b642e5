"""The one guarded answer path every app runs through (docs_qa, chat, the server):

    input guards → prepare (the app: retrieve, sources guard, render) → cache lookup → generate → clean (the
    app: reasoning stripped, prefill put back) → output guards (re-ask / fallback) → cache save (only what the
    output guards accepted) → finish (the app: citations) → restore of redacted values → Answer

    pipeline = AnswerPipeline(name="support", gateway=gw, guards=policy, cache=cache)
    answer = pipeline.run("hello", tenant="acme", model="gpt", prepare=lambda text, run: Plan(request=...))

`prepare(masked_input, run)` returns a `Plan` (how to ask a model alias, what output guards look at, what the
answer is cached under) or an early `Answer` (no passage found, a sources guard blocked). The pipeline makes
every model call itself, so `Answer.usage` / `cost_usd` cover every attempt of every call of the run: retries
and fallbacks inside the gateway, re-asks, fallbacks from guards, and LLM-judge guards (checks reach the
gateway through `ctx.services`, metered per run).

Every generation (first answer, re-ask, fallback, a stream) is cleaned before guards, the cache and the trace
see it; a stream releases nothing before `Plan.hold_until` (the end of the reasoning) and holds back a tag or
citation still arriving, so what the client sees is `Answer.text`. A stream's `Answer.checks` are its output
guards' results sentence by sentence, and one a guard stopped still names the model it called in `models`.

Redacted input: the run's placeholders carry its vault's nonce; the cache keys them without it and re-issues a
hit's placeholders with this run's nonce (cache/__init__.py), so a cached answer restores this user's values.

One run is one `app` span. What it stores is what the model saw: the input after the input guards (masked
when a redact guard is configured; a blocked input is masked by the redact guards before it is stored) and
the answer before redacted values are restored. The restore vault is never stored.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from flywheel.apps.refusal import declined
from flywheel.cache import route_version
from flywheel.checks.base import CheckContext, Services
from flywheel.checks.pii import Vault
from flywheel.guards import GuardOutcome, GuardPipeline, GuardPolicy, restore
from flywheel.guards.streaming import guard_stream
from flywheel.tracing import tracer
from flywheel.types import (
    Answer,
    CacheStatus,
    ChatRequest,
    ChatResult,
    CheckResult,
    GuardAction,
    Message,
    RefusalKind,
    Usage,
)

STOPS = ("block", "refrain", "reask", "fallback")  # actions that stop a stream (it can't be rewritten)


@dataclass
class Plan:
    """What the app hands the pipeline once it knows what to ask."""

    request: Callable[[str], ChatRequest]  # the request for a model alias (a fallback alias gets its own format)
    context: CheckContext = field(default_factory=CheckContext)  # what output guards see besides the answer
    cache_request: ChatRequest | None = None  # what the answer is cached under (default: request(model))
    corpus_version: str | None = None
    reask: str = "{feedback}"  # the user turn of a re-ask, after the rejected answer
    finish: Callable[[str], tuple[str, dict[str, Any]]] | None = None  # text -> (text, more Answer fields)
    declines: tuple[str, ...] = ()  # the app's own no-answer messages: a model that answers them declined
    # (model text, alias) -> the answer (e.g. reasoning stripped, prefill put back), before guards and the cache
    clean: Callable[[str, str], str] | None = None
    hold_until: str | None = None  # a stream releases nothing before this marker (e.g. `</thinking`) arrives


@dataclass
class Run:
    """What happened so far in one run; `prepare` may add guard actions and checks to it."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    guard_actions: list[GuardAction] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    cache: CacheStatus = "off"
    last: ChatResult | None = None  # the latest generation
    generated: bool = False  # the current answer text came from a model call of this run

    def charge(self, result: ChatResult) -> None:
        self.usage = self.usage + result.usage
        self.cost_usd += result.cost_usd

    def generation(self, result: ChatResult) -> str:
        self.charge(result)
        self.models[result.alias] = result.model
        self.last, self.generated = result, True
        return result.text

    def record(self, outcome: GuardOutcome) -> None:
        self.guard_actions.extend(outcome.actions)
        self.checks.extend(outcome.results)


class MeteredGateway:
    """The gateway as checks see it during a run: each call's usage and cost are added to the run."""

    def __init__(self, gateway: Any, run: Run):
        self._gateway, self._run = gateway, run

    def chat(self, request: ChatRequest) -> ChatResult:
        result = self._gateway.chat(request)
        self._run.charge(result)
        return result

    async def achat(self, request: ChatRequest) -> ChatResult:
        result = await self._gateway.achat(request)
        self._run.charge(result)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway, name)


class AnswerStream:
    """Text pieces of a streamed answer; `.answer` holds the Answer once the stream is exhausted or closed.
    Each step runs in a private copy of the caller's context, so the app span never leaks into the consumer."""

    def __init__(self, steps: Iterator[str], holder: list[Answer]):
        self._steps, self._holder = steps, holder
        self._ctx = contextvars.copy_context()

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        return self._ctx.run(next, self._steps)

    def close(self) -> None:
        self._ctx.run(self._steps.close)  # type: ignore[attr-defined]

    @property
    def answer(self) -> Answer | None:
        return self._holder[0] if self._holder else None


Prepare = Callable[[str, Run], "Plan | Answer"]


class AnswerPipeline:
    def __init__(self, *, name: str, gateway: Any, guards: GuardPolicy | None = None, cache: Any = None,
                 services: Any = None, prompt_version: str | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.name, self.gateway, self.cache, self.clock = name, gateway, cache, clock
        self.guards = guards or GuardPolicy()
        self.services, self.prompt_version = services, prompt_version

    # ------------------------------------------------------------------ whole answers
    def run(self, text: str, *, tenant: str, model: str, prepare: Prepare, input_key: str = "input",
            attrs: dict[str, Any] | None = None, vault: Vault | None = None) -> Answer:
        """`vault`: the input redactions' vault (a chat session's); a fresh one per run by default."""
        start, run = self.clock(), Run()
        with tracer.span(self.name, kind="app", inputs=None, **self._attrs(tenant, model, attrs)) as span:
            answer, stored = self._answer(text, tenant, model, prepare, run, span, input_key, vault)
            return self._complete(answer, stored, run, span, start)

    def _answer(self, text: str, tenant: str, model: str, prepare: Prepare, run: Run, span: Any,
                input_key: str, given: Vault | None = None) -> tuple[Answer, str]:
        services = self._services(run)
        masked, vault, refused = self._input(text, run, services, span, input_key, given)
        if refused is not None:
            return refused, refused.text
        prepared = prepare(masked, run)
        if isinstance(prepared, Answer):
            return prepared, prepared.text
        key = self._key(prepared, tenant, model, vault)
        hit = self._lookup(key, run, span)
        output = hit.text if hit is not None else self._generate(prepared, prepared.request(model), run)
        if self.guards.output and (hit is None or hit.kind == "semantic"):  # exact hits passed these guards
            output, stop = self._output(output, prepared, model, run, services)
            if stop is not None:
                return stop, stop.text
        return self._final(output, vault, prepared, key, run)

    def _input(self, text: str, run: Run, services: Any, span: Any, input_key: str, vault: Vault | None = None
               ) -> tuple[str, dict[str, str], Answer | None]:
        if not self.guards.input:
            span.inputs = {input_key: text}
            return text, {}, None
        verdict = self.guards.input.run(text, CheckContext(input=text, services=services), vault=vault)
        run.record(verdict)
        span.inputs = {input_key: verdict.text if verdict.passed else self._masked(text)}
        if verdict.refused:
            return text, {}, Answer(text=verdict.text, refused=True, refusal="guard_blocked")
        return verdict.text, verdict.vault, None

    def _masked(self, text: str) -> str:
        """A blocked input as it may be stored: redacted by every redact guard of the input stage."""
        for guard in self.guards.input.guards:
            if guard.on_fail == "redact":
                try:
                    redacted = guard.check.redact(text)  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001 - never store what could not be masked
                    return "[input withheld: it could not be masked]"
                text = redacted[0] if isinstance(redacted, tuple) else str(redacted)
        return text

    def _output(self, output: str, plan: Plan, model: str, run: Run, services: Any) -> tuple[str, Answer | None]:
        last = [output]  # the answer a re-ask responds to: the latest one

        def regenerate(feedback: str, alias: str | None) -> str:
            if alias is not None:  # fall back to another model: a fresh request in that model's format
                last[0] = self._generate(plan, plan.request(alias), run)
                return last[0]
            base = plan.request(model)
            head, prefill = list(base.messages), []
            if head and head[-1].role == "assistant":  # a prefill: it goes after the re-ask, to start the new answer
                prefill = [head.pop()]
            retry = base.model_copy(update={"messages": [
                *head, Message(role="assistant", content=last[0]),
                Message(role="user", content=plan.reask.format(feedback=feedback)), *prefill]})
            last[0] = self._generate(plan, retry, run)
            return last[0]

        ctx = replace(plan.context, services=services, trace_id=tracer.current_trace_id())
        verdict = self.guards.output.run(output, ctx, regenerate=regenerate)
        run.record(verdict)
        if verdict.refused:
            return output, Answer(text=verdict.text, refused=True, refusal="guard_blocked")
        return verdict.text, None

    def _generate(self, plan: Plan, request: ChatRequest, run: Run) -> str:
        """One model call; its text cleaned (for the alias whose format the request is in) before anything sees it."""
        text = run.generation(self.gateway.chat(request))
        return plan.clean(text, request.model) if plan.clean is not None else text

    def _final(self, output: str, vault: dict[str, str], plan: Plan, key: tuple[ChatRequest, dict] | None,
               run: Run) -> tuple[Answer, str]:
        is_declined = declined(output, plan.declines)
        if key is not None and run.generated and not is_declined:  # stored once the output guards accepted it
            result = run.last.model_copy(update={"text": output}) if run.last is not None else output
            self.cache.save(key[0], result, **key[1])
        text, extra = plan.finish(output) if plan.finish is not None else (output, {})
        refusal: RefusalKind | None = "model_declined" if is_declined else None
        answer = Answer(text=restore(text, vault), refused=is_declined, refusal=refusal, **extra)
        return answer, text

    # ------------------------------------------------------------------ cache
    def _key(self, plan: Plan, tenant: str, model: str, vault: dict[str, str]
             ) -> tuple[ChatRequest, dict[str, Any]] | None:
        """What the answer is cached under: the request and everything else that changes an answer, plus the
        run's redaction nonce (left out of the key; a hit's placeholders are re-issued with it, see cache/)."""
        if self.cache is None:
            return None
        chain = getattr(self.gateway, "chain", None)
        aliases = chain(model) if chain is not None else (model,)
        versions = {"model_version": self.gateway.resolve(model).pinned, "prompt_version": self.prompt_version,
                    "corpus_version": plan.corpus_version, "tenant": tenant,
                    "route": route_version(self.gateway.resolve(a) for a in aliases),
                    "guards": self.guards.version if self.guards else None,
                    "nonce": str(getattr(vault, "nonce", "") or "") if vault else ""}
        return plan.cache_request or plan.request(model), versions

    def _lookup(self, key: tuple[ChatRequest, dict[str, Any]] | None, run: Run, span: Any) -> Any:
        if key is None:
            return None
        hit = self.cache.lookup(key[0], **key[1])
        run.cache = "miss"
        if hit is None:
            return None
        run.cache = "semantic" if hit.kind == "semantic" else "item" if hit.kind == "item" else "exact"
        if hit.meta.get("alias") and hit.meta.get("model"):
            run.models[str(hit.meta["alias"])] = str(hit.meta["model"])
        span.set(**{"flywheel.cache.hit": True, "flywheel.cache.kind": hit.kind})
        return hit

    # ------------------------------------------------------------------ streams
    def stream(self, text: str, *, tenant: str, model: str, prepare: Prepare, input_key: str = "input",
               attrs: dict[str, Any] | None = None, vault: Vault | None = None) -> AnswerStream:
        """The answer as text pieces; with output guards, released sentence by sentence after they pass."""
        holder: list[Answer] = []
        return AnswerStream(self._stream(text, tenant, model, prepare, input_key, attrs, holder, vault), holder)

    def _stream(self, text: str, tenant: str, model: str, prepare: Prepare, input_key: str,
                attrs: dict[str, Any] | None, holder: list[Answer], given: Vault | None = None) -> Iterator[str]:
        start, run = self.clock(), Run()
        with tracer.span(self.name, kind="app", inputs=None, **self._attrs(tenant, model, attrs)) as span:
            services = self._services(run)
            masked, vault, refused = self._input(text, run, services, span, input_key, given)
            prepared = refused if refused is not None else prepare(masked, run)
            if isinstance(prepared, Answer):
                holder.append(self._complete(prepared, prepared.text, run, span, start))
                yield prepared.text
                return
            key = self._key(prepared, tenant, model, vault)
            hit = self._lookup(key, run, span)
            if hit is not None:  # a cached answer is shown whole, after the same guards as a fresh one
                output = hit.text
                if self.guards.output and hit.kind == "semantic":
                    output, stop = self._output(output, prepared, model, run, services)
                    if stop is not None:
                        holder.append(self._complete(stop, stop.text, run, span, start))
                        yield stop.text
                        return
                answer, stored = self._final(output, vault, prepared, key, run)
                holder.append(self._complete(answer, stored, run, span, start))
                yield answer.text
                return
            shown: list[str] = []
            actions: list[GuardAction] = []
            checks: list[CheckResult] = []
            chunks = self.gateway.stream(prepared.request(model))
            try:
                deltas: Iterator[str] = (c.delta for c in chunks if c.delta)
                if prepared.clean is not None:  # guards, the client and the cache see only the cleaned text
                    clean = prepared.clean
                    deltas = settled_stream(deltas, lambda raw: clean(raw, model), "<", prepared.hold_until)
                ctx = replace(prepared.context, services=services, trace_id=span.trace_id)
                pieces = guard_stream(deltas, _Recording(self.guards.output, checks), ctx, record=actions) \
                    if self.guards.output else deltas
                shown_pieces = _collect(pieces, shown)
                if prepared.finish is not None:  # e.g. citations renumbered as they appear, as in the Answer
                    finish = prepared.finish
                    shown_pieces = settled_stream(shown_pieces, lambda text: finish(text)[0], "[")
                yield from restore_stream(shown_pieces, vault)
            finally:
                result = chunks.result
                if result is not None:
                    run.generation(result)
                else:
                    if callable(getattr(chunks, "close", None)):  # stopped early: drop the upstream request
                        chunks.close()
                    answering = getattr(chunks, "alias", None)  # the model was called all the same
                    if answering is not None:
                        run.models[getattr(getattr(chunks, "request", None), "model", model)] = str(answering.pinned)
                run.guard_actions.extend(actions)
                run.checks.extend(checks)
                stopped = any(not a.passed and a.action in STOPS for a in actions)
                output = "".join(shown)
                if stopped:
                    answer, stored = Answer(text=restore(output, vault), refused=True, refusal="guard_blocked"), output
                else:
                    run.generated = result is not None  # a stream closed early is not a whole answer to store
                    answer, stored = self._final(output, vault, prepared, key, run)
                holder.append(self._complete(answer, stored, run, span, start))

    # ------------------------------------------------------------------ helpers
    def _services(self, run: Run) -> Services:
        base = self.services if self.services is not None else self.guards.output.services or self.guards.input.services
        gateway = getattr(base, "gateway", None) or self.gateway
        return Services(gateway=MeteredGateway(gateway, run), embedder=getattr(base, "embedder", None),
                        judge_model=getattr(base, "judge_model", None))

    def _attrs(self, tenant: str, model: str, attrs: dict[str, Any] | None) -> dict[str, Any]:
        return {"flywheel.app": self.name, "flywheel.tenant": tenant, "flywheel.alias": model, **(attrs or {})}

    def _complete(self, answer: Answer, stored: str, run: Run, span: Any, start: float) -> Answer:
        answer = answer.model_copy(update={
            "trace_id": span.trace_id, "checks": run.checks, "usage": run.usage, "cost_usd": run.cost_usd,
            "models": run.models, "prompt_version": self.prompt_version, "cache": run.cache,
            "guard_actions": run.guard_actions, "app": self.name,
            "latency_ms": (self.clock() - start) * 1000.0})
        attrs: dict[str, Any] = {"flywheel.refused": answer.refused, "flywheel.cache.status": answer.cache}
        if answer.refusal is not None:
            attrs["flywheel.refusal"] = answer.refusal
        if run.last is not None:  # the trace's model is the answer's, not that of a call made before it
            attrs["flywheel.answer.model"] = run.last.model
        span.set(outputs={"text": stored, "citations": [c.id for c in answer.citations]}, **attrs)
        return answer


class _Recording(GuardPipeline):
    """The output guards as a stream runs them (once per sentence), each check's result kept in `into`."""

    def __init__(self, guards: GuardPipeline, into: list[CheckResult]):
        super().__init__(guards.guards, guards.stage, guards.services)
        self.into = into

    def run(self, text: str, ctx: CheckContext | None = None, regenerate: Any = None,
            vault: Vault | None = None) -> GuardOutcome:
        outcome = super().run(text, ctx, regenerate, vault)
        self.into.extend(outcome.results)
        return outcome


def _collect(pieces: Iterator[str] | Any, into: list[str]) -> Iterator[str]:
    for piece in pieces:
        into.append(piece)
        yield piece


_CLOSERS = {"<": ">", "[": "]"}
HOLD_CHARS = 64  # an opening `<` / `[` this close to the end may still become a tag / citation


def settled_stream(pieces: Iterator[str], transform: Callable[[str], str], opener: str,
                   hold_until: str | None = None) -> Iterator[str]:
    """The growth of `transform(text so far)` as pieces: nothing before `hold_until` has arrived (matched without
    case), and the text from a trailing unclosed `opener` (a tag or citation still arriving) is held back. A
    transform that rewrites what was already released (it should not) releases nothing more until the end."""
    closer, marker = _CLOSERS[opener], (hold_until or "").lower()
    raw, released, open_ = "", "", not marker
    for piece in pieces:
        raw += piece
        if not open_:
            open_ = marker in raw.lower()
            if not open_:
                continue
        cut = raw.rfind(opener)
        if cut < 0 or cut < len(raw) - HOLD_CHARS or closer in raw[cut:]:
            cut = len(raw)
        out = transform(raw[:cut])
        if out.startswith(released) and len(out) > len(released):
            yield out[len(released):]
            released = out
    out = transform(raw)
    if out.startswith(released) and len(out) > len(released):
        yield out[len(released):]


def restore_stream(pieces: Iterator[str], vault: dict[str, str]) -> Iterator[str]:
    """`restore` over a stream: a trailing piece that may be the start of a placeholder is held back until the
    next piece completes it (or the stream ends)."""
    if not vault:
        yield from pieces
        return
    longest = max(len(k) for k in vault)
    pending = ""
    for piece in pieces:
        pending += piece
        cut = len(pending)
        for k in range(min(longest - 1, len(pending)), 0, -1):
            tail = pending[-k:]
            if any(key.startswith(tail) for key in vault):
                cut = len(pending) - k
                break
        ready, pending = pending[:cut], pending[cut:]
        if ready:
            yield restore(ready, vault)
    if pending:
        yield restore(pending, vault)
