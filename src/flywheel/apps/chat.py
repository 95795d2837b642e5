"""A guarded, cached model route: input guards → cache → gateway → output guards → cache.

    apps:
      support:
        kind: chat
        model: strong
        options: {system: "You are ACME's support assistant."}
        guards:
          input:  [{check: injection, on_fail: block}, {check: pii, on_fail: redact}]
          output: [{check: prompt-leak, on_fail: block}]

`flywheel chat --app support "…"` and `rt.app("support").run("…")` go through it. One run is one `app` span.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from flywheel.checks.base import CheckContext
from flywheel.errors import UserError
from flywheel.guards import GuardPolicy, restore
from flywheel.guards.streaming import guard_stream
from flywheel.tracing import in_context, tracer
from flywheel.types import Answer, ChatRequest, ChatResult, Message


class ChatApp:
    kind = "chat"

    def __init__(self, *, gateway: Any, model: str = "default", name: str = "chat", system: str | None = None,
                 tenant: str = "default", guards: GuardPolicy | None = None, cache: Any = None):
        self.gateway, self.model, self.name, self.system = gateway, model, name, system
        self.tenant, self.guards, self.cache = tenant, guards or GuardPolicy(), cache
        self.last_result: ChatResult | None = None  # the model call behind the latest answer (None: cached/guarded)

    def run(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        text = (input or "").strip()
        if not text:
            raise UserError("the message is empty", hint='say something, e.g. `flywheel chat "hello"`')
        tenant, model = tenant or self.tenant, model or self.model
        attrs = {"flywheel.app": self.name, "flywheel.tenant": tenant, "flywheel.alias": model}
        with tracer.span(self.name, kind="app", inputs={"message": text}, **attrs) as span:
            answer = self._answer(text, tenant, model)
            answer.trace_id = span.trace_id
            span.set(outputs={"text": answer.text}, **{"flywheel.refused": answer.refused})
        return answer

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model)

    def stream(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Iterator[str]:
        """The answer as text pieces; with output guards, released sentence by sentence after they pass."""
        tenant, model = tenant or self.tenant, model or self.model
        self.last_result = None
        verdict = self.guards.input.run(input, CheckContext(input=input))
        if verdict.refused:
            yield verdict.text
            return
        chunks = self.gateway.stream(self._request(verdict.text, tenant, model))
        deltas = (c.delta for c in chunks if c.delta)
        pieces = guard_stream(deltas, self.guards.output, self._context(verdict.text)) if self.guards.output else deltas
        for piece in pieces:
            yield restore(piece, verdict.vault)
        self.last_result = chunks.result

    # ------------------------------------------------------------------ steps
    def _answer(self, text: str, tenant: str, model: str) -> Answer:
        self.last_result = None
        verdict = self.guards.input.run(text, CheckContext(input=text))
        if verdict.refused:
            return Answer(text=verdict.text, checks=verdict.results, refused=True)
        checks, vault, message = list(verdict.results), verdict.vault, verdict.text
        request = self._request(message, tenant, model)
        versions = {"model_version": self.gateway.resolve(model).pinned, "tenant": tenant}
        hit = self.cache.lookup(request, **versions) if self.cache is not None else None
        if hit is not None:
            tracer.current().set(**{"flywheel.cache.hit": True, "flywheel.cache.kind": hit.kind})
            output = hit.text
        else:
            output = self._generate(request)
        if self.guards.output:
            last = [output]  # the answer a re-ask responds to: the latest one

            def regenerate(feedback: str, alias: str | None) -> str:
                retry = request.model_copy(update={"model": alias or model, "messages": [
                    *request.messages, Message(role="assistant", content=last[0]),
                    Message(role="user", content=feedback)]})
                last[0] = self._generate(retry)
                return last[0]

            out = self.guards.output.run(output, self._context(message), regenerate=regenerate)
            checks += out.results
            if out.refused:
                return Answer(text=restore(out.text, vault), checks=checks, refused=True)
            output = out.text
        if hit is None and self.cache is not None:  # stored only once the output guards accepted it
            self.cache.save(request, output, **versions)
        return Answer(text=restore(output, vault), checks=checks)

    def _request(self, message: str, tenant: str, model: str) -> ChatRequest:
        return ChatRequest.of(message, system=self.system, model=model,
                              metadata={"app": self.name, "tenant": tenant})

    def _context(self, message: str) -> CheckContext:
        return CheckContext(input=message, system_prompt=self.system, trace_id=tracer.current_trace_id())

    def _generate(self, request: ChatRequest) -> str:
        self.last_result = self.gateway.chat(request)
        return self.last_result.text
