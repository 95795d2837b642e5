"""A guarded, cached model route: the answer pipeline with no retrieval.

    apps:
      support:
        kind: chat
        model: strong
        options: {system: "You are ACME's support assistant."}
        guards:
          input:  [{check: injection, on_fail: block}, {check: pii, on_fail: redact}]
          output: [{check: prompt-leak, on_fail: block}]

`flywheel chat --app support "…"` and `rt.app("support").run("…")` go through it. One run is one `app` span.
`stream()` yields the answer in pieces (sentence by sentence after the output guards when there are any);
its `.answer` is the Answer once the stream is done.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flywheel.apps.pipeline import AnswerPipeline, AnswerStream, Plan, Run
from flywheel.checks.base import CheckContext
from flywheel.config import validate_tenant
from flywheel.errors import UserError
from flywheel.guards import GuardPolicy
from flywheel.tracing import in_context
from flywheel.types import Answer, ChatRequest, content_hash


class ChatApp:
    kind = "chat"

    def __init__(self, *, gateway: Any, model: str = "default", name: str = "chat", system: str | None = None,
                 tenant: str = "default", guards: GuardPolicy | None = None, cache: Any = None,
                 services: Any = None):
        self.gateway, self.model, self.name, self.system = gateway, model, name, system
        self.tenant, self.guards, self.cache, self.services = tenant, guards or GuardPolicy(), cache, services

    @property
    def prompt_version(self) -> str | None:
        """The system prompt's content hash (chat apps have no prompt file)."""
        return content_hash(self.system) if self.system else None

    @property
    def pipeline(self) -> AnswerPipeline:
        return AnswerPipeline(name=self.name, gateway=self.gateway, guards=self.guards, cache=self.cache,
                              services=self.services, prompt_version=self.prompt_version)

    def run(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        text, tenant, model = self._start(input, tenant, model)
        return self.pipeline.run(text, tenant=tenant, model=model, prepare=self._prepare(tenant),
                                 input_key="message")

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model)

    def stream(self, input: str, tenant: str | None = None, *, model: str | None = None) -> AnswerStream:
        """The answer as text pieces; with output guards, released sentence by sentence after they pass."""
        text, tenant, model = self._start(input, tenant, model)
        return self.pipeline.stream(text, tenant=tenant, model=model, prepare=self._prepare(tenant),
                                    input_key="message")

    # ------------------------------------------------------------------ steps
    def _start(self, input: str, tenant: str | None, model: str | None) -> tuple[str, str, str]:
        text = (input or "").strip()
        if not text:
            raise UserError("the message is empty", hint='say something, e.g. `flywheel chat "hello"`')
        model = model or self.model
        self.gateway.resolve(model)  # an unknown alias is a UserError before anything runs
        return text, validate_tenant(self.tenant if tenant is None else tenant), model

    def _prepare(self, tenant: str):
        def prepare(message: str, run: Run) -> Plan:
            def request(alias: str) -> ChatRequest:
                return ChatRequest.of(message, system=self.system, model=alias,
                                      metadata={"app": self.name, "tenant": tenant})

            return Plan(request=request, context=CheckContext(input=message, system_prompt=self.system))

        return prepare
