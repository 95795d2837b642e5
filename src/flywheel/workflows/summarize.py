"""The `summarize` app kind: map-reduce summarisation. Documents are cut into pieces, each piece is summarised
(map), and the summaries are combined in batches until one is left (reduce).

    pieces (python) → parts (map: one summary per piece) → summary (reduce: batches of `batch`)

    apps:
      digest:
        kind: summarize
        model: strong
        options: {source: input, chunk_tokens: 800, batch: 8, max_words: 150}   # or source: search, k: 20

`source: input` summarises the text it is given; `source: search` summarises the ingested passages found for the
input (a query-focused summary, its sources listed on the Answer). In Python:

    summarize_documents(["doc one …", "doc two …"], services=WorkflowServices(gateway=gw)).output
"""

from __future__ import annotations

import time
from typing import Any

from flywheel.errors import ConfigError, UserError
from flywheel.prompts.render import language_of, pick_language
from flywheel.types import Answer, Document, Source, content_hash
from flywheel.workflows.builders import map_step, reduce_step, retrieve_step
from flywheel.workflows.dag import Workflow
from flywheel.workflows.kinds import WorkflowServices
from flywheel.workflows.runner import RunResult, WorkflowRunner
from flywheel.workflows.steps import Step

MAP_PROMPT = ("Summarise this text in at most {words} words. Keep names, numbers and dates exactly as written; "
              "add nothing that is not in it. Write in the language of the text.\n\n{{item}}")
NO_PASSAGE = {"en": "No ingested passage matches this topic, so there is nothing to summarise.",
              "zh": "没有与这个主题相符的已导入段落，因此没有可总结的内容。"}
NO_SUMMARY = {"en": "No summary: ", "zh": "无法生成摘要："}
REDUCE_PROMPT = ("These are summaries of consecutive parts of the same material. Combine them into one summary of "
                 "at most {words} words, without repeating yourself and adding nothing new.\n\n{{items}}")


def split_pieces(documents: Any, chunk_tokens: int) -> list[str]:
    """Texts cut into pieces of about `chunk_tokens` tokens (at paragraph and sentence breaks where possible)."""
    from flywheel.retrieval.chunking import Chunker, approximate_tokens, split_by_characters

    docs = [documents] if isinstance(documents, str) else list(documents or [])
    chunker = Chunker(approximate_tokens, split_by_characters, chunk_tokens=chunk_tokens, overlap=0)
    pieces: list[str] = []
    for doc in docs:
        text = doc.get("text", "") if isinstance(doc, dict) else str(doc)
        if text.strip():
            pieces += [c.text for c in chunker.chunk(Document(id=content_hash(text), text=text, source="input"))]
    return pieces


def summarize_workflow(*, chunk_tokens: int = 800, batch: int = 8, max_words: int = 150, model: str = "default",
                       search_k: int | None = None, filters: dict | None = None, name: str = "summarize") -> Workflow:
    """`search_k` None: summarise the `documents` input; otherwise the passages found for the `question` input."""
    steps: list[Step] = []
    if search_k is not None:
        steps.append(retrieve_step("search", "{{inputs.question}}", k=search_k, filters=filters))

        def pieces(search: list[dict[str, Any]]) -> list[str]:
            return split_pieces([h["text"] for h in search], chunk_tokens)
    else:
        def pieces(documents: Any) -> list[str]:  # type: ignore[misc]
            return split_pieces(documents, chunk_tokens)

    steps += [
        Step(id="pieces", kind="python", fn=pieces),
        map_step("parts", "{{steps.pieces.output}}", MAP_PROMPT.replace("{words}", str(max_words))),
        reduce_step("summary", "{{steps.parts.output}}", REDUCE_PROMPT.replace("{words}", str(max_words)),
                    batch=batch),
    ]
    inputs = ["question"] if search_k is not None else ["documents"]
    return Workflow(steps=steps, name=name, inputs=inputs, model=model, output="{{steps.summary.output}}")


