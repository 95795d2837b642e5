"""Retriever: hybrid search (BM25 + dense, re-scored and fused: rescore.py) per tenant, with metadata filters and
a relevance floor.

    retriever = Retriever.from_config(store, config.retrieval, project)
    hits = retriever.search("how do I pin a model?", k=5, tenant="acme", filters={"product": "x"})

Each Hit carries the chunk, the fused score, its rank in each retriever ({"bm25": 1, "dense": None}) and the
raw scores plus `relevance`: the larger of `coverage`, the idf-weighted share of the query's content words
found in the chunk, and the cosine similarity of the dense side when it ran (the embedder covers the query's
language). When no hit reaches the floor (`min_relevance`) on either signal, search returns [] and the app can
say it does not know. Either signal suffices, so turning an embedder on never refuses a question that keyword
matching alone would pass: paraphrases pass on the cosine, exact wording on the coverage. Coverage leaves out
an identifier no chunk contains (order 12345: `topic_terms`) and, for a question of several sentences, also
scores what it asks on its own (`asked_terms`). It also returns [] when no hit is in the question's language
(or that of its content words) and none was matched across languages by an embedder covering both (an English
question over Chinese-only documents finds only shared Latin words: names, reference-list titles), so the app
says it does not know instead of quoting noise.

`min_relevance: auto` calibration (`flywheel bench retrieval --calibrate`, measured here): an all-MiniLM-L6-v2
cosine ≥ 0.40 answered 99.3% of MRPC paraphrase queries and refused 90% of off-topic askfsdl questions; keyword
coverage ≥ 0.30 answered 97.3% of cmrc2018 questions about indexed passages and refused 60% of questions about
passages left out (they share many content words; a higher floor would refuse more good questions).
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from flywheel.checks.pii import asked_part
from flywheel.config import Project, RetrievalConfig, validate_tenant
from flywheel.errors import UserError
from flywheel.retrieval import fusion, rescore
from flywheel.retrieval.embed import Coverage
from flywheel.retrieval.embed import coverage as embedding_coverage
from flywheel.retrieval.embedders import Embedder, build_embedder
from flywheel.retrieval.index.base import Index
from flywheel.retrieval.tokenize import TOKENIZER_HISTORY, TOKENIZER_VERSION, cjk_bigrams, keyword_tokens
from flywheel.text import STOPWORDS, detect_language, split_sentences
from flywheel.text.install import pip_install
from flywheel.text.language import LATIN, language_name
from flywheel.text.stopwords import QUESTION_WORDS_ZH
from flywheel.tracing import tracer
from flywheel.types import Chunk, Hit

log = logging.getLogger("flywheel.retrieval")
Mode = Literal["hybrid", "bm25", "dense"]
AUTO_FLOOR = {"dense": 0.40, "coverage": 0.30}  # `min_relevance: auto`, per relevance signal (see above)


def open_index(store: Any, config: RetrievalConfig | None = None) -> Index:
    """The index over `store`; `config` carries the PostgreSQL HNSW parameters (hnsw_m, hnsw_ef_construction,
    hnsw_ef_search)."""
    if store.dialect == "postgresql":
        from flywheel.retrieval.index.postgres import PostgresIndex

        return PostgresIndex(store, config)
    from flywheel.retrieval.index.sqlite import SqliteIndex

    return SqliteIndex(store)


QUERY_CACHE = 1024  # recent query vectors kept (repeated questions skip the embedder)


def check_tenant(tenant: str) -> None:
    validate_tenant(tenant)  # the one tenant rule (flywheel.config)


def _script(language: str) -> str:
    """The writing system a language tag stands for: keyword overlap is meaningful within one."""
    if language in LATIN:
        return "latin"
    return {"ja": "zh", "uk": "ru"}.get(language, language)


def content_terms(tokens: list[str]) -> list[str]:
    """The query's distinct keyword tokens minus stopwords (all of them when nothing else is left)."""
    unique = list(dict.fromkeys(tokens))
    terms = [t for t in unique if t not in STOPWORDS]
    return terms or unique


