"""Issue 9.1: plant secrets through every entry point (chat, ask, an app from Python, ingest of a document,
cache hits, evals with --html and --json, an upstream 401 that quotes the key), then scan every text and
blob column of every table of the store, every file the commands wrote and everything they printed:
0 planted secrets found."""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.testing.fake_llm import FakeLLM
from security.plants import PII, found, secrets

UPSTREAM_KEY = "acme-live-7f3a9c2e41b84d6f9e0a5c7d3b2f1e08"  # no known shape: known only as api_key_env's value


class _Quoting401(http.server.BaseHTTPRequestHandler):
    """An upstream that answers 401 and quotes the key it was sent (as some providers and proxies do)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        sent = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {sent}. Also tried "
                                                f"{self.server.extra}", "type": "invalid_request_error",
                                     "code": "invalid_api_key"}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quoting401)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _config(llm: FakeLLM, upstream_port: int) -> str:
    return f"""
retrieval: {{embedder: none}}
cache: {{exact: true}}
models:
  default: {{provider: extractive}}
  fake: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, api_key_env: FAKE_LLM_KEY}}
  echo: {{provider: openai_compat, base_url: "{llm.base_url}", model: echo-model, api_key_env: FAKE_LLM_KEY}}
  upstream: {{provider: openai_compat, base_url: "http://127.0.0.1:{upstream_port}/v1", model: m,
             api_key_env: ACME_UPSTREAM_CREDS, max_retries: 0}}
apps:
  docs_qa: {{model: default}}
  helper: {{kind: chat, model: fake}}
  echoer: {{kind: chat, model: echo}}
"""


def _suite(plants) -> str:
    cases = "\n".join(
        f"  - id: case{i}\n    vars: {{question: {json.dumps(p.sentence)}}}\n    checks:\n      - max_words: 500"
        for i, p in enumerate(plants))
    return f"name: leaks\ntarget: model:echo\nthreshold: 0\ncases:\n{cases}\n"


def _scan_store(db_path: Path) -> dict[str, str]:
    """Every text/blob value of every table (FTS shadow tables included), as one string per table."""
    db = sqlite3.connect(db_path)
    out: dict[str, str] = {}
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            parts: list[str] = []
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("utf-8", "replace"))
                    elif isinstance(value, str):
                        parts.append(value)
            out[table] = "\n".join(parts)
    finally:
        db.close()
    return out


def test_no_planted_secret_is_stored_or_printed(tmp_path, monkeypatch, upstream):
    plants = secrets(2024)
    everything = "\n".join(p.sentence for p in plants)
    monkeypatch.setenv("FAKE_LLM_KEY", "fake-llm-key-not-secret-0")
    monkeypatch.setenv("ACME_UPSTREAM_CREDS", UPSTREAM_KEY)
    upstream.extra = plants[0].value  # the 401 body also quotes a planted key
    project = tmp_path / "proj"
    project.mkdir()
    printed: list[str] = []

    with FakeLLM() as llm:
        llm.add(r".", "Noted; I will not repeat credentials.", model="fake-model")
        (project / "flywheel.yaml").write_text(_config(llm, upstream.server_address[1]), encoding="utf-8")
        docs = project / "docs"
        docs.mkdir()
        (docs / "runbook.md").write_text("# Runbook\n\nHow to deploy the billing service.\n\n"
                                         + "\n\n".join(p.sentence for p in plants)
                                         + f"\n\nContact {PII['email']} or {PII['phone']}.\n", encoding="utf-8")
        (project / "evals").mkdir()
        (project / "evals" / "leaks.yaml").write_text(_suite(plants), encoding="utf-8")
        html = tmp_path / "report.html"

        def cli(*args: str, code: int = 0) -> str:
            res = CliRunner().invoke(main, ["--project", str(project), *args])
            printed.append(res.output)
            assert res.exit_code == code, res.output
            return res.output

        cli("ingest", str(docs))
        cli("search", "deploy billing service credentials key token")
        for _ in range(2):  # the second is an exact cache hit: cache_hits.query
            cli("ask", f"how do I deploy the billing service? {everything}")
            cli("chat", "--app", "helper", f"please store these {everything}")
        cli("chat", "-m", "fake", everything)
        cli("chat", "-m", "fake", "--json", everything)

        from flywheel.apps.runtime import Runtime
        from flywheel.config import Project

        with Runtime(Project.load(project)) as rt:  # the Python API: an answer that repeats the secrets
            for _ in range(2):
                rt.app("echoer").run(f"repeat after me: {everything}")

        cli("eval", "evals/leaks.yaml", "--html", str(html), "--no-progress")
        cli("eval", "evals/leaks.yaml", "--json", "--results", "--fresh", "--no-progress")
        err = cli("chat", "-m", "upstream", f"hello {plants[1].sentence}", code=2)
        assert "401" in err or "API key" in err  # the failure is explained, just not with the key in it
        # the secrets really went through: the models received them
        sent = json.dumps(llm.requests)
        assert found(sent, plants) == [p.name for p in plants]

    all_plants = [*plants, type(plants[0])("upstream_key", UPSTREAM_KEY, "")]
    leaks = {f"stdout/stderr of command {i}": found(out, all_plants) for i, out in enumerate(printed)}
    leaks["html report"] = found(html.read_text(encoding="utf-8"), all_plants)
    for path in project.rglob("*"):  # every file the commands wrote (the planted inputs excepted)
        if path.is_file() and path.parent.name not in ("docs", "evals") and path.suffix not in (".db", ".db-wal"):
            leaks[str(path.relative_to(project))] = found(path.read_text("utf-8", "replace"), all_plants)
    db = project / ".flywheel" / "flywheel.db"
    tables = _scan_store(db)
    assert {"spans", "cache_entries", "cache_hits", "eval_results", "chunks"} <= set(tables)
    assert "[REDACTED]" in tables["cache_entries"] and "[REDACTED]" in tables["chunks"]
    with sqlite3.connect(db) as conn:  # every entry point left rows behind
        count = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                 for t in ("cache_hits", "eval_results", "spans", "chunks")}
    assert count["cache_hits"] >= 2 and count["eval_results"] >= 2 * len(plants) and count["spans"] > 20, count
    for table, blob in tables.items():
        leaks[f"table {table}"] = found(blob, all_plants)
    wal = db.with_name(db.name + "-wal")
    for f in (db, wal):  # the raw files too: pages not yet checkpointed, free pages
        if f.exists():
            leaks[f.name] = found(f.read_bytes().decode("utf-8", "replace"), all_plants)
    leaks = {where: names for where, names in leaks.items() if names}
    assert leaks == {}, f"planted secrets found: {leaks}"
