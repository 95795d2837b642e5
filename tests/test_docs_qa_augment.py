"""Retrieval augmentations of the docs-QA app (flywheel.apps.augment): translation into the corpus language over
a real store, the offline cross-language refusal, HyDE, multi-query, re-ranking (LLM and cross-encoder, robust
to garbage), context packing, and the transform calls counted in the answer's usage and cost."""

from __future__ import annotations

import json

import pytest

from flywheel.apps.augment import corpus_language, fuse, pack, passage_tokens
from flywheel.apps.docs_qa import DocsQA
from flywheel.apps.runtime import Runtime
from flywheel.config import ConfigError, DocsQAOptions, ModelAlias, Price, Project, load_config_file
from flywheel.errors import UserError
from flywheel.gateway import Gateway
from flywheel.prompts import PromptRegistry
from flywheel.tracing import tracer
from flywheel.types import Chunk, Hit, Usage

ZH_DOCS = {
    "password.md": "# 重置密码\n\n在登录页面点击“忘记密码”，输入注册邮箱，然后打开邮件中的链接设置新密码。链接在 30 分钟后失效。\n",
    "billing.md": "# 账单\n\n发票在每月第一个工作日通过邮件发送给账户管理员。\n",
    "export.md": "# 导出数据\n\n在设置页面选择“导出”，系统会生成一个 ZIP 文件，其中包含全部项目数据。\n",
}
EN_DOCS = {"models.md": "# Models\n\nTo pin a model version, set `version:` on the alias. Every result records it.\n"}
TRANSLATION = "如何重置密码？"
QUESTION = "How do I reset my password?"
PRICE = Price(input=1000.0, output=2000.0)  # USD per 1M tokens: every call costs something visible


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """One project with a Chinese tenant (zh) and an English one (en), BM25 only."""
    root = tmp_path_factory.mktemp("augment")
    for folder, docs in (("zh", ZH_DOCS), ("en", EN_DOCS)):
        (root / folder).mkdir()
        for name, text in docs.items():
            (root / folder / name).write_text(text, encoding="utf-8")
    (root / "flywheel.yaml").write_text("retrieval: {embedder: none}\n", encoding="utf-8")
    project = Project.load(root)
    from flywheel.retrieval.ingest import ingest

    with Runtime(project) as rt:
        ingest([root / "zh"], rt.store, project.config, tenant="zh")
        ingest([root / "en"], rt.store, project.config, tenant="en")
        yield rt


def gateway(llm=None) -> Gateway:
    models = {"default": ModelAlias(provider="extractive")}
    if llm is not None:
        models["gpt"] = ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                   max_retries=0, price=PRICE)
        models["small"] = ModelAlias(provider="openai_compat", model="fake-small", base_url=llm.base_url,
                                     max_retries=0, price=PRICE)
    return Gateway(models)


def docs_app(retriever, llm=None, model="default", **options) -> DocsQA:
    opts = DocsQAOptions.model_validate(options)
    return DocsQA(retriever=retriever, gateway=gateway(llm), prompt=PromptRegistry().get("docs_qa"), model=model,
                  k=opts.k, query=opts.query, rerank=opts.rerank, context=opts.context)


def metered(trace) -> tuple[Usage, float]:
    """Usage and cost of every model attempt in a trace (the gateway's attempt spans)."""
    attempts = [s for s in trace if s.kind == "llm" and "gen_ai.usage.input_tokens" in s.attributes]
    usage = Usage(input_tokens=sum(s.attributes["gen_ai.usage.input_tokens"] for s in attempts),
                  output_tokens=sum(s.attributes["gen_ai.usage.output_tokens"] for s in attempts))
    return usage, sum(s.attributes["flywheel.cost_usd"] for s in attempts)


def in_trace(spans, answer) -> list:
    return [s for s in spans if s.trace_id == answer.trace_id]


def final_requests(llm) -> list[dict]:
    return [r for r in llm.requests if r["messages"][-1]["content"].startswith("Sources:")]


