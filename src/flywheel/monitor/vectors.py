"""Trace vectors: what drift and skew read per trace, computed once and stored (`trace_vectors` table).

    n = store_vectors(store, embedder, since=t0, until=t1)     # embeds only traces not stored yet
    rows = load_rows(store, embedder.name, since=t0, until=t1)   # columnar, numpy: no text work left
    Z = rows.representation("input", idf)                      # embedding ⊕ hashed keyword TF-IDF

Each trace gets its input and output embedding from the project's embedder, its keyword tokens
(`flywheel.text.tokenize`: jieba words for Chinese, stopwords dropped) and the descriptors PSI compares: the
languages of question and answer, lengths, whether the answer declines (`flywheel.apps.refusal.declined`) and
its format (text, json, broken_json, empty). Reading stored rows back is a single query and a few numpy calls,
which is what makes drift over 10,000 traces fast.

Why a lexical side: the local MiniLM embedder is English-only and maps most Chinese characters to [UNK], so
two Chinese topics get nearly the same vector. A hashed TF-IDF vector over the CJK-aware tokens separates them;
`representation` concatenates both halves (each unit length, weighted) so a topic shift shows in either script.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from flywheel.apps.refusal import declined
from flywheel.protocols import Embedder
from flywheel.retrieval.embedders import vector_name
from flywheel.store import Store
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema_drift import trace_vectors
from flywheel.text import detect_language, scrub_secrets, tokenize
from flywheel.tracing.query import product_traffic

NO_EMBEDDER = "none"
MAX_TERMS = 64  # keyword tokens kept per text: enough for topics and labels, bounded storage
EMBED_CHARS = 2000  # MiniLM reads 256 tokens; longer text only costs tokenizing time
LEXICAL_DIM = 256
LEXICAL_TERMS = 32  # the first tokens of a text that its keyword vector counts
LEXICAL_WEIGHT = 0.5  # share of the squared norm given to the keyword side when there is an embedding
SIDES = ("input", "output")


def output_format(text: str, wants_json: bool = False) -> str:
    """`empty`, `json` (parses), `broken_json` (asked for or looks like JSON, does not parse) or `text`."""
    import json

    body = (text or "").strip()
    if not body:
        return "empty"
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    looks = body[:1] in ("{", "[")
    if not (looks or wants_json):
        return "text"
    try:
        json.loads(body)
    except ValueError:
        return "broken_json"
    return "json"


def input_format(text: str) -> str:
    """`code_or_json`, `multiline`, `question` or `plain`: the shape of a user's input."""
    body = (text or "").strip()
    if body.startswith(("{", "[")) or "```" in body:
        return "code_or_json"
    if "\n" in body:
        return "multiline"
    if body.endswith(("?", "？", "吗", "呢")):
        return "question"
    return "plain"


def describe(question: str, answer: str, wants_json: bool = False) -> dict[str, Any]:
    """The stored descriptors of one trace (secrets scrubbed before tokens are kept)."""
    question, answer = scrub_secrets(question or ""), scrub_secrets(answer or "")
    return {
        "input_language": detect_language(question) or None,
        "output_language": detect_language(answer) or None,
        "input_chars": len(question),
        "output_chars": len(answer),
        "refused": bool(answer.strip()) and declined(answer),
        "input_format": input_format(question),
        "output_format": output_format(answer, wants_json),
        "input_terms": " ".join(tokenize(question[:EMBED_CHARS * 2])[:MAX_TERMS]),
        "output_terms": " ".join(tokenize(answer[:EMBED_CHARS * 2])[:MAX_TERMS]),
    }


@dataclass
class TraceRows:
    """Columnar trace features; vectors are (n, dim) float32 or None (no embedder)."""

    trace_ids: list[str]
    started_at: np.ndarray
    fields: dict[str, list[Any]]  # FIELDS: app, model, tenant, languages, formats, refused
    input_chars: np.ndarray
    output_chars: np.ndarray
    terms: dict[str, list[list[str]]]  # side -> token lists
    vectors: dict[str, np.ndarray | None] = field(default_factory=dict)  # side -> (n, dim) or None

    def __len__(self) -> int:
        return len(self.trace_ids)

    def take(self, idx: Sequence[int] | np.ndarray) -> TraceRows:
        ix = np.asarray(idx, dtype=np.int64)
        return TraceRows(
            [self.trace_ids[i] for i in ix], self.started_at[ix],
            {k: [v[i] for i in ix] for k, v in self.fields.items()},
            self.input_chars[ix], self.output_chars[ix],
            {k: [v[i] for i in ix] for k, v in self.terms.items()},
            {k: (None if v is None else v[ix]) for k, v in self.vectors.items()})

    def has_output(self) -> bool:
        return bool(len(self)) and any(self.output_chars > 0)


