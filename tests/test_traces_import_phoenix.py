"""`flywheel traces import --format phoenix`: spans as Arize Phoenix gives them (its REST API's span JSON with
OpenInference attributes, nested or flat; a `get_spans_dataframe()` saved with `to_json(orient="records",
lines=True)`), landing with their tree, kinds, model, tokens, content and errors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.tracing.importer import import_file

TRACE = "6f1c3a7e2b9d4c5e8a0f1b2c3d4e5f60"
CHAIN = {
    "id": "U3Bhbjox",
    "name": "RAG",
    "context": {"trace_id": TRACE, "span_id": "a1b2c3d4e5f60718"},
    "span_kind": "CHAIN",
    "parent_id": None,
    "start_time": "2026-10-02T10:00:00.000000+00:00",
    "end_time": "2026-10-02T10:00:02.000000+00:00",
    "status_code": "OK",
    "status_message": "",
    "attributes": {
        "input": {"value": "退货政策是什么？"},
        "output": {"value": "30 天内可以退货。"},
        "session": {"id": "sess-9"},
        "user": {"id": "u-3"},
        "openinference": {"span": {"kind": "CHAIN"}},
    },
    "events": [],
}
RETRIEVER = {
    "id": "U3Bhbjoy",
    "name": "retrieve",
    "context": {"trace_id": TRACE, "span_id": "b1b2c3d4e5f60718"},
    "span_kind": "RETRIEVER",
    "parent_id": "a1b2c3d4e5f60718",
    "start_time": "2026-10-02T10:00:00.100000+00:00",
    "end_time": "2026-10-02T10:00:00.400000+00:00",
    "status_code": "OK",
    "status_message": "",
    "attributes": {
        "input.value": "退货政策",
        "retrieval.documents.0.document.content": "30 天内可退。",
        "retrieval.documents.0.document.score": 0.92,
    },
    "events": [],
}
LLM = {
    "id": "U3Bhbjoz",
    "name": "ChatOpenAI",
    "context": {"trace_id": TRACE, "span_id": "c1b2c3d4e5f60718"},
    "span_kind": "LLM",
    "parent_id": "a1b2c3d4e5f60718",
    "start_time": "2026-10-02T10:00:00.500000+00:00",
    "end_time": "2026-10-02T10:00:01.900000+00:00",
    "status_code": "OK",
    "status_message": "",
    "attributes": {
        "llm": {
            "model_name": "gpt-4o-mini",
            "provider": "openai",
            "token_count": {"prompt": 120, "completion": 12, "total": 132},
            "input_messages": [
                {"message": {"role": "system", "content": "只根据资料回答。"}},
                {"message": {"role": "user", "content": "退货政策是什么？"}},
            ],
            "output_messages": [{"message": {"role": "assistant", "content": "30 天内可以退货。"}}],
        }
    },
    "events": [],
}


def _write(path, values):
    path.write_text("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values), encoding="utf-8")
    return path


def _spans(store) -> dict[str, dict]:
    with store.connect() as conn:
        return {r["name"]: dict(r) for r in conn.execute(select(store.table("spans"))).mappings()}


def test_phoenix_rest_spans_land_as_a_tree_with_model_tokens_and_content(store, tmp_path):
    page = {"data": [LLM, RETRIEVER, CHAIN], "next_cursor": None}
    result = import_file(store, _write(tmp_path / "spans.json", [page]), "phoenix")
    assert (result.imported, result.already) == (1, 0)
    spans = _spans(store)
    assert spans["retrieve"]["parent_id"] == spans["RAG"]["span_id"] == spans["ChatOpenAI"]["parent_id"]
    assert [spans[n]["kind"] for n in ("RAG", "retrieve", "ChatOpenAI")] == ["other", "retrieval", "llm"]
    llm = spans["ChatOpenAI"]
    assert (llm["model"], llm["input_tokens"], llm["output_tokens"]) == ("gpt-4o-mini", 120, 12)
    assert llm["inputs"]["messages"][0] == {"role": "system", "content": "只根据资料回答。"}
    assert llm["outputs"][0]["content"] == "30 天内可以退货。"
    assert llm["latency_ms"] == pytest.approx(1400.0)
    with store.connect() as conn:
        (row,) = conn.execute(select(store.table("traces"))).mappings().all()
    assert (row["trace_id"], row["session_id"], row["user_id"]) == (TRACE, "sess-9", "u-3")
    assert row["input_preview"] == "退货政策是什么？" and (row["input_tokens"], row["output_tokens"]) == (
        120,
        12,
    )
    assert import_file(store, tmp_path / "spans.json", "phoenix").already == 1


def test_a_dataframe_saved_as_json_lines_and_a_failed_call(store, tmp_path):
    """`px.Client().get_spans_dataframe().to_json(orient="records", lines=True)`: flat columns, epoch ms."""
    rows = []
    for span in (CHAIN, LLM):
        row = {k: v for k, v in span.items() if k not in ("context", "attributes", "start_time", "end_time")}
        row["context.trace_id"], row["context.span_id"] = (
            span["context"]["trace_id"],
            span["context"]["span_id"],
        )
        row["start_time"] = 1_790_935_200_000 if span is CHAIN else 1_790_935_200_500
        row["end_time"] = 1_790_935_202_000 if span is CHAIN else 1_790_935_201_900
        for key, value in span["attributes"].items():
            row[f"attributes.{key}"] = value
        rows.append(row)
    rows[1].update(
        status_code="ERROR",
        status_message="RateLimitError: 429",
        events=[
            {
                "name": "exception",
                "timestamp": "2026-10-02T10:00:01.900000+00:00",
                "attributes": {
                    "exception.type": "openai.RateLimitError",
                    "exception.message": "Rate limit reached",
                },
            }
        ],
    )
    rows[1]["attributes.llm"] = {**LLM["attributes"]["llm"], "output_messages": None}
    import_file(store, _write(tmp_path / "df.jsonl", rows), "phoenix")
    spans = _spans(store)
    assert (
        spans["ChatOpenAI"]["error"] == "RateLimitError: 429"
        and spans["ChatOpenAI"]["model"] == "gpt-4o-mini"
    )
    assert spans["ChatOpenAI"]["start_ns"] == 1_790_935_200_500_000_000
    assert spans["RAG"]["outputs"] == "30 天内可以退货。"


def test_a_bad_phoenix_time_and_a_phoenix_file_given_as_flywheel(store, tmp_path):
    bad = {**LLM, "start_time": "soon"}
    with pytest.raises(UserError) as err:
        import_file(store, _write(tmp_path / "bad.jsonl", [CHAIN, bad]), "phoenix")
    assert err.value.where.endswith("bad.jsonl:2") and "`start_time`" in err.value.message
    with pytest.raises(UserError) as err:
        import_file(store, _write(tmp_path / "p.jsonl", [CHAIN]))
    assert "--format phoenix" in (err.value.hint or "")