def asked_terms(query: str) -> list[list[str]]:
    """The content terms of each sentence that asks (ends in ? or ？; else the last sentence) of a question of
    several sentences; [] for a one-sentence question. A question that first tells its story ("we ingested two
    hundred pages from our wiki … What does min_relevance do?") is as relevant as what it asks: the story's
    words are context the documents need not contain."""
    sentences = [s.strip() for s in split_sentences(query) if s.strip()]
    if len(sentences) < 2:
        return []
    asking = [s for s in sentences if s.rstrip("\"'”’」』）)").endswith(("?", "？"))] or sentences[-1:]
    return [terms for s in asking if (terms := content_terms(keyword_tokens(s)))]


def is_identifier(term: str) -> bool:
    """A token naming one instance rather than a topic: a number (an order or ticket number, a day, an
    amount) or mostly digits (A20240101, a hash's piece). Short names with a digit (s3, h200, gpt4, sha256)
    are topics, and so is a year (1900-2099): "revenue in 2019" asks about that year, and a corpus without
    it cannot answer."""
    digits = sum(ch.isdigit() for ch in term)
    if digits == len(term) == 4 and term[:2] in ("19", "20"):
        return False
    return digits == len(term) or (digits >= 4 and digits > len(term) - digits)


def topic_terms(terms: list[str], df: dict[str, int]) -> list[str]:
    """The terms coverage is measured on: an identifier found in no chunk of the corpus (order 12345 in a
    question about refund rules) is left out, since documentation describes kinds of things, not the user's
    own instance of one; as the rarest term it would otherwise outweigh the topic words the passages do match.
    A word found nowhere still counts (it is what makes an off-topic question off-topic), and so does an
    identifier the corpus contains (an error code the docs explain). All terms when only such identifiers
    are left: a question that is nothing but an unknown number is about nothing the corpus holds."""
    return [t for t in terms if df.get(t, 0) or not is_identifier(t)] or terms


def idf(n_docs: int, df: int) -> float:
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


