"""What an eval case runs against: an app, a model alias with a prompt, or a Python callable.

Each adapter turns a case's vars into one `Output` (text, latency, cost, the models that answered and the
context checks may look at). The input text of a case is its `question`, `input`, `query` or `prompt`
variable (or its only variable).

A multi-turn case (`converse`) sends its turns in order in one conversation: to an app as one session
(`session_id`; chat apps keep the memory), to a model as a growing message list. A multiple-choice case
(`choose`) asks the question with lettered options and reads the answer from the first token's
log-probabilities when the gateway returns them (`ChatResult.logprobs`: an openai_compat alias with
`params: {logprobs: true, top_logprobs: 10}`), otherwise from the generated text (a letter, or the text of one
choice).

Blocking calls (apps, sync callables) run on a thread pool sized to the run's concurrency. Model calls go
through `gateway.achat` on the event loop when every provider of the alias's fallback chain has a lean
async path (`openai_compat` with a `base_url`: pooled asyncio connections, ~0.2 ms of CPU per call), and
otherwise through the gateway's synchronous client on that pool: an SDK's async client (httpx's async
connection pool) costs several times the CPU of its sync one at 32 requests in flight (measured: 640
calls, 3.4-3.9 s CPU async vs 1.0 s sync).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.choices import (
    choice_question,
    chosen_by_logprobs,
    chosen_by_text,
    first_token_alternatives,
)
from flywheel.evals.suite import Suite, Target
from flywheel.prompts import RenderedPrompt, family_of, supports_prefill
from flywheel.prompts.render import source_items
from flywheel.protocols import RuntimeLike
from flywheel.types import Answer, ChatRequest, Message

INPUT_VARS = ("question", "input", "query", "prompt")
RENDER_OPTIONS = frozenset({"sources", "family", "prefill", "embedder"})  # case vars render takes apart


@dataclass
class Output:
    text: str
    latency_ms: float
    cost_usd: float | None = None
    trace_id: str | None = None
    models: list[str] = field(default_factory=list)  # resolved models that answered
    prompt_versions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # texts shown to the model, in [n] order
    system_prompt: str | None = None
    usage: dict[str, int] = field(default_factory=dict)  # input_tokens / output_tokens, when known
    cache: str = "off"  # the app's cache status: off | miss | exact | semantic | item
    refusal: str | None = None  # why the app refused (no_passage | model_declined | guard_blocked)
    top_logprobs: dict[str, float] | None = None  # the first answer token's alternatives, when the provider says


def input_text(vars: dict[str, Any]) -> str:
    for name in INPUT_VARS:
        if name in vars and vars[name] is not None:
            return str(vars[name])
    if len(vars) == 1:
        return str(next(iter(vars.values())))
    return ""


class Runner:
    """Base adapter; `call(vars)` returns an Output or raises."""

    def __init__(self, target: Target, workers: int = 8):
        self.target = target
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flywheel-eval")

    async def call(self, vars: dict[str, Any]) -> Output:
        raise NotImplementedError

    def converse(self, vars: dict[str, Any], inputs: list[str]) -> AsyncIterator[Output]:
        """The outputs of a conversation's turns, sent in order, each as soon as it is answered (a turn that
        fails leaves the earlier ones with the caller)."""
        raise UserError(f"{self.target} keeps no conversation", where=self.target.where,
                        hint="multi-turn cases need an app: target (a chat app) or a model: target")

    async def choose(self, vars: dict[str, Any], choices: list[str]) -> tuple[int | None, Output, str]:
        """(chosen index or None, the output, method) for a multiple-choice question; the method is "logprobs",
        "generation" (no log-probabilities came back) or "generation-fallback" (they came back, but no option was
        the likeliest first token: the model answered in words, so its text is read)."""
        name = next((n for n in INPUT_VARS if vars.get(n) is not None), None)
        if name is None and len(vars) == 1:
            name = next(iter(vars))
        if name is None:
            raise UserError("a multiple-choice case needs its question", where=self.target.where,
                            hint=f"give it one of the vars {', '.join(INPUT_VARS)}")
        out = await self.call({**vars, name: choice_question(str(vars[name]), choices)})
        if out.top_logprobs:
            picked = chosen_by_logprobs(out.top_logprobs, choices)
            if picked is not None:
                return picked, out, "logprobs"
            return chosen_by_text(out.text, choices), out, "generation-fallback"
        return chosen_by_text(out.text, choices), out, "generation"

    async def in_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)` on the run's pool, in a copy of the caller's context (spans nest)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def versions(self) -> dict[str, str]:
        """Prompt name -> version the target renders with, as far as it is known before any call."""
        prompt = self.target.prompt
        return {prompt.name: prompt.version} if prompt is not None else {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """`close`, from the run's event loop before it ends."""
        self.close()