# ---------------------------------------------------------------------- translation over a real store
def test_english_question_over_chinese_documents_is_translated_and_answered_in_english(runtime, llm, spans):
    llm.add(r"^Translate into Simplified Chinese", TRANSLATION)
    llm.add(r"^Sources:", "Click “Forgot password” on the login page and follow the link in the email [1].")
    app = docs_app(runtime.retriever, llm, model="gpt", query={"translate": "auto"})
    answer = app.run(QUESTION, tenant="zh")

    assert not answer.refused, answer.text
    assert answer.text.startswith("Click “Forgot password”")
    assert len(answer.citations) == 1 and answer.citations[0].source.endswith("password.md")
    assert "忘记密码" in answer.citations[0].text
    (final,) = final_requests(llm)
    user = final["messages"][-1]["content"]
    assert "忘记密码" in user and f"Question: {QUESTION}" in user  # Chinese sources, the question as asked

    trace = [s for s in spans if s.trace_id == answer.trace_id]
    searched = [s.inputs["query"] for s in trace if s.name == "retrieval.search"]
    assert searched == [QUESTION, TRANSLATION]
    (translate,) = [s for s in trace if s.name == "augment.translate"]
    assert translate.attributes["flywheel.cost_usd"] > 0 and translate.outputs == TRANSLATION
    # The answer's usage and cost are every model call of the run: the translation and the answer.
    assert len([s for s in trace if s.name == "gateway.chat"]) == 2
    assert answer.usage == metered(trace)[0] and answer.usage.input_tokens > 0
    assert answer.cost_usd == pytest.approx(metered(trace)[1])
    assert answer.cost_usd > translate.attributes["flywheel.cost_usd"]


def test_a_streamed_answer_is_translated_too(runtime, llm, spans):
    llm.add(r"^Translate into Simplified Chinese", TRANSLATION)
    llm.add(r"^Sources:", "Use “Forgot password” [1].")
    stream = docs_app(runtime.retriever, llm, model="gpt", query={"translate": "auto"}).stream(QUESTION, tenant="zh")
    assert "".join(stream) == "Use “Forgot password” [1]."
    assert stream.answer is not None and "忘记密码" in stream.answer.citations[0].text
    assert len(llm.requests) == 2
    assert stream.answer.usage == metered(in_trace(spans, stream.answer))[0]
    assert any(s.name == "augment.translate" for s in in_trace(spans, stream.answer))


def test_without_translation_the_same_question_finds_nothing(runtime, llm):
    app = docs_app(runtime.retriever, llm, model="gpt")
    answer = app.run(QUESTION, tenant="zh")
    assert answer.refused and answer.refusal == "no_passage"
    assert llm.requests == []


def test_offline_cross_language_says_it_cannot_match_in_the_questions_language(runtime, spans):
    app = docs_app(runtime.retriever, query={"translate": True})  # the extractive provider: nothing translates
    answer = app.run(QUESTION, tenant="zh")
    assert answer.refused and answer.refusal == "no_passage" and answer.citations == []
    assert answer.text.startswith("I can't match this question to the documents: they are in Chinese and the "
                                  "question is in English")
    # the app already translates: only the model is missing, so it is not told to set what it has
    assert "but its model cannot" in answer.text and "set the app's" not in answer.text
    root = next(s for s in spans if s.trace_id == answer.trace_id and s.kind == "app")
    assert root.attributes["flywheel.no_answer"] == "cross-language"
    assert root.attributes["flywheel.corpus.language"] == "zh"

    zh = app.run("如何固定模型版本？", tenant="en")
    assert zh.refused and zh.text.startswith("无法跨语言匹配") and "英文" in zh.text and "不能翻译" in zh.text

    same_language = app.run("如何删除账户？", tenant="zh")  # nothing relevant, but not a language problem
    assert same_language.refused and "跨语言" not in same_language.text