class Retriever:
    def __init__(self, index: Index, embedder: Embedder | None, config: RetrievalConfig | None = None):
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.min_relevance = self.config.min_relevance  # float | "auto" | None (no floor)
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.weights = rescore.Weights(dense=self.config.dense_weight)  # hybrid re-scoring (fusion `auto`)
        # tenant -> (its write counter when counted, files indexed by another keyword tokenizer version)
        self._stale_files: dict[str, tuple[int, int]] = {}

    @classmethod
    def from_config(cls, store: Any, retrieval_config: RetrievalConfig, project: Project | None = None) -> Retriever:
        models = project.config.models if project is not None else {}
        where = project.where("retrieval", "embedder") if project is not None else None
        return cls(open_index(store, retrieval_config), build_embedder(retrieval_config, models, where),
                   retrieval_config)

    # ---------------------------------------------------------------- search

    def search(self, query: str, k: int | None = None, tenant: str = "default", filters: dict | None = None,
               mode: Mode = "hybrid") -> list[Hit]:
        k = k or self.config.k
        check_tenant(tenant)
        if mode not in ("hybrid", "bm25", "dense"):
            raise UserError(f"unknown search mode {mode!r}", hint="use hybrid, bm25 or dense")
        with tracer.span("retrieval.search", kind="retrieval",
                         inputs={"query": query, "k": k, "tenant": tenant, "mode": mode, "filters": filters},
                         **{"flywheel.tenant": tenant, "flywheel.retrieval.mode": mode}) as span:
            hits, info = self._search(query, k, tenant, filters, mode)
            span.set(outputs=[{"chunk_id": h.chunk.id, "source": h.chunk.source, "score": round(h.score, 6)}
                              for h in hits], **{f"flywheel.retrieval.{key}": v for key, v in info.items()})
            return hits

    def _search(self, query: str, k: int, tenant: str, filters: dict | None, mode: Mode
                ) -> tuple[list[Hit], dict[str, Any]]:
        # the asker's e-mail or phone number (or a redact guard's placeholder) is not what they ask: asked_part
        keywords = asked_part(query)[0]
        tokens = keyword_tokens(keywords) or keyword_tokens(query)
        n = max(4 * k, 50)
        info: dict[str, Any] = {"candidates": n}
        language = detect_language(query)
        if stale := self.stale_tokenizer_files(tenant):
            info["stale_tokenizer_files"] = stale
        if mode == "dense" and self.embedder is None:
            raise UserError("dense search needs an embedder, and none is available",
                            hint=f"{pip_install('local')}, or set `retrieval.embedder` in flywheel.yaml")
        gap = self.language_gap(query) if mode == "dense" else None
        if gap is not None:  # its vectors for this language are near-random: nothing dense can match
            info["query_language_not_covered"] = language
            return [], info
        w_dense = 0.0
        if self.embedder is not None and mode != "bm25":
            w_dense = 1.0
            if mode == "hybrid" and self.config.fusion != "rrf":
                w_dense = fusion.dense_weight(self.embedder.languages, language, self.index.languages(tenant),
                                              self.embedder.glossed)
        info["dense_weight"] = round(w_dense, 4)

        terms = content_terms(tokens)

        def keyword_side() -> tuple[list[tuple[int, float]], tuple[int, dict[str, int]]]:
            found = self.index.keyword(tenant, tokens, n, filters) if mode != "dense" else []
            return found, self.index.doc_freqs(tenant, terms)

        # Sequential on purpose: overlapping the keyword side with the query embedding in a thread made
        # OpenBLAS's own threads fight for the 2 cores and the embedding 10x slower.
        keyword, doc_freqs = keyword_side()
        dense: list[tuple[int, float]] = []
        embedder = self.embedder  # not None when w_dense > 0 or mode is dense (checked above)
        if embedder is not None and (mode == "dense" or (mode == "hybrid" and w_dense >= fusion.MIN_DENSE_WEIGHT)):
            dense = self.index.dense(tenant, embedder.name, self._query_vector(embedder, query), n, filters)

        pool: dict[int, tuple[Chunk, str]] | None = None
        if mode == "bm25":
            fused = dict(keyword)
        elif mode == "dense":
            fused = dict(dense)
        elif self.config.fusion == "weighted":
            fused = fusion.weighted({"bm25": keyword, "dense": dense}, {"bm25": 1.0, "dense": w_dense})
        elif self.config.fusion == "rrf":
            fused = fusion.rrf({"bm25": [p for p, _ in keyword], "dense": [p for p, _ in dense]},
                               {"bm25": 1.0, "dense": w_dense}, k=self.config.rrf_k)
        else:  # auto: re-score the pool of both sides on the passages themselves (rescore.py)
            pool = self.index.fetch(dict.fromkeys([p for p, _ in keyword] + [p for p, _ in dense]), tenant)
            fused, used = self._rescore(terms, doc_freqs, keyword, dense, pool, w_dense)
            info.update(used)
        top = fusion.ranked(fused, k)
        rows = pool if pool is not None else self.index.fetch((p for p, _ in top), tenant)
        kw_rank = {p: i for i, (p, _) in enumerate(keyword, start=1)}
        kw_score = dict(keyword)
        dn_rank = {p: i for i, (p, _) in enumerate(dense, start=1)}
        dn_score = dict(dense)
        found_rows = [(rows[p][1], rows[p][0].text) for p, _ in top if p in rows]
        coverage = self._coverage(terms, doc_freqs, found_rows)
        for asked in asked_terms(keywords):  # a long question is relevant when what it asks is covered
            coverage = [max(a, b) for a, b in zip(coverage, self._coverage(asked, doc_freqs, found_rows), strict=True)]
        # A cosine between glosses (Chinese with the local MiniLM) ranks but does not vouch for relevance: glosses of
        # unrelated texts score high (cmrc2018, half the passages indexed: 45 % of the questions about the other
        # half reach 0.40), and 8 % of off-topic English questions reach it against glossed Chinese descriptions.
        glossed = embedder.glossed if embedder is not None else frozenset()
        vouches = bool(dense) and language not in glossed
        signal = "coverage+dense" if vouches else "coverage"
        hits: list[Hit] = []
        vouched: list[bool] = []  # per hit: its cosine counts for the floor
        for (pk, score), cov in zip([t for t in top if t[0] in rows], coverage, strict=True):
            chunk = rows[pk][0]
            vouched.append(vouches and (not glossed or detect_language(chunk.text) not in glossed))
            scores = {"coverage": round(cov, 4)}
            if pk in kw_score:
                scores["bm25"] = kw_score[pk]
            if pk in dn_score:
                scores["dense"] = dn_score[pk]
            scores["relevance"] = round(max(cov, dn_score.get(pk, 0.0) if vouched[-1] else 0.0), 4)
            hits.append(Hit(chunk=chunk, score=score, scores=scores,
                            ranks={"bm25": kw_rank.get(pk), "dense": dn_rank.get(pk)}))
        floors = {s: self.floor(s) for s in ("coverage", "dense")}
        info.update(relevance_signal=signal, floor=floors["coverage"])
        if vouches:
            info["floor_dense"] = floors["dense"]
        if floors["coverage"] is None:
            return hits, info
        passing = [h for h, v in zip(hits, vouched, strict=True) if self.passes(h, v)]
        if hits and not passing:
            info["below_floor"] = True
            hits = []
        # The hit that passes the floor must be one that can answer: a Chinese chunk sharing the word "happy"
        # with an English question does not become answerable because an English chunk is retrieved too.
        if passing and not any(self._same_language(query, terms, h, bool(dense)) for h in passing):
            info["no_hit_in_question_language"] = True
            hits = []
        return hits, info

    def _rescore(self, terms: list[str], doc_freqs: tuple[int, dict[str, int]], keyword: list[tuple[int, float]],
                 dense: list[tuple[int, float]], pool: dict[int, tuple[Chunk, str]], w_dense: float
                 ) -> tuple[dict[int, float], dict[str, Any]]:
        dense_score = dict(dense)
        kw_rank = {p: i for i, (p, _) in enumerate(keyword, start=1)}
        dn_rank = {p: i for i, (p, _) in enumerate(dense, start=1)}
        candidates = [rescore.Candidate(pk, tokens.split(), dense_score.get(pk), kw_rank.get(pk), dn_rank.get(pk))
                      for pk, (_, tokens) in pool.items()]
        n_docs, df = doc_freqs
        return rescore.fuse(candidates, terms, df, n_docs, w_dense if dense else 0.0, self.weights)

    def stale_tokenizer_files(self, tenant: str) -> int:
        """How many of the tenant's files were indexed by another keyword tokenizer version than the query's
        (their tokens may not match it: 1 did not fold traditional Chinese). Counted again only after a write
        to the tenant (its write counter moved: a re-ingest, in this process or another, while `flywheel serve`
        runs), and warned about, with the command that re-indexes them, when that count changes."""
        version = self.index.write_version(tenant)
        cached = self._stale_files.get(tenant)
        if cached is not None and cached[0] == version:
            return cached[1]
        total, stale, examples = self.index.stale_tokenizer_files(tenant, TOKENIZER_VERSION)
        self._stale_files[tenant] = (version, stale)
        if stale and stale != (cached[1] if cached else 0):
            named = ", ".join(examples) + (", …" if stale > len(examples) else "")
            whose = "" if tenant == "default" else f" of tenant {tenant!r}"
            flag = "" if tenant == "default" else f" --tenant {tenant}"
            log.warning("%d of %d indexed files%s (%s) were indexed by another keyword tokenizer version "
                        "than this one (%s), so keyword search "
                        "may miss them; run `flywheel ingest PATH%s` on the same paths to re-index them",
                        stale, total, whose, named, TOKENIZER_HISTORY, flag)
        return stale

    def unseen_identifiers(self, query: str, tenant: str = "default") -> list[str]:
        """The question's identifiers (`is_identifier`: order 12345, a day) found in no chunk of the tenant's
        corpus, as keyword tokens: what `topic_terms` leaves out of the coverage, for the answering step to
        leave out too (the extractive model). No lookup when the question has none."""
        check_tenant(tenant)
        ids = [t for t in content_terms(keyword_tokens(query)) if is_identifier(t)]
        if not ids:
            return []
        _, df = self.index.doc_freqs(tenant, ids)
        return [t for t in ids if not df.get(t, 0)]

    def passes(self, hit: Hit, dense_vouches: bool = True) -> bool:
        """Whether a hit reaches the floor on either signal: keyword coverage or dense cosine (each its own
        `auto` floor; one number for both when `min_relevance` is set), the cosine only when it `dense_vouches`.
        True when the floor is off."""
        cov_floor, dense_floor = self.floor("coverage"), self.floor("dense")
        if cov_floor is None or dense_floor is None:
            return True
        dense = hit.scores.get("dense") if dense_vouches else None
        return hit.scores.get("coverage", 0.0) >= cov_floor or (dense is not None and dense >= dense_floor)

    def _same_language(self, query: str, terms: list[str], hit: Hit, dense_ran: bool) -> bool:
        """Whether a hit can answer in the question's language. Across languages, keyword overlap is only
        shared Latin tokens (names, reference-list titles), so a hit in another language counts only when the
        dense side matched it with an embedder that covers both languages. The language the question's content
        words are written in counts too: "min_relevance 是什么？" is about two English words, which an
        English passage matches as well as a Chinese one."""
        q, c = detect_language(query), detect_language(hit.chunk.text)
        if not q or not c or _script(q) == _script(c):  # "pin a model version" may read as Portuguese
            return True
        content = detect_language(" ".join(t for t in terms if t not in QUESTION_WORDS_ZH))
        if content and _script(content) == _script(c):
            return True
        if self.embedder is None or {q, c} & self.embedder.glossed:  # glosses rank, they do not vouch (_search)
            return False
        return dense_ran and self.embedder.covers(q) and self.embedder.covers(c)

    def language_gap(self, query: str, switch: str = "search in hybrid or bm25 mode") -> str | None:
        """Why dense search cannot match `query`: the embedder does not cover the question's language (a
        Russian question with the local MiniLM). None when it does, or when there is no embedder.
        Hybrid search needs no such warning: it leaves the dense side out for such a question (fusion)."""
        language = detect_language(query)
        if self.embedder is None or self.embedder.covers(language):
            return None
        covered = self.embedder.languages_named()
        return (f"the embedder {self.embedder.name} does not cover {language_name(language)} ({language}), the "
                f"question's language (it covers {covered}), so dense search cannot match this question; "
                f"{switch} (keyword matching), or configure a multilingual embedder "
                f"(retrieval.embedder in flywheel.yaml)")

    def floor(self, signal: str) -> float | None:
        """The relevance floor for one signal ("dense" cosine or keyword "coverage"); None when disabled."""
        if self.min_relevance == "auto":
            return AUTO_FLOOR[signal]
        return self.min_relevance

    def _query_vector(self, embedder: Embedder, query: str) -> np.ndarray:
        vec = self._query_cache.get(query)
        if vec is None:
            vec = embedder.embed_query(query)
            self._query_cache[query] = vec
            if len(self._query_cache) > QUERY_CACHE:
                self._query_cache.popitem(last=False)
        else:
            self._query_cache.move_to_end(query)
        return vec

    @staticmethod
    def _coverage(terms: list[str], doc_freqs: tuple[int, dict[str, int]], chunks: list[tuple[str, str]]
                  ) -> list[float]:
        """Idf-weighted share of the query's content words present in each chunk ((tokens, text) pairs). A
        Chinese word jieba cut differently in the chunk (发送 inside 电子邮件发送) counts by the share of its
        character bigrams found in the chunk's text; question words (什么时候, 如何) are not content, nor an
        identifier the corpus lacks (topic_terms)."""
        terms = [t for t in terms if t not in QUESTION_WORDS_ZH] or terms
        if not terms or not chunks:
            return [0.0] * len(chunks)
        n_docs, df = doc_freqs
        terms = topic_terms(terms, df)
        weights = [idf(max(n_docs, 1), df.get(t, 0)) for t in terms]
        total = sum(weights) or 1.0
        # Not a one-character word by its character (开 of 发票怎么开 inside 开票): on cmrc2018 (bench retrieval
        # --calibrate) that refused 5% fewer questions about passages left out and answered none more.
        term_bigrams = {t: set(b) for t in terms if len(t) > 1 and (b := cjk_bigrams(t))}
        out = []
        for toks, text in chunks:
            present = set(toks.split())
            grams = set(cjk_bigrams(text)) if term_bigrams else set()
            got = 0.0
            for t, w in zip(terms, weights, strict=True):
                if t in present:
                    got += w
                elif t in term_bigrams:
                    got += w * len(term_bigrams[t] & grams) / len(term_bigrams[t])
            out.append(got / total)
        return out

    # ---------------------------------------------------------------- housekeeping

    def count(self, tenant: str | None = None) -> int:
        return self.index.count(tenant)

    def coverage(self, tenant: str = "default") -> Coverage:
        """How much of the tenant's corpus has vectors: dense search (and the dense side of hybrid) sees only
        those chunks; the rest is found by keyword until the embed stage reaches it."""
        check_tenant(tenant)
        return embedding_coverage(self.index, self.embedder, tenant)

    def close(self) -> None:
        self.index.invalidate()
