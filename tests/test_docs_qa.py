"""The docs-QA app with a scripted retriever: prompt, generation through fake_llm, citations, "I don't know",
spans and guards. (test_docs_qa_store.py runs the same app over the real store and retriever.)"""

from __future__ import annotations

import asyncio

import pytest

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.gateway import Gateway
from flywheel.guards import GuardPolicy
from flywheel.prompts import PromptRegistry
from flywheel.tracing import tracer
from flywheel.types import Chunk, Hit

PIN = "To pin a model version, set `version:` on the alias. Every result records it."
FALLBACK = "Fallbacks are tried in order when every retry of an alias failed."
ZH = "flywheel 默认完全离线运行，使用内置的抽取式模型。"


class ScriptedRetriever:
    """Returns the chunks sharing a word with the query, best first; records every call."""

    def __init__(self, texts: list[str]):
        self.chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text=t, source=f"docs/page{i}.md", location=f"Section {i}")
                       for i, t in enumerate(texts)]
        self.calls: list[dict] = []

    def search(self, query, k=None, tenant="default", filters=None, mode="hybrid"):
        with tracer.span("retrieval.search", kind="retrieval", inputs={"query": query}):
            return self._search(query, k, tenant, filters)

    def _search(self, query, k, tenant, filters):
        self.calls.append({"query": query, "k": k, "tenant": tenant, "filters": filters})
        words = {w.strip("?.,").lower() for w in query.split() if len(w) > 3}
        scored = [(sum(w in c.text.lower() for w in words), c) for c in self.chunks]
        hits = [Hit(chunk=c, score=s, ranks={"bm25": i + 1}) for i, (s, c) in
                enumerate(sorted((x for x in scored if x[0] > 0), key=lambda x: -x[0]))]
        return hits[: k or 5]




def make_app(llm=None, texts=(PIN, FALLBACK, ZH), model="default", **kw):
    from flywheel.apps.docs_qa import DocsQA

    models = {"default": ModelAlias(provider="extractive")}
    if llm is not None:
        models["gpt"] = ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                   max_retries=0)
        models["claude"] = ModelAlias(provider="openai_compat", model="claude-3-5-haiku", base_url=llm.base_url,
                                      max_retries=0)
    retriever = ScriptedRetriever(list(texts))
    app = DocsQA(retriever=retriever, gateway=Gateway(models), prompt=PromptRegistry().get("docs_qa"),
                 model=model, **kw)
    return app, retriever


def test_extractive_answer_quotes_and_cites_the_right_chunk(spans):
    app, retriever = make_app()
    answer = app.run("How do I pin a model version?", tenant="acme")
    assert "“To pin a model version, set `version:` on the alias.” [1]" in answer.text
    assert [(c.id, c.chunk_id, c.source) for c in answer.citations] == [(1, "c0", "docs/page0.md")]
    assert answer.citations[0].text == PIN and answer.citations[0].location == "Section 0"
    assert not answer.refused
    assert retriever.calls == [{"query": "How do I pin a model version?", "k": None, "tenant": "acme",
                                "filters": None}]

    by_id = {s.span_id: s for s in spans if s.trace_id == answer.trace_id}
    root = next(s for s in by_id.values() if s.parent_id is None)
    assert root.kind == "app" and root.name == "docs_qa"
    assert root.attributes["flywheel.app"] == "docs_qa" and root.attributes["flywheel.tenant"] == "acme"
    assert root.attributes["flywheel.prompt.version"] == app.prompt.version
    children = {s.name: s for s in by_id.values() if s.parent_id == root.span_id}
    assert {"retrieval.search", "prompt", "gateway.chat"} <= set(children)
    assert children["retrieval.search"].kind == "retrieval" and children["gateway.chat"].kind == "llm"
    assert root.attributes["flywheel.hits"] == 1
    assert children["gateway.chat"].attributes["flywheel.prompt.version"] == app.prompt.version
    assert children["gateway.chat"].attributes["flywheel.tenant"] == "acme"


def test_generation_through_an_openai_compatible_model(llm):
    llm.add(r"pin a model version", "Set `version:` on the alias [1]; results record it [1]. Also see [9].")
    app, _ = make_app(llm, model="gpt")
    answer = app.run("How do I pin a model version?")
    assert answer.text.startswith("Set `version:`")
    assert [c.id for c in answer.citations] == [1]  # [9] names no source: not a citation
    assert answer.citations[0].chunk_id == "c0"

    (request,) = llm.requests
    system, user = request["messages"][0]["content"], request["messages"][1]["content"]
    assert "[n]" in system and "ONLY" in system
    assert f"### [1] docs/page0.md Section 0\n{PIN}" in user
    assert "Question: How do I pin a model version?" in user
    assert request["model"] == "fake-model"


def test_claude_family_models_get_xml_sources(llm):
    llm.add(r".", "It is pinned with version [1].")
    app, _ = make_app(llm, model="claude")
    app.run("How do I pin a model version?")
    user = llm.requests[0]["messages"][1]["content"]
    assert f'<source id="1" name="docs/page0.md" location="Section 0">\n{PIN}\n</source>' in user


def test_no_relevant_source_answers_i_dont_know_without_calling_the_model(llm, spans):
    app, _ = make_app(llm, model="gpt")
    answer = app.run("What is the boiling point of mercury?")
    assert answer.refused and answer.citations == []
    assert answer.text == "I don't know: the indexed documents do not cover this question."
    zh = app.run("水银的沸点是多少？")
    assert zh.refused and zh.text.startswith("我不知道")
    assert llm.requests == []
    assert not [s for s in spans if s.kind == "llm"]
    root = next(s for s in spans if s.trace_id == answer.trace_id and s.kind == "app")
    assert root.attributes["flywheel.refused"] is True


