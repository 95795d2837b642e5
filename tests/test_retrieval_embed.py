"""Searchable first, embedded after: the embed stage (queue = chunks without vectors; idempotent; resumes after
`kill -9`), search coverage, `flywheel ingest --no-embed` / `flywheel embed` / `flywheel search`, the server's
EmbedWorker, and the openai_compat embedder's requests in flight and 429 Retry-After."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from flywheel.config import ModelAlias, RetrievalConfig
from flywheel.retrieval import embedders
from flywheel.retrieval.embed import EmbedWorker, embed_pending
from flywheel.retrieval.ingest import ingest
from flywheel.retrieval.retriever import Retriever, open_index
from flywheel.store import Store
from flywheel.store.schema_retrieval import chunks, embeddings


class Hashing(embedders.Embedder):
    """Deterministic vectors from word hashes (texts sharing words are close); covers `languages`."""

    name = "hashing"

    def __init__(self, languages=frozenset({"en"})):
        self.languages = languages
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        out = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(w.encode()) % 64] += 1.0
        return embedders._normalise(out + 1e-3)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "en.md").write_text("".join(f"# Topic {i}\nThe gateway retries call {i} with a fallback model.\n\n"
                                        for i in range(6)), encoding="utf-8")
    (docs / "zh.md").write_text("# 缓存\n语义缓存按向量相似度命中。\n\n# 评估\n成对比较评估比打分更稳定。\n", encoding="utf-8")
    return docs


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    yield s
    s.close()


def test_keyword_search_works_before_the_embed_stage_which_then_fills_the_dense_side(store, tmp_path):
    docs = _docs(tmp_path)
    emb = Hashing()
    summary = ingest([docs], store, RetrievalConfig(), embedder=emb, root=tmp_path, embed=False)
    assert summary.chunks_added == 8 and summary.embedded == 0 and emb.calls == []
    assert summary.embed_waiting == 6 and summary.not_embedded == {"zh": 2}
    r = Retriever(open_index(store), emb, RetrievalConfig(min_relevance=None))
    hits = r.search("gateway fallback model", k=3)
    assert len(hits) == 3 and all(h.ranks["dense"] is None for h in hits)  # keyword only, for now
    cov = r.coverage()
    assert (cov.total, cov.embedded, cov.waiting, cov.other_language) == (8, 0, 6, 2)
    assert cov.describe().startswith("embedded 0 % of 8 chunks; dense results cover those (6 waiting")

    done = embed_pending(open_index(store), emb, "default")
    assert (done.chunks, done.embedded) == (6, 6)
    hits = r.search("gateway fallback model", k=3)
    assert any(h.ranks["dense"] is not None for h in hits)  # the cached matrix saw the new vectors
    cov = r.coverage()
    assert (cov.embedded, cov.waiting, cov.other_language) == (6, 0, 2) and cov.fraction == 0.75
    assert embed_pending(open_index(store), emb, None).chunks == 0  # idempotent: nothing is waiting
    assert emb.calls == [1, 6]  # the query (then cached), the 6 chunks once
    # the next ingest (embedding by default) finds nothing new to embed either
    again = ingest([docs], store, RetrievalConfig(), embedder=emb, root=tmp_path)
    assert again.unchanged == 2 and again.embedded == 0 and again.embed_waiting == 0


KILLED_EMBED = textwrap.dedent("""
    import sys, time
    import numpy as np
    from flywheel.retrieval import embedders
    from flywheel.retrieval.embed import embed_pending
    from flywheel.retrieval.retriever import open_index
    from flywheel.store import Store

    class Slow(embedders.Embedder):
        name = "slow"
        def embed(self, texts):
            time.sleep(0.05)
            rows = [np.random.default_rng(sum(t.encode())).standard_normal(8) for t in texts]
            return embedders._normalise(np.array(rows, np.float32))

    store = Store.open(sys.argv[1])
    embed_pending(open_index(store), Slow(), None, window=int(sys.argv[2]),
                  progress=lambda done, total: print(done, total, flush=True))
    print("finished", flush=True)