FIELDS = ("app", "model", "tenant", "input_language", "output_language", "input_format", "output_format", "refused")


def rows_from_records(records: Sequence[dict[str, Any]], vectors: dict[str, np.ndarray | None]) -> TraceRows:
    """TraceRows from dicts holding `trace_id`, `started_at` and the `describe` keys (+ app/model/tenant)."""
    n = len(records)
    return TraceRows(
        [str(r["trace_id"]) for r in records],
        np.array([float(r.get("started_at") or 0.0) for r in records], dtype=np.float64),
        {f: [r.get(f) for r in records] for f in FIELDS},
        np.array([int(r.get("input_chars") or 0) for r in records], dtype=np.int64).reshape(n),
        np.array([int(r.get("output_chars") or 0) for r in records], dtype=np.int64).reshape(n),
        {s: [(r.get(f"{s}_terms") or "").split() for r in records] for s in SIDES},
        vectors)


def embed_texts(embedder: Embedder | None, texts: Sequence[str]) -> np.ndarray | None:
    """Unit vectors for `texts`, each distinct text embedded once; None without an embedder."""
    if embedder is None:
        return None
    unique = list(dict.fromkeys(t[:EMBED_CHARS] for t in texts))
    if not unique:
        return np.zeros((0, 0), np.float32)
    vecs = np.asarray(embedder.embed(unique), dtype=np.float32)
    where = {t: i for i, t in enumerate(unique)}
    return vecs[[where[t[:EMBED_CHARS]] for t in texts]]


def rows_from_texts(ids: Sequence[str], questions: Sequence[str], answers: Sequence[str | None],
                    embedder: Embedder | None, started_at: Sequence[float] | None = None) -> TraceRows:
    """TraceRows for texts that are not stored traces (an eval suite's cases, a synthetic stream)."""
    records = []
    for i, (tid, q, a) in enumerate(zip(ids, questions, answers, strict=True)):
        records.append({"trace_id": tid, "started_at": started_at[i] if started_at is not None else 0.0,
                        **describe(q, a or "")})
    vectors = {"input": embed_texts(embedder, [scrub_secrets(q) for q in questions]),
               "output": embed_texts(embedder, [scrub_secrets(a or "") for a in answers])}
    return rows_from_records(records, vectors)


# ---------------------------------------------------------------------------- stored vectors


def embedder_name(embedder: Embedder | None) -> str:
    """The key stored vectors are kept under: the embedder's `vector_name`, so the local MiniLM's vectors of
    Chinese traces read through glosses never mix with those stored before it glossed (a false drift)."""
    if embedder is None:
        return NO_EMBEDDER
    return str(vector_name(embedder) or type(embedder).__name__)[:200]


def _traces_query(since: float | None, until: float | None, app: str | None) -> Any:
    q = select(traces_t.c.trace_id, traces_t.c.started_at, traces_t.c.app, traces_t.c.model, traces_t.c.tenant)
    if since is not None:
        q = q.where(traces_t.c.started_at >= since)
    if until is not None:
        q = q.where(traces_t.c.started_at < until)
    if app is not None:
        q = q.where(traces_t.c.app == app)
    return q.where(product_traffic(traces_t))


def store_vectors(store: Store, embedder: Embedder | None, *, since: float | None = None,
                  until: float | None = None, app: str | None = None, batch: int = 512) -> int:
    """Compute and store the vectors of every trace in [since, until) that has none for this embedder yet;
    returns how many were added. Re-running adds nothing twice."""
    from flywheel.monitor.windows import trace_details

    name = embedder_name(embedder)
    stored = select(trace_vectors.c.trace_id).where(trace_vectors.c.trace_id == traces_t.c.trace_id,
                                                    trace_vectors.c.embedder == name).exists()
    with store.connect() as conn:
        todo = [dict(r) for r in conn.execute(_traces_query(since, until, app).where(~stored)).mappings()]
    added = 0
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        with store.connect() as conn:
            details = trace_details(conn, [t["trace_id"] for t in chunk])
        questions = [scrub_secrets(details[t["trace_id"]]["input"] or "") for t in chunk]
        answers = [scrub_secrets(details[t["trace_id"]]["output"] or "") for t in chunk]
        vecs = {"input": embed_texts(embedder, questions), "output": embed_texts(embedder, answers)}
        now = time.time()
        rows = []
        for i, t in enumerate(chunk):
            d = describe(questions[i], answers[i], bool(details[t["trace_id"]]["json"]))
            rows.append({"trace_id": t["trace_id"], "embedder": name, "started_at": t["started_at"],
                         "app": t["app"], "model": t["model"], "tenant": t["tenant"], **d,
                         "input_vec": _blob(vecs["input"], i), "output_vec": _blob(vecs["output"], i),
                         "created_at": now})
        with store.begin() as conn:
            conn.execute(trace_vectors.insert(), rows)
        added += len(rows)
    return added


