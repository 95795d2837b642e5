"""The reference RAG app: retrieve → render the docs_qa prompt → gateway → Answer with citations.

    app = DocsQA(retriever=rt.retriever, gateway=rt.gateway, prompt=PromptRegistry(root).get("docs_qa"))
    answer = app.run("How do I pin a model version?")

One run is one `app` span (attributes `flywheel.app`, `flywheel.tenant`, `flywheel.prompt.version`) with
the guard, retrieval (`retrieval.search`), prompt and model spans nested under it. When retrieval finds nothing above its
relevance floor, the app answers the prompt's `no_answer` message in the question's language and does NOT
call the model (`Answer.refused` is then true). Citations list only the [n] the answer actually uses.
With a cache, an answer is reused for the same question (or, with the semantic cache, a verified paraphrase)
over the same retrieved chunks, model, prompt version and tenant; it is stored only after the output guards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from flywheel.checks.base import CheckContext
from flywheel.checks.grounding import citations_in
from flywheel.errors import UserError
from flywheel.guards import GuardPolicy, restore
from flywheel.prompts import Prompt, SourceItem, family_of, language_of
from flywheel.prompts.render import pick_language
from flywheel.tracing import in_context, tracer
from flywheel.types import Answer, ChatRequest, CheckResult, Citation, Hit, Message, content_hash

REASK = "{feedback}\nUse only the sources above and cite them as [n]."


class DocsQA:
    """Question answering over the ingested documents of a tenant."""

    kind = "docs_qa"

    def __init__(self, *, retriever: Any, gateway: Any, prompt: Prompt, model: str = "default",
                 name: str = "docs_qa", tenant: str = "default", k: int | None = None,
                 filters: Mapping[str, Any] | None = None, no_answer: Mapping[str, str] | str | None = None,
                 guards: GuardPolicy | None = None, cache: Any = None):
        self.retriever = retriever
        self.gateway = gateway
        self.prompt = prompt
        self.model = model
        self.name = name
        self.tenant = tenant
        self.k = k
        self.filters = dict(filters) if filters else None
        if isinstance(no_answer, str):
            no_answer = {"en": no_answer}
        self.no_answer = {**prompt.no_answer, **(no_answer or {})} or {"en": "I don't know."}
        self.guards = guards
        self.cache = cache  # a flywheel.cache.Cache: answers reused for the same question and retrieved chunks

    # ------------------------------------------------------------------ public API
    def run(self, input: str, tenant: str | None = None, *, model: str | None = None,
            filters: Mapping[str, Any] | None = None) -> Answer:
        question = (input or "").strip()
        if not question:
            raise UserError("the question is empty", hint="ask something, e.g. `flywheel ask \"How do I …?\"`")
        tenant = tenant or self.tenant
        model = model or self.model
        attrs = {"flywheel.app": self.name, "flywheel.tenant": tenant, "flywheel.prompt.name": self.prompt.name,
                 "flywheel.prompt.version": self.prompt.version, "flywheel.alias": model}
        with tracer.span(self.name, kind="app", inputs={"question": question}, **attrs) as span:
            answer = self._answer(question, tenant, model, filters)
            answer.trace_id = span.trace_id
            span.set(outputs={"text": answer.text, "citations": [c.id for c in answer.citations]},
                     **{"flywheel.refused": answer.refused})
        return answer

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None,
                   filters: Mapping[str, Any] | None = None) -> Answer:
        # The retriever and store are synchronous; a worker thread keeps the event loop free, and
        # in_context makes the spans nest under the caller's span.
        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model, filters=filters)

    def no_answer_message(self, question: str) -> str:
        return pick_language(self.no_answer, language_of(question))

    # ------------------------------------------------------------------ steps
    def _answer(self, question: str, tenant: str, model: str, filters: Mapping[str, Any] | None) -> Answer:
        checks: list[CheckResult] = []
        vault: dict[str, str] = {}
        if self.guards is not None and self.guards.input:
            verdict = self.guards.input.run(question, CheckContext(input=question))
            checks.extend(verdict.results)
            if verdict.refused:
                return Answer(text=verdict.text, checks=checks, refused=True)
            question, vault = verdict.text, verdict.vault

        hits = self._retrieve(question, tenant, {**(self.filters or {}), **(filters or {})} or None)
        if hits and self.guards is not None and self.guards.sources:  # instructions hidden in the documents
            scan = self.guards.sources.run([h.chunk.text for h in hits])
            if not scan.passed:
                return Answer(text=scan.message or "", checks=checks, refused=True)
            hits = [hits[i] for i in scan.keep]
        if not hits:
            tracer.current().set(**{"flywheel.no_answer": "no relevant sources"})
            return Answer(text=self.no_answer_message(question), checks=checks, refused=True)

        messages = self._render(question, hits, model)
        cache_key = self._cache_request(question, messages, hits, tenant, model)
        hit = self._cache_lookup(cache_key)
        text = hit if hit is not None else self._generate(messages, question, tenant, model)

        if self.guards is not None and self.guards.output:
            last = [text]  # the answer a re-ask responds to: the latest one

            def regenerate(feedback: str, alias: str | None) -> str:
                if alias is not None:  # fall back to another model: a fresh prompt in that model's format
                    last[0] = self._generate(self._render(question, hits, alias), question, tenant, alias)
                    return last[0]
                retry = [*messages, Message(role="assistant", content=last[0]),
                         Message(role="user", content=REASK.format(feedback=feedback))]
                last[0] = self._generate(retry, question, tenant, model)
                return last[0]

            system = messages[0].content if messages[0].role == "system" else None
            ctx = CheckContext(input=question, sources=[h.chunk.text for h in hits], system_prompt=system,
                               trace_id=tracer.current_trace_id())
            verdict = self.guards.output.run(text, ctx, regenerate=regenerate)
            checks.extend(verdict.results)
            if verdict.refused:
                return Answer(text=restore(verdict.text, vault), checks=checks, refused=True)
            text = verdict.text
        if hit is None and cache_key is not None:  # stored only once the output guards accepted it
            self.cache.save(cache_key[0], text, **cache_key[1])
        text = restore(text, vault)
        return Answer(text=text, citations=cited(text, hits), checks=checks)

    def _retrieve(self, question: str, tenant: str, filters: Mapping[str, Any] | None) -> list[Hit]:
        # The retriever records its own `retrieval.search` span (query, tenant, hits and their scores).
        hits = self.retriever.search(question, k=self.k, tenant=tenant, filters=filters)
        tracer.current().set(**{"flywheel.hits": len(hits)})
        return hits

    def _render(self, question: str, hits: list[Hit], model: str) -> list[Message]:
        family = family_of(self.gateway.resolve(model))
        sources = [SourceItem(id=i, text=h.chunk.text, source=h.chunk.source, location=h.chunk.location,
                              title=h.chunk.metadata.get("title")) for i, h in enumerate(hits, start=1)]
        with tracer.span("prompt", kind="other", inputs={"prompt": self.prompt.name, "sources": len(sources)},
                         **{"flywheel.prompt.name": self.prompt.name,
                            "flywheel.prompt.version": self.prompt.version}) as span:
            rendered = self.prompt.render(sources=sources, family=family, question=question)
            span.set(outputs={"style": rendered.style, "chars": len(rendered.system) + len(rendered.user)},
                     **{"flywheel.prompt.family": family})
        return rendered.messages()

    def _cache_request(self, question: str, messages: list[Message], hits: list[Hit], tenant: str, model: str
                       ) -> tuple[ChatRequest, dict[str, Any]] | None:
        """What the answer is cached under: the question (not the whole prompt, so the semantic cache compares
        questions), the system prompt, and as versions the pinned model, the prompt version, the tenant and the
        retrieved chunks (a re-ingest that changes what is retrieved changes the key)."""
        if self.cache is None:
            return None
        head = [m for m in messages if m.role == "system"]
        request = ChatRequest(messages=[*head, Message(role="user", content=question)], model=model,
                              metadata={"tenant": tenant})
        versions = {"model_version": self.gateway.resolve(model).pinned, "prompt_version": self.prompt.version,
                    "corpus_version": content_hash(*(h.chunk.id for h in hits)), "tenant": tenant}
        return request, versions

    def _cache_lookup(self, key: tuple[ChatRequest, dict[str, Any]] | None) -> str | None:
        if key is None:
            return None
        hit = self.cache.lookup(key[0], **key[1])
        if hit is not None:
            tracer.current().set(**{"flywheel.cache.hit": True, "flywheel.cache.kind": hit.kind})
        return None if hit is None else hit.text

    def _generate(self, messages: list[Message], question: str, tenant: str, model: str) -> str:
        request = ChatRequest(messages=messages, model=model, metadata={
            "app": self.name, "tenant": tenant, "prompt_version": self.prompt.version, "question": question})
        return self.gateway.chat(request).text


def cited(text: str, hits: list[Hit]) -> list[Citation]:
    """Citations for the [n] the answer uses that name one of the hits, in order of first use."""
    seen: dict[int, Citation] = {}
    for n, _, _ in citations_in(text):
        if n in seen or not 1 <= n <= len(hits):
            continue
        chunk = hits[n - 1].chunk
        seen[n] = Citation(id=n, chunk_id=chunk.id, source=chunk.source, text=chunk.text, location=chunk.location)
    return list(seen.values())