def test_no_answer_message_is_configurable(llm):
    app, _ = make_app(llm, model="gpt", no_answer={"en": "No idea.", "zh": "不知道。"})
    assert app.run("Tell me about mercury").text == "No idea."
    assert app.run("告诉我关于水银的事").text == "不知道。"
    assert llm.requests == []


def test_one_no_answer_text_is_used_for_every_language(llm):
    """`options.no_answer: "…"` (a string, as the Chinese quickstart shows) replaces the built-in messages for
    questions in every language, not only English ones."""
    app, _ = make_app(llm, model="gpt", no_answer="抱歉，资料里没有。")
    assert app.run("告诉我关于水银的事").text == "抱歉，资料里没有。"
    assert app.run("Tell me about mercury").text == "抱歉，资料里没有。"
    assert llm.requests == []


def test_model_override_and_filters_are_passed_through(llm):
    llm.add(r".", "Fallbacks are tried in order [1].")
    app, retriever = make_app(llm, filters={"lang": "en"}, k=3)
    answer = app.run("When are fallbacks tried?", model="gpt", filters={"section": "models"})
    assert answer.text == "Fallbacks are tried in order [1]." and len(llm.requests) == 1
    assert retriever.calls[-1]["filters"] == {"lang": "en", "section": "models"} and retriever.calls[-1]["k"] == 3
    with pytest.raises(UserError, match="unknown model alias 'nope'"):
        app.run("When are fallbacks tried?", model="nope")
    with pytest.raises(UserError, match="empty"):
        app.run("   ")


def test_output_guard_reasks_when_an_answer_cites_a_missing_source(llm):
    llm.add(r"failed the `grounding` check", "“To pin a model version, set `version:` on the alias.” [1]")
    llm.add(r".", "Pin it as described in [7].")
    policy = GuardPolicy.from_config({"output": [{"check": "grounding", "on_fail": "reask"}]})
    app, _ = make_app(llm, model="gpt", guards=policy)
    answer = app.run("How do I pin a model version?")
    assert answer.text.endswith("[1]") and [c.id for c in answer.citations] == [1]
    assert len(llm.requests) == 2
    retry = llm.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Pin it as described in [7]."}
    assert [r.passed for r in answer.checks] == [False, True]


def test_input_guard_block_skips_retrieval_and_model(llm):
    policy = GuardPolicy.from_config({"input": [{"check": "not-contains", "value": "password",
                                                 "on_fail": "block", "message": "Not here."}]})
    app, retriever = make_app(llm, model="gpt", guards=policy)
    answer = app.run("what is the admin password")
    assert answer.text == "Not here." and answer.refused
    assert retriever.calls == [] and llm.requests == []


def test_arun_nests_spans_under_the_callers_span(spans):
    app, _ = make_app()

    async def main():
        with tracer.span("outer", kind="other") as outer:
            answer = await app.arun("When are fallbacks tried?")
            return outer, answer

    outer, answer = asyncio.run(main())
    assert answer.trace_id == outer.trace_id and "Fallbacks are tried in order" in answer.text
    app_span = next(s for s in spans if s.kind == "app" and s.trace_id == outer.trace_id)
    assert app_span.parent_id == outer.span_id


def test_answers_are_cached_per_question_retrieved_chunks_and_tenant(llm, spans):
    from flywheel.cache import Cache
    from flywheel.config import CacheConfig

    llm.add(r".", "Set `version:` on the alias [1].")
    app, retriever = make_app(llm, model="gpt", cache=Cache.from_config(CacheConfig(backend="memory")))
    first = app.run("How do I pin a model version?")
    again = app.run("How do I pin a model version?")
    assert again.text == first.text and again.citations == first.citations
    assert len(llm.requests) == 1
    root = next(s for s in spans if s.trace_id == again.trace_id and s.kind == "app")
    assert root.attributes["flywheel.cache.hit"] is True

    app.run("How do I pin a model version?", tenant="other")
    assert len(llm.requests) == 2
    retriever.chunks[0] = retriever.chunks[0].model_copy(update={"id": "c0-reingested"})
    app.run("How do I pin a model version?")
    assert len(llm.requests) == 3


def test_sources_guard_actions_and_refusal_kind_are_on_the_answer(llm):
    from test_guards_policy import POISON

    llm.default = "Set `version:` on the alias [1]."
    drop = GuardPolicy.from_config({"sources": [{"check": "test-flags-poison", "on_fail": "drop"}]})
    app, _ = make_app(llm, texts=(PIN, POISON), model="gpt", guards=drop)
    answer = app.run("How are model versions pinned?")
    assert not answer.refused and [(a.stage, a.action) for a in answer.guard_actions] == [("sources", "drop")]
    assert [s.chunk_id for s in answer.sources] == ["c0"]  # the dropped passage was never shown to the model
    only_poison, _ = make_app(llm, texts=(POISON,), model="gpt", guards=drop)
    dropped_all = only_poison.run("How are model versions pinned?")
    assert dropped_all.refused and dropped_all.refusal == "guard_blocked"
    block = GuardPolicy.from_config({"sources": [{"check": "test-flags-poison", "on_fail": "block"}]})
    blocked, _ = make_app(llm, texts=(PIN, POISON), model="gpt", guards=block)
    assert blocked.run("How are model versions pinned?").refusal == "guard_blocked"