def summarize_documents(documents: list[str] | str, *, services: WorkflowServices, model: str = "default",
                        chunk_tokens: int = 800, batch: int = 8, max_words: int = 150) -> RunResult:
    wf = summarize_workflow(chunk_tokens=chunk_tokens, batch=batch, max_words=max_words, model=model)
    return WorkflowRunner(wf, services).run({"documents": documents})


class SummarizeApp:
    kind = "summarize"

    def __init__(self, *, gateway: Any, retriever: Any = None, model: str = "default", name: str = "summarize",
                 tenant: str = "default", source: str = "input", k: int = 20, filters: dict | None = None,
                 chunk_tokens: int = 800, batch: int = 8, max_words: int = 150, store: Any = None):
        self.gateway, self.retriever, self.model, self.name, self.tenant = gateway, retriever, model, name, tenant
        self.source, self.store = source, store
        self._shape = {"chunk_tokens": chunk_tokens, "batch": batch, "max_words": max_words,
                       "search_k": k if source == "search" else None, "filters": filters}
        self.workflow = summarize_workflow(model=model, name=name, **self._shape)  # type: ignore[arg-type]
        self.prompt_version = self.workflow.version

    def run(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        text = (input or "").strip()
        if not text:
            raise UserError("nothing to summarise", hint="give the text (source: input) or a topic (source: search)")
        start = time.perf_counter()
        wf = self.workflow if model in (None, self.model) else summarize_workflow(
            model=str(model), name=self.name, **self._shape)  # type: ignore[arg-type]
        services = WorkflowServices(gateway=self.gateway, retriever=self.retriever, store=self.store,
                                    tenant=tenant or self.tenant)
        inputs = {"question": text} if self.source == "search" else {"documents": [text]}
        result = WorkflowRunner(wf, services).run(inputs)
        hits = result.outputs.get("search") or []
        sources = [Source(n=h["n"], chunk_id=h["chunk_id"], source=h["source"], location=h.get("location"),
                          text=h["text"], score=h.get("score", 0.0)) for h in hits]
        common: dict[str, Any] = {"trace_id": result.trace_id, "usage": result.usage, "cost_usd": result.cost_usd,
                  "models": result.models, "app": self.name, "sources": sources, "prompt_version": self.prompt_version,
                  "latency_ms": (time.perf_counter() - start) * 1000}
        if self.source == "search" and not hits:
            return Answer(text=pick_language(NO_PASSAGE, language_of(text)), refused=True, refusal="no_passage",
                          **common)
        if result.status != "done":
            return Answer(text=f"{pick_language(NO_SUMMARY, language_of(text))}{result.reason}", refused=True,
                          refusal="guard_blocked", **common)
        return Answer(text=str(result.output or ""), **common)

    async def arun(self, input: str, tenant: str | None = None, *, model: str | None = None) -> Answer:
        import asyncio

        from flywheel.tracing import in_context

        return await asyncio.to_thread(in_context(self.run), input, tenant, model=model)


def summarize_factory(runtime: Any, name: str, cfg: Any, cache: bool = True) -> SummarizeApp:
    """APP_KINDS factory: `apps: {NAME: {kind: summarize, options: {…}}}`."""
    from flywheel.config import SummarizeOptions

    project = runtime.project
    o = SummarizeOptions.model_validate(cfg.options)  # checked with file:line when flywheel.yaml loaded
    if runtime.gateway.resolve(cfg.model).provider == "extractive":
        raise ConfigError(f"app '{name}' (summarize) needs a generative model; '{cfg.model}' is the offline "
                          "extractive model", where=project.where("apps", name, "model"),
                          hint="set `model:` to an alias of a real model under `models:`")
    retriever = runtime.retriever if o.source == "search" else None
    return SummarizeApp(gateway=runtime.gateway, retriever=retriever, model=cfg.model, name=name, tenant=cfg.tenant,
                        source=o.source, k=o.k, filters=o.filters, chunk_tokens=o.chunk_tokens, batch=o.batch,
                        max_words=o.max_words, store=runtime.store)
