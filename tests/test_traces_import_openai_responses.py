"""`flywheel traces import --format openai-log` of logged OpenAI Responses API calls (`POST /v1/responses`:
`input` / `instructions` in, `output` items and `usage.input_tokens` out), not only chat completions."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.tracing import get_trace
from flywheel.tracing.importer import import_file

CALL = {
    "type": "function_call",
    "id": "fc_1",
    "call_id": "call_9",
    "name": "lookup_order",
    "arguments": '{"id": "A-7"}',
    "status": "completed",
}
LINE = {
    "request": {
        "model": "gpt-4.1-mini",
        "instructions": "用中文简短回答。",
        "temperature": 0.2,
        "max_output_tokens": 200,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "A-7 到哪了？"}]},
            CALL,
            {"type": "function_call_output", "call_id": "call_9", "output": '{"status": "shipped"}'},
        ],
    },
    "response": {
        "id": "resp_1",
        "object": "response",
        "created_at": 1790000000,
        "status": "completed",
        "model": "gpt-4.1-mini-2025-04-14",
        "error": None,
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "已发货，", "annotations": []},
                    {"type": "output_text", "text": "明天送达。", "annotations": []},
                ],
            },
        ],
        "usage": {
            "input_tokens": 42,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 51,
        },
    },
    "latency_ms": 850,
}


def _write(tmp_path, lines):
    path = tmp_path / "responses.jsonl"
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def test_a_responses_api_call_imports_with_its_messages_answer_and_tokens(store, tmp_path):
    assert import_file(store, _write(tmp_path, [LINE]), "openai-log").imported == 1
    with store.connect() as conn:
        (row,) = conn.execute(select(store.table("traces"))).mappings().all()
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("gpt-4.1-mini-2025-04-14", 42, 9)
    assert row["started_at"] == 1790000000.0 and row["latency_ms"] == 850.0
    assert row["input_preview"] == "A-7 到哪了？" and row["output_preview"] == "已发货，明天送达。"
    llm = get_trace(store, row["trace_id"])["spans"][0]["children"][0]
    messages = llm["inputs"]["messages"]
    assert messages[0] == {"role": "system", "content": "用中文简短回答。"}
    assert messages[1] == {"role": "user", "content": "A-7 到哪了？"}
    assert messages[2]["tool_calls"][0]["function"] == {"name": "lookup_order", "arguments": '{"id": "A-7"}'}
    assert messages[3] == {"role": "tool", "tool_call_id": "call_9", "content": '{"status": "shipped"}'}
    assert llm["inputs"]["params"] == {"temperature": 0.2, "max_tokens": 200}


def test_a_responses_tool_call_answer_and_a_failed_call(store, tmp_path):
    asked = {**LINE, "response": {**LINE["response"], "id": "resp_2", "output": [CALL]}}
    failed = {
        **LINE,
        "response": {
            **LINE["response"],
            "id": "resp_3",
            "status": "failed",
            "output": [],
            "usage": None,
            "error": {"code": "server_error", "message": "The server had an error"},
        },
    }
    import_file(store, _write(tmp_path, [asked, failed]), "openai-log")
    with store.connect() as conn:
        rows = {r["status"]: dict(r) for r in conn.execute(select(store.table("traces"))).mappings()}
    assert rows["error"]["error"] == "The server had an error"
    llm = get_trace(store, rows["ok"]["trace_id"])["spans"][0]["children"][0]
    assert llm["outputs"]["tool_calls"] == [
        {
            "id": "call_9",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"id": "A-7"}'},
        }
    ]


def test_a_responses_line_without_input_names_the_field(store, tmp_path):
    bad = {**LINE, "request": {"model": "gpt-4.1-mini"}}
    with pytest.raises(UserError) as err:
        import_file(store, _write(tmp_path, [bad]), "openai-log")
    assert "`request.input`" in err.value.message and err.value.where.endswith("responses.jsonl:1")
