"""The reference RAG app: retrieve → sources guard → render the docs_qa prompt → the answer pipeline.

    app = DocsQA(retriever=rt.retriever, gateway=rt.gateway, prompt=PromptRegistry(root).get("docs_qa"))
    answer = app.run("How do I pin a model version?")
    stream = app.stream("How do I pin a model version?")   # pieces; stream.answer once it is done

Input guards, the cache, the model call, output guards (re-ask / fallback), cache save and restore of redacted
values are the shared `AnswerPipeline` (apps/pipeline.py); this app adds retrieval, the `sources:` guard stage,
the prompt (rendered per alias: its family's format, examples, a prefill where the provider continues an
assistant turn, the reasoning scaffold, whose reasoning is stripped from every reply) and citations. One run
is one `app` span (attributes `flywheel.app`, `flywheel.tenant`, `flywheel.prompt.version`) with the guard,
retrieval (`retrieval.search`), prompt and model spans under it.

When retrieval finds nothing above its relevance floor, the app answers the prompt's `no_answer` message in the
question's language without calling the model (`refusal: no_passage`). Citations are numbered in order of first
use: the answer's [n] are renumbered so the first source it cites is [1], the next [2] …; `Answer.sources` lists
every source shown to the model with its score, cited ones first under their new numbers.
Retrieval augmentations (flywheel.apps.augment; each off unless its option is set): `query` transforms the
question before search (translation into the corpus language, rewrite, HyDE, paraphrases; every query is
searched and the rankings fused with RRF), `rerank` re-scores the top candidates (an LLM alias in one structured
call, or a local cross-encoder), `context` packs the passages under a token budget in an order (best_first,
best_at_ends, shuffle). Their model calls are spans of their own and count in `Answer.usage` / `cost_usd`.
With query options and nothing found for a question in another script than the corpus (offline, or translation
off), the answer says it cannot match across languages, in the question's language.
With a cache, an answer is reused for the same question (or, with the semantic cache, a verified paraphrase)
over the same retrieved chunks, model route, prompt version, guard policy and tenant.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from flywheel.apps.augment import (
    Augmenter,
    ContextOptions,
    CrossEncoder,
    Query,
    QueryOptions,
    RerankOptions,
    corpus_language,
    cross_language_message,
    crosses_script,
    fuse,
    pack,
    prefer_question_language,
)
from flywheel.apps.pipeline import AnswerPipeline, AnswerStream, Plan, Run
from flywheel.checks.base import CheckContext
from flywheel.checks.grounding import citations_in
from flywheel.config import validate_tenant
from flywheel.errors import UserError
from flywheel.guards import GuardPolicy
from flywheel.prompts import (
    Prompt,
    PromptRegistry,
    RenderedPrompt,
    SourceItem,
    family_of,
    language_of,
    supports_prefill,
)
from flywheel.prompts.render import pick_language
from flywheel.tracing import in_context, tracer
from flywheel.types import Answer, ChatRequest, Citation, Hit, Message, Source, content_hash

PROMPT_RECHECK_S = 2.0  # how often a running app asks the registry whether its prompt or pinned label moved
log = logging.getLogger("flywheel.apps")
APP_VARIABLES = ("question",)  # what the app passes to its prompt's template (sources and examples are built)

REASK = "{feedback}\nUse only the sources above and cite them as [n]."
_SEPARATOR = re.compile(r"(\s*[,，、]\s*)")


class DocsQA:
    """Question answering over the ingested documents of a tenant."""

    kind = "docs_qa"

    def __init__(self, *, retriever: Any, gateway: Any, prompt: Prompt, model: str = "default",
                 name: str = "docs_qa", tenant: str = "default", k: int | None = None,
                 filters: Mapping[str, Any] | None = None, no_answer: Mapping[str, str] | str | None = None,
                 guards: GuardPolicy | None = None, cache: Any = None, services: Any = None,
                 query: QueryOptions | None = None, rerank: RerankOptions | None = None,
                 context: ContextOptions | None = None, cross_encoder: CrossEncoder | None = None,
                 prompts: Any = None, prompt_source: Callable[[], Prompt] | None = None):
        """`prompt_source`: where the prompt comes from (the registry, by name or pinned label), asked again at
        most every PROMPT_RECHECK_S seconds, so a running server follows an edited file or a moved label."""
        self.retriever = retriever
        self.gateway = gateway
        prompt.check_variables(APP_VARIABLES)  # a variable the app never passes would fail every question
        self.prompt = prompt
        self._prompt_source = prompt_source
        self._prompt_checked = time.monotonic()
        self._no_answer_option = no_answer
        self.model = model
        self.name = name
        self.tenant = tenant
        self.k = k
        self.filters = dict(filters) if filters else None
        self.guards = guards
        self.cache = cache  # a flywheel.cache.Cache: answers reused for the same question and retrieved chunks
        self.services = services  # what LLM guards use (default: this app's gateway)
        # Retrieval augmentations (options query / rerank / context; flywheel.apps.augment), all off by default.
        self.query, self.rerank, self.context = query, rerank, context
        if rerank is not None and rerank.model is None and cross_encoder is None:
            raise UserError(f"app '{name}': `options.rerank` has no model and no cross-encoder was given",
                            hint="set `rerank: {model: ALIAS}` to re-rank with a model alias")
        for alias in (query.model if query else None, rerank.model if rerank else None):
            if alias:
                gateway.resolve(alias)  # an unknown transform or re-rank alias fails when the app is built
        self.augmenter = Augmenter(gateway=gateway, prompts=prompts or PromptRegistry(), model=model, query=query,
                                   rerank=rerank, cross_encoder=cross_encoder, app=name)

    @property
    def pipeline(self) -> AnswerPipeline:
        return AnswerPipeline(name=self.name, gateway=self.gateway, guards=self.guards, cache=self.cache,
                              services=self.services, prompt_version=self.prompt.version)

    # ------------------------------------------------------------------ public API
    def run(self, input: str, tenant: str | None = None, *, model: str | None = None,
            filters: Mapping[str, Any] | None = None) -> Answer:
        question, tenant, model, prepare = self._start(input, tenant, model, filters)
        return self.pipeline.run(question, tenant=tenant, model=model, prepare=prepare, input_key="question",
                                 attrs=self._attrs())

    def stream(self, input: str, tenant: str | None = None, *, model: str | None = None,
               filters: Mapping[str, Any] | None = None) -> AnswerStream:
        """The answer as text pieces (citations already renumbered; with a reasoning prompt, nothing of the
        reasoning); `.answer` is the Answer once the stream is done."""
        question, tenant, model, prepare = self._start(input, tenant, model, filters)
        return self.pipeline.stream(question, tenant=tenant, model=model, prepare=prepare, input_key="question",
                                    attrs=self._attrs())

    def _start(self, input: str, tenant: str | None, model: str | None, filters: Mapping[str, Any] | None
               ) -> tuple[str, str, str, Callable[[str, Run], Plan | Answer]]:
        question = (input or "").strip()
        if not question:
            raise UserError("the question is empty", hint="ask something, e.g. `flywheel ask \"How do I …?\"`")
        self._refresh_prompt()
        tenant = validate_tenant(self.tenant if tenant is None else tenant)  # "" is an error, not `default`
        model = model or self.model
        self.gateway.resolve(model)  # an unknown alias is a UserError before anything runs
        merged = {**(self.filters or {}), **(filters or {})} or None
        def prepare(masked: str, run: Run) -> Plan | Answer:
            return self._prepare(masked, run, tenant, model, merged)

        return question, tenant, model, prepare

    def _refresh_prompt(self) -> None:
        now = time.monotonic()
        if self._prompt_source is None or now - self._prompt_checked < PROMPT_RECHECK_S:
            return
        self._prompt_checked = now
        try:
            prompt = self._prompt_source()
            prompt.check_variables(APP_VARIABLES)
        except UserError as exc:  # a deleted file or label, a variable the app does not pass: keep the one loaded
            log.warning("app %s: keeping prompt %s@%s: %s", self.name, self.prompt.name, self.prompt.version, exc)
            return
        if prompt.version != self.prompt.version:
            log.info("app %s: prompt %s is now version %s", self.name, prompt.name, prompt.version)
            self.prompt = prompt

    @property
    def no_answer(self) -> dict[str, str]:
        """The no-answer message per language: the app's option over the current prompt's."""
        option = self._no_answer_option
        if isinstance(option, str):  # one message for every language: the prompt's per-language ones give way
            return {"en": option}
        return {**self.prompt.no_answer, **(option or {})} or {"en": "I don't know."}

    def _attrs(self) -> dict[str, Any]:
        return {"flywheel.prompt.name": self.prompt.name, "flywheel.prompt.version": self.prompt.version}

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None,
                   filters: Mapping[str, Any] | None = None) -> Answer:
        # The retriever and store are synchronous; a worker thread keeps the event loop free, and
        # in_context makes the spans nest under the caller's span.
        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model, filters=filters)

    def no_answer_message(self, question: str) -> str:
        return pick_language(self.no_answer, language_of(question))

    # ------------------------------------------------------------------ steps
    def _prepare(self, question: str, run: Run, tenant: str, model: str,
                 filters: Mapping[str, Any] | None) -> Plan | Answer:
        found = self._retrieve(question, tenant, filters, run)
        if isinstance(found, Answer):
            return found
        # Both language versions of a page retrieved: the model reads (and cites) the one in the question's.
        hits, retrieved = prefer_question_language(question, found), len(found)
        if hits and self.guards is not None and self.guards.sources:  # instructions hidden in the documents
            scan = self.guards.sources.run([h.chunk.text for h in hits], language_of(question))
            run.guard_actions.extend(scan.actions)
            if not scan.passed:
                return Answer(text=scan.message or "", refused=True, refusal="guard_blocked")
            hits = [hits[i] for i in scan.keep]
        if not hits:  # nothing relevant, or every relevant passage was dropped by a sources guard
            _note(**{"flywheel.no_answer": "no relevant sources"})
            return Answer(text=self.no_answer_message(question), refused=True,
                          refusal="guard_blocked" if retrieved else "no_passage")
        hits = self._arrange(question, hits, run, tenant)

        rendered: dict[str, RenderedPrompt] = {}
        # Identifiers no document contains (order 12345): the extractive model leaves them out of the question's
        # terms, as the relevance floor did; one the corpus has still counts (retriever.unseen_identifiers).
        unseen = getattr(self.retriever, "unseen_identifiers", None)
        meta = {"app": self.name, "tenant": tenant, "prompt_version": self.prompt.version, "question": question,
                "unseen_identifiers": unseen(question, tenant) if unseen is not None else []}

        def request(alias: str) -> ChatRequest:  # a fallback alias gets the prompt in its own family's format
            if alias not in rendered:
                rendered[alias] = self._render(question, hits, alias)
            tag = rendered[alias].reasoning_tag  # strategies compare answers without this reasoning block
            return ChatRequest(messages=rendered[alias].messages(), model=alias,
                               metadata={**meta, "reasoning_tag": tag} if tag else dict(meta))

        messages = request(model).messages
        system = messages[0].content if messages[0].role == "system" else None
        # Cached under the question (not the whole prompt, so the semantic cache compares questions) and the
        # system prompt; the retrieved chunks are the corpus version (a re-ingest that changes them is a new key).
        head = [m for m in messages if m.role == "system"]
        cache_request = ChatRequest(messages=[*head, Message(role="user", content=question)], model=model,
                                    metadata={"tenant": tenant})
        return Plan(request=request, cache_request=cache_request, reask=REASK,
                    context=CheckContext(input=question, sources=[h.chunk.text for h in hits], system_prompt=system),
                    corpus_version=content_hash(*(h.chunk.id for h in hits)),
                    finish=lambda text: number_citations(text, hits), declines=tuple(self.no_answer.values()),
                    clean=lambda text, alias: rendered.get(alias, rendered[model]).finish(text),
                    hold_until=f"</{tag}" if (tag := rendered[model].reasoning_tag) else None)

    def _retrieve(self, question: str, tenant: str, filters: Mapping[str, Any] | None, run: Run
                  ) -> list[Hit] | Answer:
        # The retriever records its own `retrieval.search` span (query, tenant, hits and their scores).
        if self.query is None:
            hits = self.retriever.search(question, k=self._search_k(), tenant=tenant, filters=filters)
            _note(**{"flywheel.hits": len(hits)})
            return hits
        first = self.retriever.search(question, k=self._search_k(), tenant=tenant, filters=filters)
        # The index's per-tenant language counts; without them, the languages of what the question found.
        corpus = corpus_language(self.retriever, tenant, first) if self.query.translate == "auto" else None
        queries = self.augmenter.queries(question, corpus, run, tenant)
        rankings = [first, *(self.retriever.search(q.text, k=self._search_k(), tenant=tenant, filters=filters)
                             for q in queries[1:])]
        hits = fuse(rankings)
        _note(**{"flywheel.hits": len(hits), "flywheel.queries": [q.kind for q in queries]})
        if not hits:
            return self._cross_language(question, tenant, corpus, queries)
        return hits

    def _cross_language(self, question: str, tenant: str, corpus: str | None, queries: list[Query]
                        ) -> list[Hit] | Answer:
        """Nothing found for a question in another script than the corpus, and nothing translated it (offline,
        or translation off): say that it cannot be matched across languages, in the question's language."""
        language = language_of(question)
        corpus = corpus or corpus_language(self.retriever, tenant)
        if not crosses_script(language, corpus) or any(q.kind == "translation" for q in queries):
            return []
        _note(**{"flywheel.no_answer": "cross-language", "flywheel.corpus.language": corpus})
        translate_set = self.query is not None and self.query.translate == "auto"
        return Answer(text=cross_language_message(language, str(corpus), translate_set=translate_set), refused=True,
                      refusal="no_passage")

    def _search_k(self) -> int | None:
        if self.rerank is not None:  # the re-ranker sees `top` candidates; the model the best k of them
            return max(self.rerank.top, self.k or 0)
        return self.k

    def _arrange(self, question: str, hits: list[Hit], run: Run, tenant: str) -> list[Hit]:
        """Re-rank, keep the best k (several queries or a re-ranker see more), then pack under the budget."""
        if self.query is None and self.rerank is None and self.context is None:
            return hits
        hits = self.augmenter.rerank(question, hits, run, tenant)
        if self.rerank is not None or (self.query is not None and len(hits) > self._final_k()):
            hits = hits[:self._final_k()]
        if self.context is not None:
            hits = pack(hits, budget_tokens=self.context.budget_tokens, order=self.context.order,
                        seed=self.context.seed, key=question)
        return hits

    def _final_k(self) -> int:
        return self.k or getattr(getattr(self.retriever, "config", None), "k", None) or 5

    def _render(self, question: str, hits: list[Hit], model: str) -> RenderedPrompt:
        alias = self.gateway.resolve(model)
        family, prefill = family_of(alias), supports_prefill(alias)
        sources = [SourceItem(id=i, text=h.chunk.text, source=h.chunk.source, location=h.chunk.location,
                              title=h.chunk.metadata.get("title")) for i, h in enumerate(hits, start=1)]
        with tracer.span("prompt", kind="other", inputs={"prompt": self.prompt.name, "sources": len(sources)},
                         **{"flywheel.prompt.name": self.prompt.name,
                            "flywheel.prompt.version": self.prompt.version}) as span:
            rendered = self.prompt.render(sources=sources, family=family, prefill=prefill, question=question)
            span.set(outputs={"style": rendered.style, "chars": len(rendered.system) + len(rendered.user),
                              "examples": list(rendered.examples), "prefill_sent": rendered.prefill_sent},
                     **{"flywheel.prompt.family": family})
        return rendered


