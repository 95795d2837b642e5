"""Prompt and answer text that older OpenLIT releases (1.x, before the GenAI message attributes) put on span
events `gen_ai.content.prompt` / `gen_ai.content.completion` as plain text (`gen_ai.prompt: "user: …"`), read
from an OTLP/JSON file: kept as the span's input and answer, not dropped because it is not a JSON message list."""

from __future__ import annotations

import json

from sqlalchemy import select

from flywheel.tracing import genai_content
from flywheel.tracing.importer import import_file


def _kv(key: str, value: object) -> dict:
    kind = "intValue" if isinstance(value, int) else "stringValue"
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b174",
    "name": "openai.chat.completions",
    "kind": 3,
    "startTimeUnixNano": "1790000000000000000",
    "endTimeUnixNano": "1790000000800000000",
    "attributes": [
        _kv("gen_ai.system", "openai"),
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.request.model", "gpt-4o-mini"),
        _kv("gen_ai.usage.input_tokens", 12),
        _kv("gen_ai.usage.output_tokens", 6),
    ],
    "events": [
        {
            "name": "gen_ai.content.prompt",
            "timeUnixNano": "1790000000000000000",
            "attributes": [_kv("gen_ai.prompt", "user: 退货政策是什么？")],
        },
        {
            "name": "gen_ai.content.completion",
            "timeUnixNano": "1790000000800000000",
            "attributes": [_kv("gen_ai.completion", "30 天内可以退货。")],
        },
    ],
    "status": {},
}


def test_plain_text_content_events_are_the_spans_input_and_answer(store, tmp_path):
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": [_kv("service.name", "shop")]},
                "scopeSpans": [{"scope": {"name": "openlit.otel.tracing"}, "spans": [SPAN]}],
            }
        ]
    }
    path = tmp_path / "openlit.jsonl"
    path.write_text(json.dumps(request, ensure_ascii=False) + "\n", encoding="utf-8")
    assert import_file(store, path, "otlp").imported == 1
    with store.connect() as conn:
        span = conn.execute(select(store.table("spans"))).mappings().one()
        trace = conn.execute(select(store.table("traces"))).mappings().one()
    assert span["inputs"] == {"messages": [{"role": "user", "content": "user: 退货政策是什么？"}]}
    assert span["outputs"] == [{"role": "assistant", "content": "30 天内可以退货。"}]
    assert trace["output_preview"] == "30 天内可以退货。"


def test_json_message_lists_in_the_events_still_read_as_messages():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    inputs, outputs = genai_content.from_events(
        [
            ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps(msgs)}, None),
            (
                "gen_ai.content.completion",
                {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "hello"}])},
                None,
            ),
        ]
    )
    assert inputs == msgs and outputs == [{"role": "assistant", "content": "hello"}]
