"""A tenant's keyword statistics are its own on both engines: the document frequencies and chunk count the
hybrid re-scorer and the relevance floor read (`index.doc_freqs`) count the tenant's chunks only, so adding
documents to another tenant never moves this tenant's scores (on SQLite they used to be counted over the
whole file)."""

from __future__ import annotations

from pathlib import Path

from flywheel.config import RetrievalConfig
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.retrieval.tokenize import keyword_tokens
from flywheel.store import Store

TERMS = keyword_tokens("budget minute")  # the index holds keyword tokens: "minute" is stemmed
MINUTE = TERMS[1]

ACME = {
    "keys.md": "# Keys\n\nA key has a monthly budget in USD and a rate limit per minute.\n",
    "budget.md": "# Budgets\n\nThe budget counts retries, fallbacks and judge calls of every request.\n",
    "traces.md": "# Traces\n\nEvery request is traced: spans, tokens, cost and the tenant.\n",
    "cache.md": "# Cache\n\nRepeated questions are answered from the cache without a model call.\n",
}
# Another tenant whose documents are full of one of the query's words ("budget") and none of the other.
OTHER = {f"b{i}.md": f"# Plan {i}\n\nThe budget of project {i} is reviewed every quarter; budget owners sign it.\n"
         for i in range(30)}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _ranked(retriever: Retriever, query: str) -> list[tuple[str, float, float, float]]:
    """The fused score and the relevance signals; not `scores["bm25"]`, SQLite FTS5's own bm25() of the keyword
    candidates, whose statistics stay file-wide (docs/retrieval.md, "Tenants")."""
    return [(h.chunk.source, round(h.score, 9), h.scores["coverage"], h.scores["relevance"])
            for h in retriever.search(query, k=4, tenant="acme")]


def test_another_tenants_documents_do_not_move_this_tenants_scores(tmp_path, store_url):
    config = RetrievalConfig(embedder="none", min_relevance=None)
    acme = _write(tmp_path / "acme", ACME)
    other = _write(tmp_path / "other", OTHER)
    with Store.open(store_url) as store:
        ingest([acme], store, config, tenant="acme", embedder=None, root=tmp_path)
        index = open_index(store)
        retriever = Retriever(index, None, config)
        query = "monthly budget per minute"
        before = _ranked(retriever, query)
        stats_before = index.doc_freqs("acme", TERMS)
        assert before and stats_before == (4, {"budget": 2, MINUTE: 1})

        ingest([other], store, config, tenant="other", embedder=None, root=tmp_path)
        assert _ranked(Retriever(open_index(store), None, config), query) == before
        assert _ranked(retriever, query) == before  # the long-lived index too
        assert index.doc_freqs("acme", TERMS) == stats_before
        assert index.doc_freqs("other", TERMS) == (30, {"budget": 30, MINUTE: 0})
