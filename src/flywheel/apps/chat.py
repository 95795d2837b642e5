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

Sessions: `app.run("…", session_id="s-42")` keeps the conversation in the store (flywheel.apps.memory): the
request carries the session's earlier exchanges (bounded by `max_turns` / `token_budget`) between the system
prompt and the new message, the app span records `flywheel.session_id`, and the finished exchange is stored
unless the answer was refused. `avoid_recent: N` adds the session's last N answers to the system prompt as
answers not to repeat. Without a session id a run has no memory, as before.

A session's redacted values come back in later turns: its turns share one vault (in process memory, see
flywheel.apps.memory.SessionVaults), so when turn 3's answer repeats the placeholder turn 1 issued, the user sees
the value. The stored answer is masked again with the same placeholders, so the store never holds the value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from flywheel.apps.memory import ConversationMemory, TurnVault, avoid_note, validate_session_id
from flywheel.apps.pipeline import AnswerPipeline, AnswerStream, Plan, Run
from flywheel.checks.base import CheckContext
from flywheel.checks.pii_placeholders import remask
from flywheel.config import validate_tenant
from flywheel.errors import UserError
from flywheel.guards import GuardPolicy
from flywheel.tracing import in_context
from flywheel.types import Answer, ChatRequest, Message, content_hash


class ChatApp:
    kind = "chat"

    def __init__(self, *, gateway: Any, model: str = "default", name: str = "chat", system: str | None = None,
                 tenant: str = "default", guards: GuardPolicy | None = None, cache: Any = None,
                 services: Any = None, memory: ConversationMemory | None = None, avoid_recent: int = 0):
        self.gateway, self.model, self.name, self.system = gateway, model, name, system
        self.tenant, self.guards, self.cache, self.services = tenant, guards or GuardPolicy(), cache, services
        self.memory, self.avoid_recent = memory, avoid_recent

    def remember(self, store: Any, **options: Any) -> ChatApp:
        """Give the app conversation memory in `store` unless it has some already; returns the app."""
        if self.memory is None:
            self.memory = ConversationMemory(store, **options)
        return self

    @property
    def prompt_version(self) -> str | None:
        """The system prompt's content hash (chat apps have no prompt file)."""
        return content_hash(self.system) if self.system else None

    @property
    def pipeline(self) -> AnswerPipeline:
        return AnswerPipeline(name=self.name, gateway=self.gateway, guards=self.guards, cache=self.cache,
                              services=self.services, prompt_version=self.prompt_version)

    def run(self, input: str, tenant: str | None = None, *, model: str | None = None,
            session_id: str | None = None) -> Answer:
        text, tenant, model, session = self._start(input, tenant, model, session_id)
        seen: list[str] = []
        vault = self._vault(tenant, session)
        answer = self.pipeline.run(text, tenant=tenant, model=model, prepare=self._prepare(tenant, session, seen),
                                   input_key="message", attrs=self._session_attrs(session), vault=vault)
        self._remember(tenant, session, seen, answer, vault)
        return answer

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None,
                   session_id: str | None = None) -> Answer:
        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model, session_id=session_id)

    def stream(self, input: str, tenant: str | None = None, *, model: str | None = None,
               session_id: str | None = None) -> AnswerStream:
        """The answer as text pieces; with output guards, released sentence by sentence after they pass."""
        text, tenant, model, session = self._start(input, tenant, model, session_id)
        seen: list[str] = []
        vault = self._vault(tenant, session)
        inner = self.pipeline.stream(text, tenant=tenant, model=model, prepare=self._prepare(tenant, session, seen),
                                     input_key="message", attrs=self._session_attrs(session), vault=vault)
        if session is None:
            return inner
        holder: list[Answer] = []

        def pieces() -> Iterator[str]:
            try:
                yield from inner
            finally:
                inner.close()
                if inner.answer is not None:
                    holder.append(inner.answer)
                    self._remember(tenant, session, seen, inner.answer, vault)

        return AnswerStream(pieces(), holder)

    # ------------------------------------------------------------------ steps
    def _start(self, input: str, tenant: str | None, model: str | None, session_id: str | None
               ) -> tuple[str, str, str, str | None]:
        text = (input or "").strip()
        if not text:
            raise UserError("the message is empty", hint='say something, e.g. `flywheel chat "hello"`')
        model = model or self.model
        self.gateway.resolve(model)  # an unknown alias is a UserError before anything runs
        session = validate_session_id(session_id)
        if session is not None and self.memory is None:
            raise UserError(f"chat app '{self.name}' has no conversation memory, so it cannot keep a session",
                            hint="open it through a Runtime with a store, or call `app.remember(store)`")
        return text, validate_tenant(self.tenant if tenant is None else tenant), model, session

    def _vault(self, tenant: str, session: str | None) -> TurnVault | None:
        """This turn's redaction vault: the session's placeholders so far (None without a session or redaction)."""
        if session is None or self.memory is None or not any(g.on_fail == "redact" for g in self.guards.input.guards):
            return None
        return self.memory.vault(tenant, self.name, session).turn()

    @staticmethod
    def _session_attrs(session: str | None) -> dict[str, Any]:
        return {"flywheel.session_id": session} if session is not None else {}

    def _prepare(self, tenant: str, session: str | None, seen: list[str]):
        def prepare(message: str, run: Run) -> Plan:
            seen.append(message)  # as the model sees it (after the input guards): what memory stores
            history: list[Message] = []
            system = self.system
            if session is not None and self.memory is not None:
                history = self.memory.history(tenant, self.name, session)
                recent = self.memory.recent_answers(tenant, self.name, session, self.avoid_recent)
                if recent:
                    system = f"{system}\n\n{avoid_note(recent)}" if system else avoid_note(recent)

            def request(alias: str) -> ChatRequest:
                head = [Message(role="system", content=system)] if system else []
                return ChatRequest(messages=[*head, *history, Message(role="user", content=message)], model=alias,
                                   metadata={"app": self.name, "tenant": tenant})

            return Plan(request=request, context=CheckContext(input=message, system_prompt=system))

        return prepare

    def _remember(self, tenant: str, session: str | None, seen: list[str], answer: Answer,
                  vault: TurnVault | None = None) -> None:
        """Store the finished exchange; refused turns (blocked input, blocked or declined answers) are not kept."""
        if session is None or self.memory is None or answer.refused or not seen:
            return
        self.memory.append(tenant, self.name, session, seen[0], self._masked(answer.text, vault), answer.trace_id)

    def _masked(self, text: str, vault: TurnVault | None = None) -> str:
        """The answer with the input stage's redactions applied again, so a restored value is not stored: first
        every value of the turn's vault back to its placeholder (the one the next turn restores), then the redact
        guards for anything else they find."""
        if vault:
            text = remask(text, vault)
        try:
            if vault is not None:
                return self.guards.input.redact(text, vault)
            for guard in self.guards.input.guards:
                if guard.on_fail == "redact":
                    redacted = guard.check.redact(text)  # type: ignore[attr-defined]
                    text = redacted[0] if isinstance(redacted, tuple) else str(redacted)
        except Exception:  # noqa: BLE001 - never store what could not be masked
            return "[answer withheld: it could not be masked]"
        return text
