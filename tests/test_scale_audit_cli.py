"""New-user audit of the scale commands (`flywheel ingest`, `flywheel embed`): what the user is told when a run
is stopped, and that a mistake on the command line leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import flywheel.cli.retrieval  # noqa: F401 - registers `flywheel embed`
from flywheel.cli import main
from flywheel.retrieval import embed as embed_stage
from flywheel.retrieval.embedders_remote import OpenAICompatEmbedder
from flywheel.store import Store
from flywheel.store.schema_retrieval import embeddings
from flywheel.testing.fake_llm import FakeLLM


def _project(tmp_path: Path, base_url: str, topics: int = 10) -> Path:
    """A project whose embedder is fake_llm at `base_url`, with one page of `topics` sections; its docs folder."""
    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  emb: {{provider: openai_compat, base_url: '{base_url}', model: fake-embedding}}\n"
        "retrieval: {embedder: emb, min_relevance: null}\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("".join(f"# Topic {i}\nThe gateway retries call {i} with a fallback model.\n\n"
                                       for i in range(topics)), encoding="utf-8")
    return docs


def test_embed_stopped_mid_run_counts_the_windows_it_committed(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM, which the CLI turns into the same) after some windows were written: the message gives
    the number of chunks that got their vectors, not 0, and a rerun finishes the rest."""
    runner = CliRunner()
    with FakeLLM() as llm:
        docs = _project(tmp_path, llm.base_url)
        res = runner.invoke(main, ["--project", str(tmp_path), "ingest", str(docs), "--no-embed", "--json"])
        assert res.exit_code == 0, res.output
        monkeypatch.setattr(embed_stage, "WINDOW", 2)
        original = OpenAICompatEmbedder.embed
        calls = []

        def interrupted_on_the_third_window(self, texts):
            calls.append(len(texts))
            if len(calls) == 3:
                raise KeyboardInterrupt
            return original(self, texts)

        monkeypatch.setattr(OpenAICompatEmbedder, "embed", interrupted_on_the_third_window)
        res = runner.invoke(main, ["--project", str(tmp_path), "embed"])
        assert res.exit_code == 130, res.output
        store = Store.open(f"sqlite:///{tmp_path / '.flywheel' / 'flywheel.db'}")
        try:
            with store.engine.connect() as conn:
                written = conn.execute(embeddings.select()).fetchall()
        finally:
            store.close()
        assert len(written) == 4  # two windows of two committed before the interrupt
        assert f"stopped after {len(written)} chunks" in res.output
        monkeypatch.setattr(OpenAICompatEmbedder, "embed", original)
        res = runner.invoke(main, ["--project", str(tmp_path), "embed", "--json"])
        assert res.exit_code == 0, res.output
        assert '"chunks": 6' in res.output


def test_ingest_of_a_missing_path_is_one_line_and_creates_no_store(tmp_path, monkeypatch):
    """A typo in the path (alone, or next to a good one) stops before the store is opened: exit 2, one error
    line, and no `.flywheel/` folder or database appears in a fresh project."""
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n")
    good = tmp_path / "good.md"
    good.write_text("# Title\nSome text about the gateway.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["nope"], ["good.md", "nope.md"]):
        res = runner.invoke(main, ["--project", str(tmp_path), "ingest", *args])
        assert res.exit_code == 2, res.output
        assert f"no such file or folder: {args[-1]}" in res.output and "Traceback" not in res.output
        assert not (tmp_path / ".flywheel").exists()


def test_a_ray_address_without_host_or_with_a_port_out_of_range_is_a_bad_address(tmp_path):
    """`--ray :PORT` (no host) reached ray.init, which logged a traceback before the error; `--ray HOST:99999`
    was reported as "no Ray cluster answers". Both are malformed addresses: one line, exit 2, no store."""
    import socket

    pytest.importorskip("ray")
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n")
    doc = tmp_path / "a.md"
    doc.write_text("# Title\nSome text.\n", encoding="utf-8")
    with socket.socket() as listening:  # something answers on the port, so only the address itself is wrong
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        for address in (f":{port}", "127.0.0.1:99999", "127.0.0.1:0"):
            res = CliRunner().invoke(main, ["--project", str(tmp_path), "ingest", str(doc), "--ray", address])
            assert res.exit_code == 2, res.output
            assert res.output.startswith(f"error: bad --ray address {address!r}"), res.output
            assert "Traceback" not in res.output
            assert not (tmp_path / ".flywheel").exists()


def test_search_of_a_tenant_without_documents_says_so(tmp_path):
    """`flywheel search --tenant acmee` (a typo) used to answer "try other words", as if the words were wrong;
    a tenant with no chunks at all now says so and names the ingest command. A tenant with documents but no
    match keeps the relevance-floor message."""
    (tmp_path / "flywheel.yaml").write_text("retrieval: {embedder: none}\n")
    doc = tmp_path / "a.md"
    doc.write_text("# Gateway\nThe gateway retries a call with a fallback model.\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(main, ["--project", str(tmp_path), "ingest", str(doc), "--tenant", "acme"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["--project", str(tmp_path), "search", "gateway", "--tenant", "acmee"])
    assert res.exit_code == 0, res.output
    assert "tenant 'acmee' has no documents" in res.output and "--tenant acmee" in res.output
    assert "try other words" not in res.output
    res = runner.invoke(main, ["--project", str(tmp_path), "search", "gateway", "--tenant", "acme"])
    assert "fallback model" in res.output and "has no documents" not in res.output
    res = runner.invoke(main, ["--project", str(tmp_path), "search", "zzqx", "--tenant", "acme"])
    assert "try other words" in res.output and "has no documents" not in res.output