def _blob(vecs: np.ndarray | None, i: int) -> bytes | None:
    if vecs is None or not len(vecs):
        return None
    return np.ascontiguousarray(vecs[i], dtype="<f4").tobytes()


def load_rows(store: Store, embedder: str, *, since: float | None = None, until: float | None = None,
              app: str | None = None) -> TraceRows:
    """The stored rows of one embedder with started_at in [since, until), oldest first."""
    t = trace_vectors.c
    names = ["trace_id", "started_at", *FIELDS, "input_chars", "output_chars", "input_terms", "output_terms",
             "input_vec", "output_vec"]
    q = select(*(t[c] for c in names)).where(t.embedder == embedder).order_by(t.started_at, t.trace_id)
    if since is not None:
        q = q.where(t.started_at >= since)
    if until is not None:
        q = q.where(t.started_at < until)
    if app is not None:
        q = q.where(t.app == app)
    with store.connect() as conn:
        records = [dict(zip(names, r, strict=True)) for r in conn.execute(q).all()]
    vectors: dict[str, np.ndarray | None] = {}
    for side in SIDES:
        blobs = [r[f"{side}_vec"] for r in records]
        if records and all(b is not None for b in blobs):
            vectors[side] = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(records), -1)
        else:
            vectors[side] = None
    return rows_from_records(records, vectors)


# ---------------------------------------------------------------------------- representation


class Lexicon:
    """Hashed keyword TF-IDF: tokens hashed into LEXICAL_DIM signed buckets, idf from a fitted document set."""

    def __init__(self, dim: int = LEXICAL_DIM):
        self.dim = dim
        self._ids: dict[str, int] = {}
        self._slots: list[int] = []
        self._signs: list[float] = []
        self.idf = np.ones(dim, dtype=np.float32)

    def _id(self, token: str) -> int:
        h = zlib.crc32(token.encode("utf-8"))
        self._slots.append(h % self.dim)
        self._signs.append(1.0 if (h >> 16) & 1 else -1.0)
        i = self._ids[token] = len(self._slots) - 1
        return i

    def counts(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(docs), dim) signed token counts, one bincount over every token of every doc."""
        ids, get = self._ids, self._ids.get
        docs = [d[:LEXICAL_TERMS] for d in docs]
        flat = [i if (i := get(t)) is not None else self._id(t) for doc in docs for t in doc]
        if not flat:
            return np.zeros((len(docs), self.dim), dtype=np.float32)
        del ids
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        rows = np.repeat(np.arange(len(docs)), lengths)
        tok = np.asarray(flat, dtype=np.int64)
        cells = rows * self.dim + np.asarray(self._slots, dtype=np.int64)[tok]
        m = np.bincount(cells, weights=np.asarray(self._signs)[tok], minlength=len(docs) * self.dim)
        return m.reshape(len(docs), self.dim).astype(np.float32)

    def fit(self, docs: Sequence[Sequence[str]]) -> Lexicon:
        df = (self.counts(docs) != 0).sum(axis=0)
        self.idf = np.log((1.0 + len(docs)) / (1.0 + df)).astype(np.float32) + 1.0
        return self

    def transform(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        m = self.counts(docs)
        m = np.sign(m) * np.log1p(np.abs(m)) * self.idf
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norms > 0, norms, 1.0)


def representation(rows: TraceRows, side: str, lexicon: Lexicon) -> np.ndarray:
    """Unit vectors: the embedding (weight 1 − LEXICAL_WEIGHT) ⊕ the keyword TF-IDF (LEXICAL_WEIGHT); the
    keyword side alone when there is no embedder."""
    lex = lexicon.transform(rows.terms[side])
    emb = rows.vectors.get(side)
    if emb is None or emb.shape[0] != len(rows) or emb.shape[1] == 0:
        return lex
    return np.hstack([emb * math.sqrt(1 - LEXICAL_WEIGHT), lex * math.sqrt(LEXICAL_WEIGHT)]).astype(np.float32)
