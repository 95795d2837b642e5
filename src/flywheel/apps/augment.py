"""Retrieval augmentations of the docs-QA app: query transforms, re-ranking and context packing.

    augment = Augmenter(gateway=gw, prompts=PromptRegistry(root), model="default",
                        query=QueryOptions(translate="auto", multi_query=3), rerank=None, context=None)
    queries = augment.queries(question, corpus_language="zh", run=run)   # [Query(kind, text), …]
    hits = fuse([retriever.search(q.text, …) for q in queries])            # RRF over the rankings
    hits = augment.rerank(question, hits, run=run)                         # LLM or cross-encoder, or unchanged
    hits = pack(hits, budget_tokens=3000, order="best_at_ends")            # what the model sees

Each model call of a transform (translate, rewrite, HyDE, paraphrases, re-rank) is an `augment.<kind>` span
with its usage and cost (`gen_ai.usage.*`, `flywheel.cost_usd`), and is charged to the run, so `Answer.usage`
and `Answer.cost_usd` include it. A transform whose call fails, or whose output is unusable, is skipped (the
span says why): the question itself is always searched. The prompts are small packaged prompt files
(`query_translate`, `query_rewrite`, `query_hyde`, `query_paraphrase`, `rerank`), overridable per project
like docs_qa.yaml.

Offline (the transform alias is the `extractive` provider), nothing can be generated: transforms are skipped,
and a question the corpus cannot match because it is in another script gets `cross_language_message` in the
question's language instead of an unrelated answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from flywheel.config import DocsQAOptions
from flywheel.errors import FlywheelError
from flywheel.gateway.providers import estimate_tokens
from flywheel.gateway.structured import StructuredOutputError, chat_structured
from flywheel.prompts import family_of, supports_prefill
from flywheel.prompts.cross_language import LANGUAGE_NAMES, cross_language_message  # noqa: F401 - docs_qa imports it here
from flywheel.retrieval.fusion import rrf
from flywheel.text.language import LANGUAGES, LATIN, detect_language, normalize_language
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult, Hit

QueryOptions = DocsQAOptions.QueryOptions
RerankOptions = DocsQAOptions.RerankOptions
ContextOptions = DocsQAOptions.ContextOptions

_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)、:]|\(\d+\))\s*")
RERANK_CHARS = 1200  # each passage as the re-ranker sees it (a long chunk is judged by its start)


def script(language: str) -> str:
    """The writing system a language tag stands for; keywords only match within one."""
    if language in LATIN:
        return "latin"
    return {"ja": "zh", "uk": "ru"}.get(language, language)


def crosses_script(question_language: str, corpus_language: str | None) -> bool:
    return bool(question_language and corpus_language) and script(question_language) != script(str(corpus_language))


def corpus_language(retriever: Any, tenant: str, sample: Sequence[Hit] = ()) -> str | None:
    """The majority language of the tenant's indexed chunks: the per-tenant language counts the index keeps
    (one small query), else the majority detected over `sample` hits; None when unknown."""
    counts: Mapping[str, int] = {}
    index = getattr(retriever, "index", None)
    languages = getattr(index, "languages", None) or getattr(retriever, "languages", None)
    if callable(languages):
        try:
            counts = languages(tenant) or {}
        except Exception:  # noqa: BLE001 - an index without language counts falls back to the sample
            counts = {}
    if not counts and sample:
        detected: dict[str, int] = {}
        for hit in sample:
            lang = detect_language(hit.chunk.text)
            if lang:
                detected[lang] = detected.get(lang, 0) + 1
        counts = detected
    counts = {k: v for k, v in counts.items() if k}
    return max(counts, key=lambda k: counts[k]) if counts else None


@dataclass(frozen=True)
class Query:
    kind: str  # question | translation | rewrite | hyde | paraphrase
    text: str


@runtime_checkable
class CrossEncoder(Protocol):
    """A local re-ranker: one relevance score per passage for the query (higher is better). Not shipped; pass one
    as `DocsQA(cross_encoder=…)` and set `options.rerank: {model: null}`."""

    def score(self, query: str, passages: Sequence[str]) -> Sequence[float]: ...


class _Score(BaseModel):
    id: int
    score: float = Field(ge=0, le=10)


class RerankScores(BaseModel):
    scores: list[_Score]


class Augmenter:
    """The query transforms and the re-ranker of one app, calling `model` (an alias) through the gateway."""

    def __init__(self, *, gateway: Any, prompts: Any, model: str, query: QueryOptions | None = None,
                 rerank: RerankOptions | None = None, cross_encoder: CrossEncoder | None = None, app: str = "docs_qa"):
        self.gateway, self.prompts, self.app = gateway, prompts, app
        self.query_options, self.rerank_options, self.cross_encoder = query, rerank, cross_encoder
        self.model = (query.model if query is not None and query.model else None) or model
        self.rerank_model = rerank.model if rerank is not None else None

    def offline(self, alias: str | None = None) -> bool:
        """Whether `alias` (default: the transforms' alias) cannot generate text (the extractive provider)."""
        return self.gateway.resolve(alias or self.model).provider == "extractive"

    # ------------------------------------------------------------------ query transforms
    def queries(self, question: str, corpus: str | None, run: Any, tenant: str = "default") -> list[Query]:
        """What to search: the question, then its translation into the corpus language (when it is in another
        script), its rewrite, a hypothetical answer and paraphrases, as the options ask."""
        out = [Query("question", question)]
        opts = self.query_options
        if opts is None:
            return out
        language = detect_language(question)
        target = corpus if corpus and crosses_script(language, corpus) else language
        if self.offline():
            _note(**{"flywheel.augment.skipped": "offline: the transform model is the extractive provider"})
            return out
        if opts.translate == "auto" and target != language:
            text = self._generate("translate", "query_translate", run, tenant,
                                  question=question, language=LANGUAGE_NAMES.get(target, target))
            if text:
                out.append(Query("translation", _one_line(text)))
        base = out[-1].text  # transforms work on what can match the corpus: the translation when there is one
        if opts.rewrite:
            text = self._generate("rewrite", "query_rewrite", run, tenant, question=base)
            if text:
                out.append(Query("rewrite", _one_line(text)))
        if opts.hyde:
            text = self._generate("hyde", "query_hyde", run, tenant, question=question,
                                  language=LANGUAGE_NAMES.get(target, target))
            if text:
                out.append(Query("hyde", text.strip()))
        if opts.multi_query:
            text = self._generate("multi_query", "query_paraphrase", run, tenant, question=base,
                                  n=str(opts.multi_query), language=LANGUAGE_NAMES.get(target, target))
            lines = [_NUMBERING.sub("", line).strip() for line in (text or "").splitlines()]
            out += [Query("paraphrase", line) for line in lines if line][:opts.multi_query]
        seen: set[str] = set()
        return [q for q in out if not (q.text.casefold() in seen or seen.add(q.text.casefold()))]  # type: ignore[func-returns-value]

    def _generate(self, kind: str, prompt_name: str, run: Any, tenant: str, **variables: str) -> str | None:
        alias = self.model
        resolved = self.gateway.resolve(alias)
        prompt = self.prompts.get(prompt_name)
        rendered = prompt.render(family=family_of(resolved), prefill=supports_prefill(resolved), **variables)
        request = ChatRequest(messages=rendered.messages(), model=alias, metadata={
            "app": self.app, "tenant": tenant, "prompt_version": prompt.version, "augment": kind})
        with tracer.span(f"augment.{kind}", kind="other", inputs=variables,
                         **{"flywheel.prompt.name": prompt.name, "flywheel.prompt.version": prompt.version}) as span:
            try:
                result = self.gateway.chat(request)
            except FlywheelError as exc:  # a transform is an aid: the question is still searched
                span.set(outputs=None, **{"flywheel.augment.error": str(exc)[:300]})
                return None
            _charge(run, result, span)
            text = rendered.finish(result.text).strip()
            span.set(outputs=text)
            return text or None

    # ------------------------------------------------------------------ re-ranking
    def rerank(self, question: str, hits: list[Hit], run: Any, tenant: str = "default") -> list[Hit]:
        """`hits` re-ordered by the re-ranker's scores (unscored passages after the scored ones, in their
        original order); the original order when the re-ranker fails or answers nonsense."""
        opts = self.rerank_options
        if opts is None or len(hits) < 2:
            return hits
        top, rest = hits[:opts.top], hits[opts.top:]
        with tracer.span("augment.rerank", kind="other", inputs={"question": question, "passages": len(top)},
                         **{"flywheel.augment.reranker": self.rerank_model or "cross_encoder"}) as span:
            scores = self._cross_scores(question, top) if self.rerank_model is None else \
                self._llm_scores(question, top, run, tenant, span)
            if scores is None:
                span.set(outputs=None, **{"flywheel.augment.fallback": "original order"})
                return hits
            order = sorted(range(len(top)), key=lambda i: (-scores[i] if i in scores else float("inf"), i))
            span.set(outputs=[{"chunk_id": top[i].chunk.id, "score": scores.get(i)} for i in order])
        return [top[i].model_copy(update={"scores": {**top[i].scores, "rerank": scores[i]}}) if i in scores
                else top[i] for i in order] + rest

    def _cross_scores(self, question: str, hits: list[Hit]) -> dict[int, float] | None:
        if self.cross_encoder is None:
            return None
        try:
            values = list(self.cross_encoder.score(question, [h.chunk.text for h in hits]))
        except Exception:  # noqa: BLE001 - a broken local model must not break answering
            return None
        if len(values) != len(hits):
            return None
        return {i: float(v) for i, v in enumerate(values)}

    def _llm_scores(self, question: str, hits: list[Hit], run: Any, tenant: str, span: Any) -> dict[int, float] | None:
        alias = str(self.rerank_model)
        resolved = self.gateway.resolve(alias)
        if resolved.provider == "extractive":
            span.set(**{"flywheel.augment.skipped": "offline: the re-rank model is the extractive provider"})
            return None
        prompt = self.prompts.get("rerank")
        passages = "\n\n".join(f"[{i}] {h.chunk.text[:RERANK_CHARS]}" for i, h in enumerate(hits, start=1))
        rendered = prompt.render(family=family_of(resolved), prefill=False, question=question, passages=passages)
        request = ChatRequest(messages=rendered.messages(), model=alias, metadata={
            "app": self.app, "tenant": tenant, "prompt_version": prompt.version, "augment": "rerank"})
        span.set(**{"flywheel.prompt.name": prompt.name, "flywheel.prompt.version": prompt.version})
        try:
            structured = chat_structured(self.gateway, request, RerankScores, max_reasks=0, name="rerank_scores")
        except StructuredOutputError as exc:
            _charge(run, exc.result, span)
            span.set(**{"flywheel.augment.error": str(exc)[:300]})
            return None
        except FlywheelError as exc:
            span.set(**{"flywheel.augment.error": str(exc)[:300]})
            return None
        _charge(run, structured.result, span)
        scores = {s.id - 1: s.score for s in structured.value.scores if 1 <= s.id <= len(hits)}
        return scores or None


# ---------------------------------------------------------------------- fusion and packing
def fuse(rankings: Sequence[Sequence[Hit]], k: int = 60) -> list[Hit]:
    """One ranking from several (one per query) by reciprocal-rank fusion; each hit keeps its best retrieval
    scores and gets the fused score. A single ranking is returned as it is."""
    lists = [list(r) for r in rankings if r]
    if len(lists) <= 1:
        return lists[0] if lists else []
    by_id: dict[str, Hit] = {}
    for ranking in lists:
        for hit in ranking:
            by_id.setdefault(hit.chunk.id, hit)
    fused = rrf({f"q{i}": [h.chunk.id for h in r] for i, r in enumerate(lists)}, k=k)
    ordered = sorted(fused, key=lambda cid: -fused[cid])
    return [by_id[cid].model_copy(update={"score": fused[cid]}) for cid in ordered]


def passage_tokens(text: str) -> int:
    """Tokens a passage costs, roughly: one per CJK character (tokenizers split them finely), four characters
    per token for the rest."""
    cjk = len(re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]", text))
    return cjk + estimate_tokens(re.sub(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]", "", text))


def pack(hits: Sequence[Hit], *, budget_tokens: int | None = None, order: str = "best_first", seed: int = 0,
         key: str = "") -> list[Hit]:
    """The passages the model sees: best first while they fit in `budget_tokens` (a passage that does not fit
    is skipped, a smaller later one may still fit; the best passage is always kept), then ordered:
    `best_first`; `best_at_ends` (best first, second best last, the weakest in the middle, where long-context
    models attend least: "lost in the middle"); `shuffle` (to measure how much ranking matters: a permutation
    drawn from `seed` and `key`, the question, so each question gets its own and every run the same)."""
    chosen: list[Hit] = []
    used = 0
    for hit in hits:
        cost = passage_tokens(hit.chunk.text)
        if budget_tokens is not None and chosen and used + cost > budget_tokens:
            continue
        chosen.append(hit)
        used += cost
    _note(**{"flywheel.context.passages": len(chosen), "flywheel.context.tokens": used,
             "flywheel.context.order": order})
    if order == "best_at_ends":
        front, back = chosen[0::2], chosen[1::2]
        return front + back[::-1]
    if order == "shuffle":
        shuffled = list(chosen)
        random.Random(f"{seed}:{key}").shuffle(shuffled)  # a str seed is hashed with sha512: stable across runs
        return shuffled
    return chosen


# ---------------------------------------------------------------------- language twins
_TAG = re.compile(r"^[a-z]{2}(?:[-_][a-z0-9]{2,4})?$", re.IGNORECASE)  # zh, zh-CN, zh_hans, en-us
_STEM_TAG = re.compile(r"^(.+?)[._-]([a-z]{2}(?:[-_][a-z0-9]{2,4})?)$", re.IGNORECASE)  # cache.zh, cache_zh-CN


def _language_tag(name: str) -> str | None:
    if not _TAG.match(name):
        return None
    lang = {"cn": "zh"}.get(name.lower(), normalize_language(name))
    return lang if lang in LANGUAGES else None


def twin_key(source: str) -> tuple[str, str | None]:
    """(the source with its language tag taken out, that tag): `docs/zh/cache.md`, `docs/en/cache.md`,
    `docs/cache.zh.md` and `docs/cache.md` are one page in several languages, the usual layouts of translated
    docs. No tag: (source, None)."""
    *folders, name = source.replace("\\", "/").split("/")
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    found: str | None = None
    kept = []
    for folder in folders:
        tag = _language_tag(folder) if found is None else None
        if tag is None:
            kept.append(folder)
        found = found or tag
    m = _STEM_TAG.match(stem)
    if found is None and m and (tag := _language_tag(m.group(2))):
        stem, found = m.group(1), tag
    return "/".join([*kept, f"{stem}{dot}{ext}"]), found


def prefer_question_language(question: str, hits: Sequence[Hit]) -> list[Hit]:
    """The hits without those from another-language version of a page whose version in the question's
    language was retrieved too (docs/zh/cache.md when docs/cache.md answers an English question): the model
    should read and cite the passage its reader can read. A page's language is its path's tag, else that of
    its retrieved passages. Passages in other languages with no twin among the hits stay (the cross-lingual
    path: a Chinese question over English-only docs)."""
    asked = detect_language(question)
    if not asked or len(hits) < 2:
        return list(hits)
    pages: dict[str, dict[str, list[str]]] = {}  # twin key → source → languages (its tag, or per passage)
    for hit in hits:
        key, tag = twin_key(hit.chunk.source)
        langs = pages.setdefault(key, {}).setdefault(hit.chunk.source, [])
        langs.append(tag or detect_language(hit.chunk.text))
    drop: set[str] = set()
    for sources in pages.values():
        if len(sources) < 2:
            continue
        language = {src: max(set(ls), key=ls.count) for src, ls in sources.items()}
        if any(lang and script(lang) == script(asked) for lang in language.values()):
            drop |= {src for src, lang in language.items() if lang and script(lang) != script(asked)}
    if not drop:
        return list(hits)
    _note(**{"flywheel.twins_dropped": sorted(drop)})
    return [h for h in hits if h.chunk.source not in drop]


# ---------------------------------------------------------------------- helpers
def _one_line(text: str) -> str:
    lines = [line.strip().strip('"“”') for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text.strip()


def _charge(run: Any, result: ChatResult, span: Any) -> None:
    if run is not None:
        run.charge(result)
    span.set(**{"gen_ai.usage.input_tokens": result.usage.input_tokens,
                "gen_ai.usage.output_tokens": result.usage.output_tokens, "flywheel.cost_usd": result.cost_usd,
                "flywheel.alias": result.alias})


def _note(**attributes: Any) -> None:
    span = tracer.current()
    if span is not None:
        span.set(**attributes)
