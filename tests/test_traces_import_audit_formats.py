"""`flywheel traces import` with the files users really have: a byte-order mark, a JSON array (Langfuse's UI
export), a file given with the wrong --format, times in ms/µs/ns, numbers the store cannot hold, a model call
that asked for tools, and a Langfuse agent trace with several generations."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from monitor_support import write_jsonl
from sqlalchemy import func, select

import flywheel.cli.traces_import  # noqa: F401 - registers `traces import`
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.tracing import get_trace
from flywheel.tracing.importer import import_file

LINE = {"timestamp": "2026-10-01T08:00:00Z", "app": "support", "model": "gpt-4o", "input": "退货政策？",
        "output": "30 天内可退。", "usage": {"input_tokens": 7, "output_tokens": 5}}
LANGFUSE = {"id": "lf-9", "timestamp": "2026-10-02T10:00:00.000Z", "name": "agent", "input": {"question": "天气如何？"},
            "output": {"answer": "晴。"}, "sessionId": "s", "userId": "u",
            "observations": [
                {"type": "SPAN", "name": "retrieve"},
                {"type": "GENERATION", "model": "qwen-max", "usageDetails": {"input": 40, "output": 6},
                 "calculatedTotalCost": 0.001},
                {"type": "GENERATION", "model": "qwen-max", "usage": {"promptTokens": 60, "completionTokens": 9},
                 "calculatedTotalCost": 0.002}]}


def _rows(store) -> list[dict]:
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(select(store.table("traces"))).mappings()]


def _spans(store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(store.table("spans"))).scalar() or 0)


def test_a_byte_order_mark_is_not_data(store, tmp_path):
    path = tmp_path / "excel.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(LINE, ensure_ascii=False) + "\n").encode())
    assert import_file(store, path).imported == 1
    assert _rows(store)[0]["input_preview"] == "退货政策？"


def test_a_json_array_file_imports_and_reimports_as_nothing(store, tmp_path):
    path = tmp_path / "langfuse_export.json"
    path.write_text(json.dumps([LANGFUSE, {**LANGFUSE, "id": "lf-10"}], ensure_ascii=False, indent=2),
                    encoding="utf-8")
    assert import_file(store, path, "langfuse").imported == 2
    again = import_file(store, path, "langfuse")
    assert (again.imported, again.already) == (0, 2)


def test_a_bad_element_of_a_json_array_names_its_line(store, tmp_path):
    path = tmp_path / "export.json"
    bad = {**LANGFUSE, "timestamp": "someday"}
    path.write_text(json.dumps([LANGFUSE, bad], indent=2), encoding="utf-8")
    starts = [n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text == "  {"]
    start = starts[1]  # the second element's first line
    with pytest.raises(UserError) as err:
        import_file(store, path, "langfuse")
    assert err.value.where == f"{path}:{start}" and "`timestamp`" in err.value.message
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps([LANGFUSE, LANGFUSE], indent=2)[:-40], encoding="utf-8")
    with pytest.raises(UserError, match="not valid") as err:
        import_file(store, truncated, "langfuse")
    assert err.value.where.startswith(f"{truncated}:")
    assert _rows(store) == [] and _spans(store) == 0


@pytest.mark.parametrize(("line", "given", "actual"), [
    (LANGFUSE, "flywheel", "langfuse"),
    ({k: v for k, v in LANGFUSE.items() if k != "observations"}, "flywheel", "langfuse"),
    ({"request": {"messages": []}, "response": {"choices": []}, "timestamp": 1}, "langfuse", "openai-log"),
])
def test_a_file_in_another_format_is_named_not_half_read(store, tmp_path, line, given, actual):
    path = write_jsonl(tmp_path / "x.jsonl", [LINE, line] if given == "flywheel" else [line])
    with pytest.raises(UserError) as err:
        import_file(store, path, given)
    assert f"--format {actual}" in (err.value.hint or "")
    assert _rows(store) == []


def test_a_javascript_apps_camel_case_field_is_not_taken_for_langfuse(store, tmp_path):
    path = write_jsonl(tmp_path / "app.jsonl", [{**LINE, "userId": "u-1", "requestId": "r-1"}])
    assert import_file(store, path).imported == 1


def test_epoch_times_in_any_unit_land_on_the_same_instant(store, tmp_path):
    seconds = 1790841600
    lines = [{**LINE, "timestamp": seconds * unit, "app": f"u{unit}"} for unit in (1, 10**3, 10**6, 10**9)]
    import_file(store, write_jsonl(tmp_path / "t.jsonl", lines))
    assert {r["started_at"] for r in _rows(store)} == {float(seconds)}


@pytest.mark.parametrize(("field", "value"), [
    ("timestamp", 1e30), ("timestamp", "9999-01-01T00:00:00Z"), ("latency_ms", 1e300),
    ("usage", {"input_tokens": 10**30}),
])
def test_numbers_the_store_cannot_hold_are_a_line_error(tmp_path, field, value):
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    path = write_jsonl(tmp_path / "big.jsonl", [LINE, {**LINE, field: value}])
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "traces", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert "big.jsonl:2" in result.output and f"`{field}" in result.output


def test_openai_log_tool_calls_are_the_answer(store, tmp_path):
    call = {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"id": "A-7"}'}}
    line = {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "where is A-7?"}]},
            "response": {"created": 1790000000, "model": "gpt-4o",
                         "choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]},
                                      "finish_reason": "tool_calls"}],
                         "usage": {"prompt_tokens": 9, "completion_tokens": 4}}}
    import_file(store, write_jsonl(tmp_path / "o.jsonl", [line]), "openai-log")
    (row,) = _rows(store)
    llm = get_trace(store, row["trace_id"])["spans"][0]["children"][0]
    assert llm["output_state"] == "ok" and llm["outputs"]["tool_calls"] == [call]


def test_langfuse_agent_trace_sums_its_generations(store, tmp_path):
    import_file(store, write_jsonl(tmp_path / "l.jsonl", [LANGFUSE]), "langfuse")
    (row,) = _rows(store)
    assert (row["input_tokens"], row["output_tokens"]) == (100, 15)
    assert row["cost_usd"] == pytest.approx(0.003)  # no trace totalCost: the generations' costs
    assert row["input_preview"] == "天气如何？" and row["output_preview"] == "晴。"


def test_an_api_error_object_is_the_traces_error(store, tmp_path):
    error = {"message": "Rate limit reached for gpt-4o", "type": "rate_limit_error", "code": "rate_limit_exceeded"}
    import_file(store, write_jsonl(tmp_path / "e.jsonl", [{**LINE, "output": None, "error": error}]))
    (row,) = _rows(store)
    assert row["status"] == "error" and row["error"] == "Rate limit reached for gpt-4o"


def test_a_gzipped_log_imports_and_a_truncated_one_is_a_clear_error(store, tmp_path):
    import gzip

    data = gzip.compress((json.dumps(LINE, ensure_ascii=False) + "\n").encode())
    (tmp_path / "day.jsonl.gz").write_bytes(data)
    assert import_file(store, tmp_path / "day.jsonl.gz").imported == 1
    (tmp_path / "cut.jsonl.gz").write_bytes(data[:-8])
    with pytest.raises(UserError, match="cannot read"):
        import_file(store, tmp_path / "cut.jsonl.gz")
