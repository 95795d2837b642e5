"""`flywheel traces import`: past logs in as traces with their original times, idempotent, all-or-nothing."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from monitor_support import write_jsonl
from sqlalchemy import func, select

import flywheel.cli.traces_import  # noqa: F401 - registers `traces import` until the integrator wires it
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.tracing import get_trace
from flywheel.tracing.importer import import_file

LINES = [
    {"timestamp": "2026-10-01T08:00:00Z", "app": "support", "model": "gpt-4o", "tenant": "acme",
     "session_id": "s-1", "user_id": "u-9", "input": "Reset my password, key sk-abcdefghijklmnopqrstuvwxyz0123",
     "output": "Open Settings.", "latency_ms": 1500, "usage": {"input_tokens": 12, "output_tokens": 3},
     "cost_usd": 0.25, "metadata": {"channel": "web"}},
    {"timestamp": 1790000000, "app": "support", "model": "gpt-4o", "input": [{"role": "user", "content": "你好"}],
     "output": "我不知道。"},
]


def _count(store, table: str) -> int:
    t = store.table(table)
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)


def test_flywheel_format_keeps_times_fields_and_scrubs_secrets(store, tmp_path):
    result = import_file(store, write_jsonl(tmp_path / "a.jsonl", LINES))
    assert (result.imported, result.already) == (2, 0)
    traces = store.table("traces")
    with store.connect() as conn:
        rows = {r["started_at"]: dict(r) for r in conn.execute(select(traces)).mappings()}
    first = rows[1790841600.0]  # 2026-10-01T08:00:00Z
    assert (first["app"], first["model"], first["tenant"], first["session_id"], first["user_id"]) == (
        "support", "gpt-4o", "acme", "s-1", "u-9")
    assert first["latency_ms"] == 1500.0 and first["ended_at"] == 1790841601.5
    assert (first["input_tokens"], first["output_tokens"], first["cost_usd"]) == (12, 3, 0.25)
    assert "sk-abc" not in first["input_preview"] and "[REDACTED]" in first["input_preview"]
    tree = get_trace(store, first["trace_id"])
    assert "sk-abc" not in json.dumps(tree)
    assert rows[1790000000.0]["output_preview"] == "我不知道。"


def test_reimport_adds_nothing(store, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", LINES)
    import_file(store, path)
    again = import_file(store, path)
    assert (again.imported, again.already) == (0, 2)
    assert _count(store, "traces") == 2 and _count(store, "spans") == 4


def test_bad_line_names_file_line_and_field_and_writes_nothing(store, tmp_path):
    bad = [*LINES, {"timestamp": "yesterday-ish", "app": "x", "input": "q", "output": "a"}]
    path = write_jsonl(tmp_path / "bad.jsonl", bad)
    with pytest.raises(UserError) as err:
        import_file(store, path)
    assert err.value.where == f"{path}:3" and "`timestamp`" in err.value.message
    assert _count(store, "traces") == 0 and _count(store, "spans") == 0
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"timestamp": 1, "input": "q"}])
    with pytest.raises(UserError, match="`output`: missing"):
        import_file(store, missing)
    (tmp_path / "junk.jsonl").write_text('{"timestamp": 1, "input": "q", "output": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(UserError) as err:
        import_file(store, tmp_path / "junk.jsonl")
    assert err.value.where.endswith("junk.jsonl:2")


def test_openai_log_format_records_response_format(store, tmp_path):
    line = {"request": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Be brief."},
                                                             {"role": "user", "content": "List 2 colors as JSON"}],
                        "response_format": {"type": "json_object"}, "user": "u-1"},
            "response": {"id": "chatcmpl-1", "created": 1790000000, "model": "gpt-4o-mini-2024-07-18",
                         "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"c\": [1, 2]}"}}],
                         "usage": {"prompt_tokens": 20, "completion_tokens": 8}}}
    import_file(store, write_jsonl(tmp_path / "o.jsonl", [line]), "openai-log")
    spans = store.table("spans")
    with store.connect() as conn:
        llm = conn.execute(select(spans).where(spans.c.kind == "llm")).mappings().one()
    assert llm["inputs"]["params"]["response_format"] == {"type": "json_object"}
    assert (llm["model"], llm["input_tokens"], llm["output_tokens"]) == ("gpt-4o-mini-2024-07-18", 20, 8)
    with pytest.raises(UserError, match="`response.choices`"):
        import_file(store, write_jsonl(tmp_path / "o2.jsonl", [{"request": {"messages": []}, "response": {}}]),
                    "openai-log")


def test_langfuse_format(store, tmp_path):
    line = {"id": "lf-1", "timestamp": "2026-10-02T10:00:00.000Z", "name": "qa-bot", "input": {"question": "hi"},
            "output": "hello", "sessionId": "sess", "userId": "user", "latency": 0.8, "totalCost": 0.002,
            "metadata": {"env": "prod"}, "tags": ["beta"],
            "observations": [{"type": "GENERATION", "model": "qwen-max", "usage": {"input": 5, "output": 2}}]}
    import_file(store, write_jsonl(tmp_path / "l.jsonl", [line]), "langfuse")
    traces = store.table("traces")
    with store.connect() as conn:
        row = conn.execute(select(traces)).mappings().one()
    assert (row["app"], row["model"], row["session_id"], row["user_id"]) == ("qa-bot", "qwen-max", "sess", "user")
    assert row["latency_ms"] == 800.0 and row["cost_usd"] == 0.002 and row["input_tokens"] == 5


def test_cli_import_and_bad_file_exit_2(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    path = write_jsonl(tmp_path / "a.jsonl", LINES)
    runner = CliRunner()
    ok = runner.invoke(main, ["--project", str(tmp_path), "traces", "import", str(path), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout[ok.stdout.index("{"):])["lines"] == 2
    again = runner.invoke(main, ["--project", str(tmp_path), "traces", "import", str(path)])
    assert again.exit_code == 0 and "0 trace(s)" in again.output and "2 already" in again.output
    bad = write_jsonl(tmp_path / "b.jsonl", [{"timestamp": 1, "input": 3, "output": "a"}])
    failed = runner.invoke(main, ["--project", str(tmp_path), "traces", "import", str(bad)])
    assert failed.exit_code == 2 and "b.jsonl:1" in failed.output and "`input`" in failed.output