class AppRunner(Runner):
    """`app.run(question, tenant)` (the App protocol's replay entry point) on the run's thread pool.

    Everything recorded comes from the `Answer` the app returns (cost, models, prompt version, sources, cache
    status): nothing listens on the tracer. The app is built without the response cache unless `cache`,
    so repeats really run again and cost is what this run spent.
    """

    def __init__(
        self, target: Target, runtime: RuntimeLike, model: str | None, tenant: str | None, workers: int, cache: bool
    ):
        super().__init__(target, workers)
        self.app = runtime.app(target.name, cache=cache)
        self.model = model
        self.tenant = tenant
        self.runtime = runtime

    def versions(self) -> dict[str, str]:
        prompt = getattr(self.app, "prompt", None)
        name, version = getattr(prompt, "name", None), getattr(prompt, "version", None)
        return {str(name): str(version)} if name and version else {}

    async def call(self, vars: dict[str, Any]) -> Output:
        question = input_text(vars)
        if not question:
            raise UserError(
                f"the case has no input for app:{self.target.name}",
                hint=f"give it one of the vars {', '.join(INPUT_VARS)}",
            )
        tenant = vars.get("tenant") or self.tenant
        options = {"model": self.model} if self.model else {}
        start = time.perf_counter()
        answer = await self.in_thread(self.app.run, question, tenant, **options)
        return from_answer(answer, (time.perf_counter() - start) * 1000)

    async def converse(self, vars: dict[str, Any], inputs: list[str]) -> AsyncIterator[Output]:
        """Each turn is `app.run(turn, tenant, session_id=…)` in a fresh session (one per case run)."""
        if "session_id" not in _parameters(self.app.run):
            raise UserError(f"app:{self.target.name} keeps no sessions (kind {getattr(self.app, 'kind', '?')})",
                            where=self.target.where, hint="multi-turn cases need a chat app or a model: target")
        if getattr(self.app, "memory", None) is None and hasattr(self.app, "remember"):
            self.app.remember(self.runtime.store)
        tenant = vars.get("tenant") or self.tenant
        options: dict[str, Any] = {"model": self.model} if self.model else {}
        options["session_id"] = f"eval-{uuid.uuid4().hex}"
        for text in inputs:
            start = time.perf_counter()
            answer = await self.in_thread(self.app.run, text, tenant, **options)
            yield from_answer(answer, (time.perf_counter() - start) * 1000)


def from_answer(answer: Answer, latency_ms: float) -> Output:
    """An Output from what an app's Answer says happened."""
    sources = [""] * max((s.n for s in answer.sources), default=0)
    for s in answer.sources:  # every passage shown to the model, at its [n] position
        sources[s.n - 1] = s.text
    for c in answer.citations:  # apps that list only what they cited
        if c.id > len(sources):
            sources.extend([""] * (c.id - len(sources)))
        sources[c.id - 1] = sources[c.id - 1] or c.text
    return Output(
        answer.text,
        latency_ms,
        answer.cost_usd,
        answer.trace_id,
        sorted(set(answer.models.values())),
        [answer.prompt_version] if answer.prompt_version else [],
        sources,
        usage={"input_tokens": answer.usage.input_tokens, "output_tokens": answer.usage.output_tokens},
        cache=answer.cache,
        refusal=answer.refusal or ("refused" if answer.refused else None),
    )


class ModelRunner(Runner):
    def __init__(
        self, target: Target, runtime: RuntimeLike, model: str | None, workers: int, timeout_s: float | None
    ):
        super().__init__(target, workers)
        self.timeout_s = timeout_s
        self.gateway = runtime.gateway
        self.alias = model or target.name
        resolved = self.gateway.resolve(self.alias)  # unknown alias → UserError before any case runs
        self.family, self.prefill = family_of(resolved), supports_prefill(resolved)
        self.on_loop = _lean_async(self.gateway, self.alias)

    def rendered(self, vars: dict[str, Any]) -> RenderedPrompt | None:
        """The suite's prompt filled with a case's vars for this alias's family (examples, prefill, reasoning
        scaffold, structured input), or None when the suite has no prompt."""
        prompt = self.target.prompt
        if prompt is None:
            return None
        values = {k: v for k, v in vars.items() if k not in RENDER_OPTIONS}
        return prompt.render(sources=source_items(vars.get("sources")), family=self.family, prefill=self.prefill,
                             **values)

    def messages(self, vars: dict[str, Any]) -> list[Message]:
        rendered = self.rendered(vars)
        if rendered is not None:
            return rendered.messages()
        text = input_text(vars)
        if not text:
            raise UserError(
                "the case has no input and the suite no `prompt:`",
                where=self.target.where,
                hint=f"add `prompt:` to the suite or give the case one of {', '.join(INPUT_VARS)}",
            )
        return [Message(role="user", content=text)]

    async def converse(self, vars: dict[str, Any], inputs: list[str]) -> AsyncIterator[Output]:
        """Each turn is the suite's prompt rendered with the turn's text as `input` / `question`, after the
        earlier turns' user messages and answers."""
        history: list[Message] = []
        for text in inputs:
            turn_vars = {**vars, "input": text, "question": text}
            rendered = self.rendered(turn_vars)
            messages = rendered.messages() if rendered is not None else [Message(role="user", content=text)]
            head = [m for m in messages[:1] if m.role == "system"]
            out = await self.call(turn_vars, [*head, *history, *messages[len(head):]])
            yield out
            history += [m for m in messages[len(head):] if m.role == "user"]
            history.append(Message(role="assistant", content=out.text))

    async def call(self, vars: dict[str, Any], messages: list[Message] | None = None) -> Output:
        rendered = self.rendered(vars)
        if messages is None:
            messages = rendered.messages() if rendered is not None else self.messages(vars)
        version = getattr(self.target.prompt, "version", None)
        request = ChatRequest(
            messages=messages,
            model=self.alias,
            timeout=self.timeout_s,
            metadata={"prompt_version": version} if version else {},
            **self.target.params.get(self.alias, {}),  # per-alias request fields (promptfoo provider config)
        )
        if self.on_loop:
            result = await self.gateway.achat(request)
        else:
            result = await self.in_thread(self.gateway.chat, request)
        system = messages[0].content if messages[0].role == "system" else None
        return Output(
            rendered.finish(result.text) if rendered is not None else result.text,  # prefill back, reasoning out
            result.latency_ms,
            result.cost_usd,
            result.trace_id,
            [result.model],
            [version] if version else [],
            system_prompt=system,
            usage={"input_tokens": result.usage.input_tokens, "output_tokens": result.usage.output_tokens},
            top_logprobs=first_token_alternatives(result.logprobs),
        )

    async def aclose(self) -> None:
        if self.on_loop:
            await self.gateway.aclose()  # this loop's connections; the next run's loop opens its own
        await super().aclose()