""")


def _vector_counts(url: str) -> tuple[int, int]:
    s = Store.open(url)
    with s.engine.connect() as conn:
        vectors = conn.execute(select(func.count()).select_from(embeddings)).scalar()
        distinct = conn.execute(select(func.count(func.distinct(chunks.c.embed_hash)))).scalar()
    s.close()
    return int(vectors or 0), int(distinct or 0)


def test_a_killed_embed_resumes_without_duplicates(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"document {i} on topic {i % 7}"}) + "\n"
                              for i in range(400)))
    store = Store.open(url)
    assert ingest([corpus], store, RetrievalConfig(embedder="none")).chunks_added == 400
    store.close()
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EMBED, url, "20"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    while len(seen) < 4:  # the initial line, then three windows committed
        line = proc.stdout.readline()
        assert line, "the child ended before it could be killed"
        seen.append(line)
    proc.kill()
    assert "finished" not in proc.communicate(timeout=60)[0] and proc.returncode == -9
    vectors, distinct = _vector_counts(url)
    assert 60 <= vectors < 400 and distinct == 400
    out = subprocess.run([sys.executable, "-c", KILLED_EMBED, url, "200"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert "finished" in out.stdout, out.stderr
    assert out.stdout.splitlines()[0] == f"0 {400 - vectors}"  # only what was left is the queue
    assert _vector_counts(url) == (400, 400)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_ingest_no_embed_then_embed_and_search_coverage(tmp_path):
    import flywheel.cli.retrieval  # noqa: F401 - registers `flywheel embed` until the CLI lists it
    from flywheel.cli import main
    from flywheel.testing.fake_llm import FakeLLM

    docs = _docs(tmp_path)
    runner = CliRunner()
    with FakeLLM() as llm:
        (tmp_path / "flywheel.yaml").write_text(
            f"models:\n  emb: {{provider: openai_compat, base_url: '{llm.base_url}', model: fake-embedding}}\n"
            "retrieval: {embedder: emb, min_relevance: null}\n")
        res = runner.invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--no-embed", "--json"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.output)
        assert summary["embed_waiting"] == 8 and summary["embedded"] == 0 and summary["not_embedded"] == {}
        res = runner.invoke(main, ["--project", str(tmp_path), "search", "gateway", "fallback"])
        assert res.exit_code == 0, res.output
        assert "embedded 0 % of 8 chunks; dense results cover those (8 waiting" in res.output
        res = runner.invoke(main, ["--project", str(tmp_path), "embed", "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["chunks"] == 8
        res = runner.invoke(main, ["--project", str(tmp_path), "search", "gateway", "fallback"])
        assert "embedded 100 % of 8 chunks" in res.output and "waiting" not in res.output
        res = runner.invoke(main, ["--project", str(tmp_path), "embed"])
        assert res.exit_code == 0 and "embedded 0 chunks" in res.output
        res = runner.invoke(main, ["--project", str(tmp_path), "embed", "--tenant", " padded "])
        assert res.exit_code == 2


def test_cli_ingest_embeds_after_the_keyword_stage_by_default(tmp_path):
    from flywheel.cli import main
    from flywheel.testing.fake_llm import FakeLLM

    docs = _docs(tmp_path)
    with FakeLLM() as llm:
        (tmp_path / "flywheel.yaml").write_text(
            f"models:\n  emb: {{provider: openai_compat, base_url: '{llm.base_url}', model: fake-embedding, "
            "params: {languages: [en]}}\nretrieval: {embedder: emb}\n")
        res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(docs)])
    assert res.exit_code == 0, res.output
    assert "8 chunks searchable by keyword after" in res.output and "embedding 6" in res.output
    assert "not embedded (language)" in res.output and "zh 2" in res.output
    assert "embedded (not cached)" in res.output and "waiting for vectors" not in res.output


# ------------------------------------------------------------------------------------------ the server's worker


def test_embed_worker_embeds_in_the_background_and_stops(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'w.db'}")
    emb = Hashing()
    ingest([_docs(tmp_path)], store, RetrievalConfig(), embedder=emb, root=tmp_path, embed=False)
    retriever = Retriever(open_index(store), emb, RetrievalConfig())
    worker = EmbedWorker(SimpleNamespace(retriever=retriever), interval=0.05).start()
    try:
        deadline = time.monotonic() + 30
        while retriever.coverage().waiting and time.monotonic() < deadline:
            time.sleep(0.05)
        assert retriever.coverage().embedded == 6 and worker.running and worker.error is None
    finally:
        worker.stop()
    assert not worker.running and worker.last is not None and worker.last.chunks == 6
    store.close()


# ------------------------------------------------------------------------------------------ openai_compat


class _Embeddings(BaseHTTPRequestHandler):
    """POST /v1/embeddings: vector [int(text), 1]; `server.barrier` holds requests until `parties` are in flight
    at once (a client sending one at a time breaks it: 500); `server.limit_first` answers the first one 429."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append((time.monotonic(), list(body["input"])))
            first = len(srv.requests) == 1
        if first and srv.limit_first:
            return self._send(429, {"error": {"message": "slow down", "type": "rate_limit"}},
                              {"Retry-After": "1"})
        if srv.barrier is not None:
            try:
                srv.barrier.wait(timeout=srv.barrier_timeout)
            except threading.BrokenBarrierError:
                return self._send(500, {"error": {"message": "requests were not concurrent"}})
        data = [{"object": "embedding", "index": i, "embedding": [float(t), 1.0]} for i, t in enumerate(body["input"])]
        self._send(200, {"object": "list", "data": data, "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}})

    def _send(self, status, payload, headers=None):
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def endpoint():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    srv.daemon_threads = True
    srv.lock, srv.requests, srv.barrier, srv.limit_first = threading.Lock(), [], None, False
    srv.barrier_timeout = 10.0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _embedder(srv, **params):
    alias = ModelAlias(provider="openai_compat", base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1", model="m",
                       max_retries=0, timeout=30, params=params)
    return embedders.OpenAICompatEmbedder("emb", alias)


def test_openai_compat_keeps_several_batches_in_flight_in_order(endpoint):
    endpoint.barrier = threading.Barrier(4)
    emb = _embedder(endpoint, concurrency=4, batch_size=5)
    vecs = emb.embed([str(i) for i in range(40)])  # 8 requests: two rounds of 4 at once
    assert len(endpoint.requests) == 8
    assert np.allclose(vecs[:, 0] / vecs[:, 1], np.arange(40))  # rows come back in input order
    one_at_a_time = _embedder(endpoint, concurrency=1, batch_size=5)
    endpoint.barrier, endpoint.barrier_timeout = threading.Barrier(2), 1.0
    with pytest.raises(Exception, match="not concurrent"):
        one_at_a_time.embed([str(i) for i in range(10)])


def test_openai_compat_honours_retry_after_on_429(endpoint):
    endpoint.limit_first = True
    emb = _embedder(endpoint, concurrency=1)
    vecs = emb.embed(["1", "2"])
    assert np.allclose(vecs[:, 0] / vecs[:, 1], [1, 2]) and emb.rate_limited == 1
    (t429, first), (t_retry, again) = endpoint.requests
    assert first == again == ["1", "2"] and t_retry - t429 >= 0.95  # waited the server's Retry-After: 1


def test_retry_after_header_forms():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    assert embedders.retry_after({"retry-after": "2.5"}) == 2.5
    assert embedders.retry_after({}) is None and embedders.retry_after({"retry-after": "soon"}) is None
    assert embedders.retry_after({"retry-after": "99999"}) == embedders.MAX_RETRY_AFTER_S
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= embedders.retry_after({"retry-after": when}) <= 30


def test_one_process_at_a_time_holds_the_background_embed_lease(store, store_url):
    from flywheel.retrieval.embed import embed_lease

    other = Store.open(store_url)  # another process's view: its own connections and file handles
    try:
        with embed_lease(open_index(store)) as first, embed_lease(open_index(other)) as second:
            assert first and not second
        with embed_lease(open_index(other)) as again:
            assert again  # released at the end of the pass
    finally:
        other.close()