def number_citations(text: str, hits: list[Hit]) -> tuple[str, dict[str, Any]]:
    """Renumber the answer's [n] in order of first use ([3] … [1] becomes [1] … [2]) and build its citations
    and sources. A number that names no source is left as written and is not a citation."""
    order: list[int] = []
    for n, _, _ in citations_in(text):
        if 1 <= n <= len(hits) and n not in order:
            order.append(n)
    new = {old: i for i, old in enumerate(order, start=1)}
    out, pos = [], 0
    for start, end in dict.fromkeys((s, e) for _, s, e in citations_in(text)):
        parts = _SEPARATOR.split(text[start + 1:end - 1])
        renumbered = [p if i % 2 else str(new.get(int(p), p)) for i, p in enumerate(parts)]
        out += [text[pos:start], "[", "".join(renumbered), "]"]
        pos = end
    text = "".join([*out, text[pos:]])
    citations = [Citation(id=new[old], chunk_id=hits[old - 1].chunk.id, source=hits[old - 1].chunk.source,
                          text=hits[old - 1].chunk.text, location=hits[old - 1].chunk.location) for old in order]
    uncited = [n for n in range(1, len(hits) + 1) if n not in new]
    sources = [_source(n, hits[old - 1], cited=old in new) for n, old in enumerate([*order, *uncited], start=1)]
    return text, {"citations": citations, "sources": sources}


def _note(**attributes: Any) -> None:
    """Attributes on the app span (the span current while the pipeline runs this app's steps)."""
    span = tracer.current()
    if span is not None:
        span.set(**attributes)


def _source(n: int, hit: Hit, *, cited: bool) -> Source:
    chunk = hit.chunk
    return Source(n=n, chunk_id=chunk.id, source=chunk.source, location=chunk.location, text=chunk.text,
                  score=hit.score, cited=cited)
