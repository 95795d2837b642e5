"""Trace search matches across full and half width, letter case (non-ASCII too) and traditional/simplified
Chinese: `traces.search_text` holds the previews folded by `fold_for_search`, and the words are folded the same
way — on SQLite and PostgreSQL, through `search_traces`, `flywheel traces --search` and the dashboard
(/ui/traces?search=, .json, .csv); stores written before the column are backfilled by migration 0016."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from flywheel.config import Project
from flywheel.store import Store
from flywheel.store.schema import traces as traces_t
from flywheel.tracing import tracer
from flywheel.tracing.search import TraceQuery, search_traces
from flywheel.tracing.store_sink import attach_store
from flywheel.tracing.tracer import make_span

T0 = 1_780_000_000.0
FULL = "a1" * 16  # asked with a Chinese IME: full-width letters, digits and space
HALF = "b2" * 16  # asked in ASCII
TRAD = "c3" * 16  # traditional characters
CASE = "d4" * 16  # non-ASCII capitals
QUESTIONS = {
    FULL: ("ＡＰＩ　密钥１２３怎么重置？", "在设置页重置"),
    HALF: ("How do I rotate API key 456?", "Open Settings → Keys"),
    TRAD: ("發票怎麼開 Invoice", "在帳戶頁下載"),
    CASE: ("ÄRGER mit der ÜBERWEISUNG", "Straße prüfen"),
}


def _write(store: Store) -> None:
    """The traces written as the app writes them: root spans through the span writer."""
    detach = attach_store(store)
    try:
        for i, (tid, (question, answer)) in enumerate(QUESTIONS.items()):
            ns = int((T0 + i) * 1e9)
            tracer.ingest(make_span(span_id=f"{i + 1:016x}", trace_id=tid, parent_id=None, name="support",
                                    kind="app", start_ns=ns, end_ns=ns + 10**9, inputs={"question": question},
                                    outputs=answer, output_state="ok", error=None, attributes={}))
        tracer.flush()
    finally:
        detach()


def found(store: Store, search: str) -> set[str]:
    return {r["trace_id"] for r in search_traces(store, TraceQuery(search=search), limit=100).rows}


def test_search_matches_across_width_case_and_script(store_url):
    with Store.open(store_url) as store:
        _write(store)
        assert found(store, "api 123") == {FULL}  # half-width finds full-width
        assert found(store, "ＡＰＩ　４５６") == {HALF}  # and the other way round
        assert found(store, "api") == {FULL, HALF}
        assert found(store, "ａｐｉ") == {FULL, HALF}
        assert found(store, "发票 INVOICE") == {TRAD}  # simplified finds traditional, any case
        assert found(store, "帐户") == {TRAD}  # in the answer too
        assert found(store, "über ärger") == {CASE}  # non-ASCII case
        assert found(store, "密钥 API") == {FULL}  # Chinese + English: each word must match
        assert found(store, "密钥 456") == set()
        assert found(store, "100%") == set()  # LIKE wildcards stay literal after folding


def _project(tmp_path, store_url: str) -> Project:
    (tmp_path / "flywheel.yaml").write_text(f'models: {{}}\nstore: "{store_url}"\n', encoding="utf-8")
    return Project.load(tmp_path)


def test_cli_search_matches_full_width(store_url, tmp_path):
    from flywheel.cli import main

    project = _project(tmp_path, store_url)
    with Store.open(project.store_url) as store:
        _write(store)

    def cli(search: str) -> set[str]:
        out = CliRunner().invoke(main, ["--project", str(tmp_path), "traces", "--search", search, "--json"],
                                 env={"COLUMNS": "160"})
        assert out.exit_code == 0, out.output
        return {r["trace_id"] for r in json.loads(out.output)}

    assert cli("api 123") == {FULL}
    assert cli("ＡＰＩ ４５６") == {HALF}
    assert cli("發票 invoice") == {TRAD}


def test_dashboard_search_matches_full_width(store_url, tmp_path):
    from fastapi.testclient import TestClient

    from flywheel import web
    from flywheel.server import create_app

    app = create_app(_project(tmp_path, store_url), host="127.0.0.1")
    web.mount(app, app.state.flywheel)
    _write(app.state.flywheel.store)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        rows = client.get("/ui/traces.json", params={"search": "api 123"}).json()["rows"]
        assert [r["trace_id"] for r in rows] == [FULL]
        rows = client.get("/ui/traces.json", params={"search": "ＡＰＩ　ｒｏｔａｔｅ"}).json()["rows"]
        assert [r["trace_id"] for r in rows] == [HALF]
        page = client.get("/ui/traces", params={"search": "密钥 api"})
        assert page.status_code == 200 and FULL in page.text and HALF not in page.text
        csv = client.get("/ui/traces.csv", params={"search": "发票"}).text
        assert TRAD in csv and FULL not in csv


def test_migration_fills_older_traces_and_raw_rows_still_match(store_url):
    """A store written before `search_text`: migration 0016 folds its traces' previews; a row a raw-SQL writer
    adds later without the column is still found by its previews as written."""
    with Store.open(store_url) as store:
        _write(store)
        with store.begin() as conn:  # back to the schema before migration 0016
            conn.execute(text("ALTER TABLE traces DROP COLUMN search_text"))
            conn.execute(text("UPDATE alembic_version SET version_num = '0015_tracing_open_traces' "
                              "WHERE version_num = '0016_tracing_search_text'"))
    with Store.open(store_url) as store:
        with store.engine.connect() as conn:
            folded = dict(conn.execute(select(traces_t.c.trace_id, traces_t.c.search_text)).all())
        assert folded[FULL] == "api 密钥123怎么重置?\n在设置页重置"
        assert found(store, "api 123") == {FULL} and found(store, "发票") == {TRAD}
        with store.begin() as conn:
            conn.execute(text("INSERT INTO traces (trace_id, name, started_at, input_preview) "
                              "VALUES ('" + "e5" * 16 + "', 'raw', 1780000100, 'Raw Parcel 77')"))
        assert found(store, "parcel 77") == {"e5" * 16}


@pytest.mark.parametrize("search", ["api", "ＡＰＩ"])
def test_rows_inserted_through_sqlalchemy_are_folded_too(store, search):
    """A Core insert that leaves search_text out (importers, tests, benches) gets it filled from the previews."""
    with store.begin() as conn:
        conn.execute(traces_t.insert(), [{"trace_id": "f6" * 16, "name": "x", "started_at": T0,
                                          "input_preview": "ＡＰＩ　ｄｏｃｓ", "output_preview": None}])
    assert found(store, search) == {"f6" * 16}