def _lean_async(gateway: Any, alias: str) -> bool:
    """Whether every provider of the alias's fallback chain answers `achat` natively on pooled connections."""
    try:
        return all(getattr(gateway.provider(name), "lean", False) for name in gateway.chain(alias))
    except Exception:  # noqa: BLE001 - a provider that cannot be built fails its calls, on the thread path
        return False


class PythonRunner(Runner):
    """`fn(**vars)` (or `fn(vars)` when its one parameter is named `vars`); sync functions run in a thread."""

    def __init__(self, target: Target, workers: int):
        super().__init__(target, workers)
        fn = target.function
        assert fn is not None
        params = _parameters(fn)
        self.as_mapping = params == ["vars"]
        self.is_async = inspect.iscoroutinefunction(fn)

    async def call(self, vars: dict[str, Any]) -> Output:
        fn = self.target.function
        args, kwargs = ((vars,), {}) if self.as_mapping else ((), vars)
        start = time.perf_counter()
        if self.is_async:
            value = await fn(*args, **kwargs)  # type: ignore[misc]
        else:
            value = await self.in_thread(fn, *args, **kwargs)  # type: ignore[arg-type]
        latency = (time.perf_counter() - start) * 1000
        return _from_value(value, latency)


def _parameters(fn: Any) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _from_value(value: Any, latency: float) -> Output:
    """A callable may return text, an Answer / ChatResult, or a mapping with `output` (and cost / latency)."""
    if isinstance(value, str):
        return Output(value, latency)
    if isinstance(value, dict):
        text = value.get("output", value.get("text"))
        if not isinstance(text, str):
            raise TypeError("a target returning a mapping must put the text under `output`")
        return Output(
            text,
            float(value.get("latency_ms", latency)),
            value.get("cost_usd"),
            value.get("trace_id"),
            sources=list(value.get("sources") or []),
        )
    if isinstance(value, Answer):
        return from_answer(value, value.latency_ms or latency)
    text = getattr(value, "text", None)
    if isinstance(text, str):
        model = getattr(value, "model", None)
        return Output(
            text,
            float(getattr(value, "latency_ms", 0.0) or latency),
            getattr(value, "cost_usd", None),
            getattr(value, "trace_id", None),
            [model] if isinstance(model, str) else [],
        )
    raise TypeError(f"the target returned {type(value).__name__}; return a str, an Answer or {{'output': …}}")


def make_runner(
    suite: Suite,
    runtime: Any,
    model: str | None = None,
    *,
    workers: int = 8,
    timeout_s: float | None = None,
    cache: bool = False,
) -> Runner:
    """The adapter for the suite's target; `workers` threads serve its blocking calls. App targets run
    without the response cache unless `cache` (model and Python targets have none to bypass)."""
    target = suite.target
    if target.kind == "app":
        return AppRunner(target, runtime, model, suite.tenant, workers, cache)
    if target.kind == "model":
        return ModelRunner(target, runtime, model, workers, timeout_s)
    if model is not None:
        raise UserError(
            f"--models needs an app: or model: target; {suite.path} targets {target.name}",
            where=target.where,
            hint=("set `model:` in the workflow (or on its steps), or drop --models" if target.kind == "workflow"
                  else "choose the model inside your function, or drop --models"),
        )
    if target.kind == "workflow":
        from flywheel.workflows.eval_target import WorkflowEvalRunner

        return WorkflowEvalRunner(target, runtime, workers)
    return PythonRunner(target, workers)