def test_corpus_language_from_the_index_counts_else_from_sampled_hits(runtime):
    assert corpus_language(runtime.retriever, "zh") == "zh" and corpus_language(runtime.retriever, "en") == "en"
    assert corpus_language(runtime.retriever, "nobody") is None
    sample = hits_of("这是一段中文说明文字。", "另一段中文内容。", "An English passage about models.")
    assert corpus_language(WordRetriever([]), "t", sample) == "zh"  # no index: the majority of the sample
    assert corpus_language(WordRetriever([]), "t") is None


def test_a_failing_translation_still_searches_the_question(runtime, llm):
    from flywheel.testing.fake_llm import Fault

    llm.fail(Fault.SERVER_ERROR, times=1)
    app = docs_app(runtime.retriever, llm, model="gpt", query={"translate": "auto"})
    answer = app.run(QUESTION, tenant="zh")
    assert answer.refused and answer.refusal == "no_passage"


# ---------------------------------------------------------------------- HyDE, multi-query (scripted retriever)
INVOICE = "Invoices list token charges per model alias and are emailed monthly."
PIN = "To pin a model version, set version on the alias."
KEYS = "Rotate API keys from the keys page; old keys stop working after an hour."


class WordRetriever:
    """Chunks sharing a word (> 3 letters) with the query, most shared first; records every query."""

    def __init__(self, texts):
        self.chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text=t, source=f"page{i}.md") for i, t in enumerate(texts)]
        self.queries: list[str] = []

    def search(self, query, k=None, tenant="default", filters=None, mode="hybrid"):
        self.queries.append(query)
        with tracer.span("retrieval.search", kind="retrieval", inputs={"query": query}):
            words = {w.strip("?.,").lower() for w in query.split() if len(w) > 3}
            scored = [(sum(w in c.text.lower() for w in words), c) for c in self.chunks]
            ranked = sorted((x for x in scored if x[0] > 0), key=lambda x: -x[0])
            return [Hit(chunk=c, score=float(s)) for s, c in ranked][: k or 5]


def test_hyde_searches_with_a_hypothetical_answer(llm):
    llm.add(r"^Question: Why is my bill", "Invoices show token charges for every model alias.", model="fake-model")
    llm.add(r"^Sources:", "Your invoice lists token charges per alias [1].")
    question = "Why is my bill so high?"
    plain = WordRetriever([PIN, INVOICE])
    assert docs_app(plain, llm, model="gpt").run(question).refused  # the question alone shares no word

    retriever = WordRetriever([PIN, INVOICE])
    answer = docs_app(retriever, llm, model="gpt", query={"hyde": True}).run(question)
    assert not answer.refused and answer.citations[0].text == INVOICE
    assert retriever.queries == [question, "Invoices show token charges for every model alias."]
    hyde_request = next(r for r in llm.requests if r["messages"][0]["content"].startswith("Write a short passage"))
    assert "Write in English" in hyde_request["messages"][0]["content"]


def test_multi_query_fuses_the_paraphrases_with_rrf(llm, spans):
    llm.add(r"^Question: How do I change my credentials",
            "1. rotate api keys\n2. which version setting\n3. rotate api keys")
    llm.add(r"^Sources:", "Rotate them on the keys page [1].")
    retriever = WordRetriever([PIN, INVOICE, KEYS])
    question = "How do I change my credentials?"
    answer = docs_app(retriever, llm, model="gpt", query={"multi_query": 3}).run(question)
    # the duplicate paraphrase is searched once
    assert retriever.queries == [question, "rotate api keys", "which version setting"]
    assert [s.text for s in answer.sources] == [KEYS, PIN]
    user = final_requests(llm)[0]["messages"][-1]["content"]
    assert user.index(KEYS) < user.index(PIN)  # equal RRF scores: the earlier query ranks first
    root = next(s for s in spans if s.trace_id == answer.trace_id and s.kind == "app")
    assert root.attributes["flywheel.queries"] == ["question", "paraphrase", "paraphrase"]
    assert answer.usage == metered(in_trace(spans, answer))[0]
    assert len([s for s in in_trace(spans, answer) if s.name == "gateway.chat"]) == 2


