"""Tracing persisted: span and trace rows with totals on both engines, batching and retries, off-thread
recording, secrets and PII never reaching the store, content capture off, and the traces CLI."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from flywheel.config import Config, ModelAlias, Project, TracingConfig
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.tracing import attach_store, get_trace, in_context, list_traces, tracer
from flywheel.types import Span


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    detach = attach_store(s)
    yield s
    detach()
    s.close()


def _span_rows(store: Store, trace_id: str) -> dict[str, dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(spans_t).where(spans_t.c.trace_id == trace_id)).mappings()
        return {r["name"]: dict(r) for r in rows}


def _trace_row(store: Store, trace_id: str) -> dict | None:
    with store.engine.connect() as conn:
        r = conn.execute(select(traces_t).where(traces_t.c.trace_id == trace_id)).mappings().first()
        return dict(r) if r else None


# ------------------------------------------------------------------------------------------ in memory


def _gateway_like_call(fail_first: bool = True) -> str:
    """An app span around a gateway call with a failed attempt, like the gateway records them."""
    with tracer.span("docs_qa", kind="app", inputs={"question": "How do I pin a model?"},
                     **{"flywheel.app": "docs_qa", "flywheel.tenant": "acme"}) as app:
        with tracer.span("retrieve", kind="retrieval", inputs={"query": "pin model"}) as r:
            r.set(outputs=["c1", "c2"])
        with tracer.span("gateway.chat", kind="llm", **{"flywheel.prompt.version": "p-abc123"}) as top:
            if fail_first:
                with tracer.span("chat small", kind="llm", **{
                        "gen_ai.request.model": "small", "gen_ai.provider.name": "openai_compat",
                        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 0,
                        "flywheel.cost_usd": 0.001}) as a1:
                    a1.record_error("rate_limited: HTTP 429")
            with tracer.span("chat strong", kind="llm", **{
                    "gen_ai.request.model": "strong", "gen_ai.response.model": "strong-2025",
                    "gen_ai.provider.name": "openai_compat", "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 30, "flywheel.cost_usd": 0.01}) as a2:
                a2.set(outputs="Set `version:` on the alias.")
            # the call span restates the totals: they must not be counted twice
            top.set(outputs="Set `version:` on the alias.", **{
                "gen_ai.usage.input_tokens": 220 if fail_first else 120, "gen_ai.usage.output_tokens": 30,
                "flywheel.cost_usd": 0.011 if fail_first else 0.01})
        app.set(outputs={"answer": "Set `version:` on the alias.", "citations": [1]})
    return app.trace_id


def test_spans_and_trace_rows_are_persisted_with_totals(store):
    tid = _gateway_like_call()
    assert tracer.flush() is None  # flush is synchronous through the sinks
    rows = _span_rows(store, tid)
    assert set(rows) == {"docs_qa", "retrieve", "gateway.chat", "chat small", "chat strong"}
    strong = rows["chat strong"]
    assert strong["model"] == "strong-2025" and strong["provider"] == "openai_compat"
    assert (strong["input_tokens"], strong["output_tokens"]) == (120, 30)
    assert strong["cost_usd"] == pytest.approx(0.01)
    assert strong["parent_id"] == rows["gateway.chat"]["span_id"]
    assert rows["chat small"]["error"] == "rate_limited: HTTP 429"
    assert rows["retrieve"]["outputs"] == ["c1", "c2"] and rows["retrieve"]["inputs"] == {"query": "pin model"}
    assert rows["gateway.chat"]["prompt_version"] == "p-abc123"

    t = _trace_row(store, tid)
    assert t["name"] == "docs_qa" and t["kind"] == "app" and t["status"] == "ok"
    assert (t["app"], t["tenant"]) == ("docs_qa", "acme")
    assert (t["input_tokens"], t["output_tokens"]) == (220, 30)  # both attempts, counted once
    assert t["cost_usd"] == pytest.approx(0.011)
    assert t["span_count"] == 5 and t["error_count"] == 1
    assert t["input_preview"] == "How do I pin a model?"
    assert t["output_preview"] == "Set `version:` on the alias."
    assert t["prompt_version"] == "p-abc123" and t["model"] == "small"
    assert t["latency_ms"] > 0 and t["ended_at"] >= t["started_at"]


def test_output_states_and_errors_are_persisted(store):
    with pytest.raises(KeyError), tracer.span("req", kind="app") as root:
        with tracer.span("no-output"):
            pass
        with tracer.span("empty-output") as sp:
            sp.set(outputs="")
        raise KeyError("missing doc")
    tracer.flush()
    rows = _span_rows(store, root.trace_id)
    assert rows["no-output"]["output_state"] == "missing" and rows["no-output"]["outputs"] is None
    assert rows["empty-output"]["output_state"] == "empty" and rows["empty-output"]["outputs"] == ""
    t = _trace_row(store, root.trace_id)
    assert t["status"] == "error" and "KeyError" in t["error"]
    assert t["output_state"] == "missing"


def test_a_span_ending_after_its_root_updates_the_trace_totals(store):
    release = threading.Event()
    done = threading.Event()

    def background() -> None:
        release.wait(5)
        with tracer.span("late", kind="llm", **{"gen_ai.usage.input_tokens": 7,
                                                 "gen_ai.usage.output_tokens": 3}):
            pass
        done.set()

    with tracer.span("fire-and-forget", kind="app") as root:
        threading.Thread(target=in_context(background)).start()
    tracer.flush()
    assert _trace_row(store, root.trace_id)["span_count"] == 1
    release.set()
    done.wait(5)
    tracer.flush()
    t = _trace_row(store, root.trace_id)
    assert t["span_count"] == 2 and (t["input_tokens"], t["output_tokens"]) == (7, 3)


def test_trace_totals_are_right_when_a_trace_spans_many_batches(store_url):
    with Store.open(store_url, batch_rows=3) as s:  # tiny batches: the trace's spans land in several
        detach = attach_store(s)
        try:
            with tracer.span("long", kind="app") as root:
                for i in range(10):
                    with tracer.span(f"call{i}", kind="llm", **{"gen_ai.usage.input_tokens": i,
                                                                "flywheel.cost_usd": 0.5}):
                        pass
            tracer.flush()
        finally:
            detach()
        t = _trace_row(s, root.trace_id)
    assert t["span_count"] == 11 and t["input_tokens"] == 45 and t["cost_usd"] == pytest.approx(5.0)


def test_trace_totals_fall_back_to_the_database_when_too_many_traces_are_open(store_url, monkeypatch):
    from flywheel.tracing.store_sink import StoreSink

    monkeypatch.setattr(StoreSink, "MAX_OPEN_TRACES", 1)
    children_done = threading.Barrier(4)
    release = threading.Event()
    trace_ids: list[str] = []

    def request(name: str) -> None:
        with tracer.span(name, kind="app") as root:
            trace_ids.append(root.trace_id)
            with tracer.span(f"{name}.llm", kind="llm", **{"gen_ai.usage.output_tokens": 4}):
                pass
            children_done.wait(10)
            release.wait(10)

    with Store.open(store_url) as s:
        detach = attach_store(s)
        try:
            threads = [threading.Thread(target=request, args=(n,)) for n in "abc"]
            for t in threads:
                t.start()
            children_done.wait(10)
            tracer.flush()  # three traces open at once, their children committed: more than the limit
            release.set()
            for t in threads:
                t.join()
            tracer.flush()
        finally:
            detach()
        for tid in trace_ids:
            t = _trace_row(s, tid)
            assert t["span_count"] == 2 and t["output_tokens"] == 4


def test_a_failed_batch_is_retried_without_double_counting(store_url):
    from flywheel.tracing.redact import Redactor
    from flywheel.tracing.store_sink import StoreSink

    got: list[Span] = []
    tracer.add_sink(got.append)
    with tracer.span("root", kind="app") as root, tracer.span("llm", kind="llm",
                                                               **{"gen_ai.usage.input_tokens": 10}):
        pass
    tracer.remove_sink(got.append)
    child, root_rec = got
    with Store.open(store_url) as s:
        sink = StoreSink(s, Redactor())
        # a span whose start does not fit the column makes the whole batch fail (a span sent twice no longer
        # does: spans are upserted, OTLP delivery being at-least-once)
        bad = child.model_copy(update={"span_id": "badbadbadbadbad0", "start_ns": 2**70})
        for rec in (child, bad, root_rec):
            sink.submit(rec)
        s.writer.flush()
        assert s.writer.errors == 1
        t = _trace_row(s, root.trace_id)
    assert t["span_count"] == 2 and t["input_tokens"] == 10


def test_query_lists_recent_traces_and_returns_span_trees(store):
    ids = [_gateway_like_call(fail_first=False) for _ in range(3)]
    with tracer.span("other", kind="app", **{"flywheel.app": "support"}):
        pass
    tracer.flush()
    latest = list_traces(store, last=2)
    assert len(latest) == 2 and latest[0]["name"] == "other"
    assert [t["trace_id"] for t in list_traces(store, app="docs_qa")] == ids[::-1]
    full = get_trace(store, ids[0][:12])  # a prefix, as printed by `flywheel traces`
    assert full["trace_id"] == ids[0]
    (root,) = full["spans"]
    assert root["name"] == "docs_qa"
    assert [c["name"] for c in root["children"]] == ["retrieve", "gateway.chat"]
    assert [c["name"] for c in root["children"][1]["children"]] == ["chat strong"]
    assert get_trace(store, "f" * 32) is None


def test_recording_happens_off_the_callers_thread(store_url):
    threads: list[str] = []
    with Store.open(store_url) as s:
        detach = attach_store(s)
        redactor = tracer.redactor

        def spying(record: Span) -> Span:
            threads.append(threading.current_thread().name)
            return redactor(record)

        tracer.redactor = spying  # a user-installed redactor runs too, on the writer thread
        try:
            with tracer.span("x", inputs="secret sk-abcdefghijklmnopqrstuvwx"):
                pass
            tracer.flush()
        finally:
            tracer.redactor = redactor
            detach()
        assert threads == ["flywheel-store-writer"]
        with s.engine.connect() as conn:
            assert conn.scalar(select(spans_t.c.inputs)) == "secret [REDACTED]"


# ------------------------------------------------------------------------------------------ secrets


SECRETS = {
    "openai": "sk-proj-Abc123DEF456ghi789JKL012mno345",
    "anthropic": "sk-ant-api03-ZYXwvu987TSRqpo654NMLkji321",
    "bearer": "eyJhbGciOiJIUzI1NiJ9payloadsignature0123",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "env_key": "plain-looking-value-4f9a2c",  # no known shape: found only as the api_key_env value
    "custom": "cust-493021",  # only the configured tracing.redact regex knows this one
    "db_password": "pg-pass-77x",
    "zh_glued": "sk-Zq81mXc04LpVb7Rt2NwE9yHd5KjU3aFs",  # glued to Chinese text: 密钥是sk-…
    "token_hex": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b",  # "my token is <hex>"
}


def test_secrets_never_reach_the_store(store_url, monkeypatch):
    monkeypatch.setenv("ACME_LLM_CREDS", SECRETS["env_key"])  # odd name: known only via api_key_env
    config = Config(models={"acme": ModelAlias(provider="openai_compat", model="m", api_key_env="ACME_LLM_CREDS")},
                    tracing=TracingConfig(redact=[r"cust-\d{6}"]))
    with Store.open(store_url) as s:
        detach = attach_store(s, config.tracing, models=config.models)
        try:
            with tracer.span("call", kind="llm", inputs={
                "messages": [{"role": "user", "content": f"my key is {SECRETS['openai']} and {SECRETS['custom']}"},
                             {"role": "user", "content": f"密钥是{SECRETS['zh_glued']}，my token is {SECRETS['token_hex']}"}],
                "headers": {"Authorization": f"Bearer {SECRETS['bearer']}", "x-api-key": SECRETS["anthropic"]},
                "config": f"aws_secret_access_key={SECRETS['aws_secret']} id={SECRETS['aws']}",
                "dsn": f"postgresql://app:{SECRETS['db_password']}@db:5432/prod",
            }, **{"flywheel.key_echo": SECRETS["env_key"], "api_key": SECRETS["openai"]}) as sp:
                sp.set(outputs=[f"echo {SECRETS['anthropic']}", {"token_note": SECRETS["env_key"]}])
                try:
                    raise PermissionError(f"invalid api_key={SECRETS['openai']}")
                except PermissionError as exc:
                    sp.record_error(exc)
            tracer.flush()
        finally:
            detach()
        with s.engine.connect() as conn:
            dump = json.dumps([dict(r) for t in (spans_t, traces_t)
                               for r in conn.execute(select(t)).mappings()], default=str)
    assert "[REDACTED]" in dump and "my key is" in dump  # the span is there, scrubbed
    for name, secret in SECRETS.items():
        assert secret not in dump, f"{name} secret leaked into the store"


def test_pii_is_masked_before_storage_when_configured(tmp_path):
    from flywheel.apps.runtime import pii_masker
    from flywheel.errors import ConfigError

    with Store.open(f"sqlite:///{tmp_path / 'g.db'}") as s, pytest.raises(ConfigError, match="no PII masker"):
        attach_store(s, TracingConfig(redact_pii=True))  # tracing cannot reach the detectors by itself
    with Store.open(f"sqlite:///{tmp_path / 'f.db'}") as s:
        detach = attach_store(s, TracingConfig(redact_pii=True), masker=pii_masker(True))  # as the Runtime does
        try:
            with tracer.span("q", inputs="mail ann.lee@example.com or call +1 415-555-0132") as sp:
                sp.set(outputs={"note": "card 4111 1111 1111 1111"})
            tracer.flush()
        finally:
            detach()
        with s.engine.connect() as conn:
            row = conn.execute(select(spans_t)).mappings().one()
    stored = json.dumps([row["inputs"], row["outputs"]])
    assert "ann.lee@example.com" not in stored and "4111 1111 1111 1111" not in stored
    assert "<EMAIL_ADDRESS>" in stored and "<CREDIT_CARD>" in stored and "mail" in stored


def test_content_capture_off_keeps_structure_but_not_content(store_url):
    with Store.open(store_url) as s:
        detach = attach_store(s, TracingConfig(capture_content=False))
        try:
            with tracer.span("q", inputs="private question") as sp:
                sp.set(outputs="private answer")
            tracer.flush()
        finally:
            detach()
        with s.engine.connect() as conn:
            row = conn.execute(select(spans_t)).mappings().one()
    assert row["inputs"] is None and row["outputs"] is None and row["output_state"] == "ok"


# ------------------------------------------------------------------------------------------ CLI


def test_cli_lists_and_shows_traces(tmp_path):
    project = Project(tmp_path)
    with Store.open(project.store_url) as s:
        detach = attach_store(s)
        tid = _gateway_like_call()
        detach()
    from flywheel.cli import main

    runner = CliRunner()
    out = runner.invoke(main, ["--project", str(tmp_path), "traces", "--last", "5", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["trace_id"] for r in rows] == [tid]
    table = runner.invoke(main, ["--project", str(tmp_path), "traces"], env={"COLUMNS": "140"})
    assert table.exit_code == 0 and tid[:8] in table.output and "docs_qa" in table.output
    shown = runner.invoke(main, ["--project", str(tmp_path), "traces", "show", tid[:12], "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["spans"][0]["children"][1]["name"] == "gateway.chat"
    tree = runner.invoke(main, ["--project", str(tmp_path), "traces", "show", tid])
    assert tree.exit_code == 0 and "chat strong" in tree.output and "rate_limited" in tree.output
    missing = runner.invoke(main, ["--project", str(tmp_path), "traces", "show", "0" * 32])
    assert missing.exit_code == 2 and "no trace" in missing.output