def test_fuse_uses_reciprocal_rank_fusion():
    a, b, c = (Hit(chunk=Chunk(id=x, doc_id=x, text=x, source=x), score=1.0) for x in "abc")
    fused = fuse([[a, b], [b, c]])
    assert [h.chunk.id for h in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fuse([[a, b], []]) == [a, b]


# ---------------------------------------------------------------------- re-ranking
def passages_in_prompt(llm) -> list[str]:
    user = final_requests(llm)[0]["messages"][-1]["content"]
    return sorted((t for t in (PIN, INVOICE, KEYS) if t in user), key=user.index)


def test_llm_rerank_reorders_the_passages(llm, spans):
    llm.add(r"Passages:", json.dumps({"scores": [{"id": 1, "score": 2}, {"id": 2, "score": 9}]}))
    llm.add(r"^Sources:", "Pinned with version [1].")
    retriever = WordRetriever([PIN, INVOICE])
    app = docs_app(retriever, llm, model="gpt", rerank={"model": "small", "top": 10}, k=2)
    answer = app.run("model alias version invoices")  # PIN shares 3 words, INVOICE 2
    assert passages_in_prompt(llm) == [INVOICE, PIN]
    rerank_call = next(r for r in llm.requests if "Passages:" in r["messages"][-1]["content"])
    assert rerank_call["model"] == "fake-small"
    span = next(s for s in spans if s.name == "augment.rerank" and s.trace_id == answer.trace_id)
    assert span.attributes["flywheel.cost_usd"] > 0
    assert answer.cost_usd == pytest.approx(metered(in_trace(spans, answer))[1])
    assert answer.cost_usd > span.attributes["flywheel.cost_usd"]


@pytest.mark.parametrize("garbage", ["I think passage two is best.", '{"scores": [{"id": 1, "score": 55}]}',
                                     '{"scores": [{"id": 7, "score": 3}]}'])
def test_rerank_falls_back_to_the_original_order_on_garbage(llm, spans, garbage):
    llm.add(r"Passages:", garbage)
    llm.add(r"^Sources:", "Pinned with version [1].")
    app = docs_app(WordRetriever([PIN, INVOICE]), llm, model="gpt", rerank={"model": "small"})
    answer = app.run("model alias version invoices")
    assert not answer.refused and passages_in_prompt(llm) == [PIN, INVOICE]
    span = next(s for s in spans if s.name == "augment.rerank" and s.trace_id == answer.trace_id)
    assert span.attributes["flywheel.augment.fallback"] == "original order"


def test_cross_encoder_hook_and_its_absence(spans):
    class ByLength:
        def score(self, query, passages):
            return [len(p) for p in passages]

    retriever = WordRetriever([PIN, INVOICE])
    opts = DocsQAOptions.model_validate({"rerank": {"model": None}})
    app = DocsQA(retriever=retriever, gateway=gateway(), prompt=PromptRegistry().get("docs_qa"),
                 rerank=opts.rerank, cross_encoder=ByLength())
    answer = app.run("model alias version invoices")  # a tie (3 shared words each): PIN is retrieved first
    span = next(s for s in in_trace(spans, answer) if s.name == "augment.rerank")
    assert span.attributes["flywheel.augment.reranker"] == "cross_encoder"
    assert [o["chunk_id"] for o in span.outputs] == ["c1", "c0"]  # the longer passage, INVOICE, first
    assert not answer.refused and answer.citations[0].text == INVOICE
    with pytest.raises(UserError, match="no model and no cross-encoder"):
        DocsQA(retriever=retriever, gateway=gateway(), prompt=PromptRegistry().get("docs_qa"), rerank=opts.rerank)


# ---------------------------------------------------------------------- packing
def hits_of(*texts: str) -> list[Hit]:
    return [Hit(chunk=Chunk(id=f"c{i}", doc_id="d", text=t, source="s"), score=10.0 - i) for i, t in enumerate(texts)]


def test_pack_respects_the_budget_and_keeps_the_best_passage():
    hits = hits_of("a" * 400, "b" * 800, "c" * 100, "重置密码" * 20)  # 100, 200, 25 and 80 tokens
    assert [passage_tokens(h.chunk.text) for h in hits] == [100, 200, 25, 80]
    packed = pack(hits, budget_tokens=210)
    assert [h.chunk.id for h in packed] == ["c0", "c2", "c3"]
    assert sum(passage_tokens(h.chunk.text) for h in packed) <= 210
    assert [h.chunk.id for h in pack(hits, budget_tokens=10)] == ["c0"]  # the best one even when too long
    assert len(pack(hits)) == 4


def test_pack_orders_best_first_best_at_ends_and_seeded_shuffle():
    hits = hits_of(*"12345")
    ids = lambda hs: [h.chunk.text for h in hs]
    assert ids(pack(hits, order="best_first")) == list("12345")
    assert ids(pack(hits, order="best_at_ends")) == list("13542")  # best first, second best last
    shuffled = ids(pack(hits, order="shuffle", seed=7))
    assert sorted(shuffled) == list("12345") and shuffled != list("12345")
    assert ids(pack(hits, order="shuffle", seed=7)) == shuffled  # seeded: the same every run
    per_question = {tuple(ids(pack(hits, order="shuffle", seed=7, key=f"question {i}"))) for i in range(6)}
    assert len(per_question) > 1  # each question gets its own permutation


def test_context_shuffle_reorders_what_the_model_sees(llm):
    question = "model alias version invoices keys rotate"
    orders = []
    for seed in range(4):
        llm.reset()
        llm.add(r"^Sources:", "See [1].")
        docs_app(WordRetriever([PIN, INVOICE, KEYS]), llm, model="gpt",
                 context={"order": "shuffle", "seed": seed}).run(question)
        orders.append(tuple(passages_in_prompt(llm)))
    assert all(sorted(o) == sorted((PIN, INVOICE, KEYS)) for o in orders) and len(set(orders)) > 1


def test_context_budget_limits_what_the_model_sees(llm):
    llm.add(r"^Sources:", "See [1].")
    retriever = WordRetriever([PIN, INVOICE, KEYS])
    question = "model alias version invoices keys rotate"
    app = docs_app(retriever, llm, model="gpt", context={"budget_tokens": passage_tokens(PIN) + 1})
    app.run(question)
    assert len(passages_in_prompt(llm)) == 1


# ---------------------------------------------------------------------- options
def test_unknown_transform_alias_fails_when_the_app_is_built():
    with pytest.raises(UserError, match="nope"):
        docs_app(WordRetriever([PIN]), rerank={"model": "nope"})
    with pytest.raises(UserError, match="nope"):
        docs_app(WordRetriever([PIN]), query={"rewrite": True, "model": "nope"})


def test_offline_transforms_are_skipped_and_the_question_still_answered(spans):
    retriever = WordRetriever([PIN, INVOICE])
    answer = docs_app(retriever, query={"rewrite": True, "hyde": True, "multi_query": 2}).run("How to pin a version?")
    assert not answer.refused and retriever.queries == ["How to pin a version?"]
    root = next(s for s in in_trace(spans, answer) if s.kind == "app")
    assert root.attributes["flywheel.augment.skipped"].startswith("offline")


def test_bad_options_are_config_errors_with_file_and_line(tmp_path):
    path = tmp_path / "flywheel.yaml"
    path.write_text("apps:\n  docs_qa:\n    options:\n      query:\n        translate: maybe\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert "query.translate" in err.value.message and err.value.where.endswith(":5")
    path.write_text("apps:\n  docs_qa:\n    options:\n      context: {order: random}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert "best_at_ends" in str(err.value) and err.value.where.endswith(":4")
    opts = DocsQAOptions.model_validate({"query": {"translate": True, "multi_query": 3}})
    assert opts.query is not None and opts.query.translate == "auto"
