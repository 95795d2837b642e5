"""`flywheel traces import --format langfuse` with traces as Langfuse really exports them: the public API's
`GET /api/public/traces/{id}` (a trace with its `observations`, each an ObservationsView), the UI's "download
trace" JSON (`{"trace": {...}, "observations": [...]}`, pretty-printed) and the API's list page
(`{"data": [...], "meta": {...}}`). Every observation must become its own span, under the right parent."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.tracing import get_trace
from flywheel.tracing.importer import import_file

T = "2026-10-02T10:00:"


def _observation(
    oid: str, kind: str, name: str, start: str, end: str | None, parent: str | None, **fields: Any
) -> dict[str, Any]:
    """An ObservationsView as the public API returns it (every field present, most null)."""
    base: dict[str, Any] = {
        "id": oid,
        "traceId": "lf-trace-1",
        "type": kind,
        "name": name,
        "startTime": T + start,
        "endTime": None if end is None else T + end,
        "completionStartTime": None,
        "model": None,
        "modelParameters": None,
        "input": None,
        "version": None,
        "metadata": {},
        "output": None,
        "usage": {"input": 0, "output": 0, "total": 0, "unit": "TOKENS"},
        "level": "DEFAULT",
        "statusMessage": None,
        "parentObservationId": parent,
        "promptId": None,
        "usageDetails": {},
        "costDetails": {},
        "environment": "default",
        "promptName": None,
        "promptVersion": None,
        "modelId": None,
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
        "calculatedInputCost": None,
        "calculatedOutputCost": None,
        "calculatedTotalCost": None,
        "latency": None,
        "timeToFirstToken": None,
    }
    base.update(fields)
    return base


# a RAG trace: a parent span holding a retrieval span and two generations (a query rewrite, then the answer)
RAG: dict[str, Any] = {
    "id": "lf-trace-1",
    "timestamp": T + "00.000Z",
    "name": "rag-qa",
    "input": {"question": "退货政策是什么？"},
    "output": "30 天内可以退货。",
    "sessionId": "sess-42",
    "release": "v3",
    "version": None,
    "userId": "user-7",
    "metadata": {"channel": "app"},
    "tags": ["rag", "prod"],
    "public": False,
    "environment": "default",
    "htmlPath": "/project/p1/traces/lf-trace-1",
    "latency": 2.5,
    "totalCost": 0.0033,
    "scores": [],
    "observations": [
        # (the API gives them in no particular order: the answer first, its parent last)
        _observation(
            "obs-answer",
            "GENERATION",
            "answer",
            "01.000Z",
            "02.400Z",
            "obs-pipeline",
            model="gpt-4o",
            modelParameters={"temperature": 0.2, "max_tokens": 512},
            completionStartTime=T + "01.300Z",
            input=[
                {"role": "system", "content": "只根据资料回答。"},
                {"role": "user", "content": "退货政策是什么？\n资料：[1] 30 天内可退。"},
            ],
            output={"role": "assistant", "content": "30 天内可以退货。"},
            usage={"input": 120, "output": 12, "total": 132, "unit": "TOKENS"},
            usageDetails={"input": 100, "input_cached_tokens": 20, "output": 12, "total": 132},
            costDetails={"input": 0.0025, "output": 0.0005, "total": 0.003},
            calculatedTotalCost=0.003,
            promptName="rag-answer",
            promptVersion=4,
        ),
        _observation(
            "obs-retrieve",
            "SPAN",
            "retrieve",
            "00.300Z",
            "00.900Z",
            "obs-pipeline",
            input={"query": "退货 政策"},
            output=[{"id": "doc-1", "text": "30 天内可退。"}],
        ),
        _observation(
            "obs-rewrite",
            "GENERATION",
            "rewrite-query",
            "00.050Z",
            "00.250Z",
            "obs-pipeline",
            model="gpt-4o-mini",
            input=[{"role": "user", "content": "改写查询：退货政策是什么？"}],
            output="退货 政策",
            usage={"input": 30, "output": 4, "total": 34, "unit": "TOKENS"},
            usageDetails={"input": 30, "output": 4, "total": 34},
            costDetails={"input": 0.0002, "output": 0.0001, "total": 0.0003},
            calculatedTotalCost=0.0003,
        ),
        _observation(
            "obs-pipeline",
            "SPAN",
            "rag-pipeline",
            "00.010Z",
            "02.500Z",
            None,
            input={"question": "退货政策是什么？"},
            output="30 天内可以退货。",
        ),
    ],
}


def _spans(store, trace_id: str) -> dict[str, dict[str, Any]]:
    spans = store.table("spans")
    with store.connect() as conn:
        rows = conn.execute(select(spans).where(spans.c.trace_id == trace_id)).mappings()
        return {r["name"]: dict(r) for r in rows}


def _trace(store) -> dict[str, Any]:
    with store.connect() as conn:
        (row,) = conn.execute(select(store.table("traces"))).mappings().all()
    return dict(row)


def _write(tmp_path, name: str, lines: list[dict[str, Any]]):
    path = tmp_path / name
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


def test_every_observation_is_its_own_span_under_its_parent(store, tmp_path):
    assert import_file(store, _write(tmp_path, "api.jsonl", [RAG]), "langfuse").imported == 1
    trace = _trace(store)
    spans = _spans(store, trace["trace_id"])
    assert set(spans) == {"rag-qa", "rag-pipeline", "retrieve", "rewrite-query", "answer"}
    root, pipeline = spans["rag-qa"], spans["rag-pipeline"]
    assert root["parent_id"] is None and pipeline["parent_id"] == root["span_id"]
    for child in ("retrieve", "rewrite-query", "answer"):
        assert spans[child]["parent_id"] == pipeline["span_id"], child
    assert (spans["answer"]["kind"], spans["rewrite-query"]["kind"]) == ("llm", "llm")
    assert spans["retrieve"]["kind"] == "other" and pipeline["kind"] == "other"
    answer, rewrite = spans["answer"], spans["rewrite-query"]
    assert (answer["model"], answer["input_tokens"], answer["output_tokens"]) == ("gpt-4o", 120, 12)
    assert answer["cost_usd"] == pytest.approx(0.003)
    assert (rewrite["model"], rewrite["input_tokens"], rewrite["output_tokens"]) == ("gpt-4o-mini", 30, 4)
    assert answer["inputs"]["messages"][0] == {"role": "system", "content": "只根据资料回答。"}
    assert answer["inputs"]["params"] == {"temperature": 0.2, "max_tokens": 512}
    assert answer["outputs"] == "30 天内可以退货。" and rewrite["outputs"] == "退货 政策"
    assert spans["retrieve"]["inputs"] == {"query": "退货 政策"}
    assert spans["retrieve"]["outputs"] == [{"id": "doc-1", "text": "30 天内可退。"}]
    assert answer["prompt_version"] == "4" and answer["attributes"]["flywheel.prompt.name"] == "rag-answer"
    # each span keeps its own times (ns), not the trace's
    assert answer["start_ns"] == 1_790_935_201_000_000_000 and answer["end_ns"] == 1_790_935_202_400_000_000
    assert rewrite["latency_ms"] == pytest.approx(200.0)
    # the trace: its ids, totals of the generations (not counted twice with the trace's totalCost)
    assert (trace["session_id"], trace["user_id"], trace["app"]) == ("sess-42", "user-7", "rag-qa")
    assert (trace["input_tokens"], trace["output_tokens"]) == (150, 16)
    assert trace["cost_usd"] == pytest.approx(0.0033) and trace["span_count"] == 5
    assert trace["model"] == "gpt-4o-mini"  # the first model call's
    assert trace["input_preview"] == "退货政策是什么？" and trace["output_preview"] == "30 天内可以退货。"
    assert trace["latency_ms"] == pytest.approx(2500.0) and trace["status"] == "ok"
    assert root["attributes"]["flywheel.metadata"] == {"channel": "app", "tags": ["rag", "prod"]}


def test_an_error_level_observation_is_an_error_span(store, tmp_path):
    failed = copy.deepcopy(RAG)
    rewrite = next(o for o in failed["observations"] if o["id"] == "obs-rewrite")
    rewrite.update(
        level="ERROR",
        statusMessage="Rate limit reached for gpt-4o-mini",
        output=None,
        usageDetails={},
        costDetails={},
        calculatedTotalCost=None,
        usage={"input": 0, "output": 0, "total": 0, "unit": "TOKENS"},
    )
    warned = next(o for o in failed["observations"] if o["id"] == "obs-retrieve")
    warned.update(level="WARNING", statusMessage="1 of 3 shards timed out")
    import_file(store, _write(tmp_path, "err.jsonl", [failed]), "langfuse")
    trace = _trace(store)
    spans = _spans(store, trace["trace_id"])
    assert spans["rewrite-query"]["error"] == "Rate limit reached for gpt-4o-mini"
    assert spans["rewrite-query"]["output_state"] == "missing"
    assert spans["retrieve"]["error"] is None
    assert spans["retrieve"]["attributes"]["langfuse.observation.level"] == "WARNING"
    assert spans["retrieve"]["attributes"]["langfuse.observation.status_message"] == "1 of 3 shards timed out"
    assert trace["error_count"] == 1 and trace["status"] == "ok"  # retried inside: the trace still answered
    # the failure reached the top: the trace failed
    top = copy.deepcopy(failed)
    top["id"] = "lf-trace-2"
    top["output"] = None
    pipeline = next(o for o in top["observations"] if o["id"] == "obs-pipeline")
    pipeline.update(level="ERROR", statusMessage="RateLimitError: retries exhausted", output=None)
    import_file(store, _write(tmp_path, "err2.jsonl", [top]), "langfuse")
    with store.connect() as conn:
        rows = (
            conn.execute(select(store.table("traces")).where(store.table("traces").c.name == "rag-qa"))
            .mappings()
            .all()
        )
    statuses = sorted((r["status"], r["error"]) for r in rows)
    assert statuses == [("error", "RateLimitError: retries exhausted"), ("ok", None)]


def test_the_uis_trace_download_imports_the_same_tree(store, tmp_path):
    ui = {"trace": {k: v for k, v in RAG.items() if k != "observations"}, "observations": RAG["observations"]}
    path = tmp_path / "trace-lf-trace-1.json"
    path.write_text(json.dumps(ui, ensure_ascii=False, indent=2), encoding="utf-8")  # as the UI writes it
    assert import_file(store, path, "langfuse").imported == 1
    trace = _trace(store)
    spans = _spans(store, trace["trace_id"])
    assert len(spans) == 5 and spans["answer"]["parent_id"] == spans["rag-pipeline"]["span_id"]
    assert (trace["input_tokens"], trace["session_id"]) == (150, "sess-42")
    again = import_file(store, path, "langfuse")
    assert (again.imported, again.already) == (0, 1)


def test_json_encoded_inputs_and_v3_observation_types(store, tmp_path):
    """Observations ingested from the v3 SDK (OpenTelemetry): AGENT / TOOL / RETRIEVER / EMBEDDING types,
    input and output as JSON text, an OpenAI tool-call answer."""
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": '{"id": "A-7"}'},
    }
    trace = {
        "id": "lf-v3",
        "timestamp": T + "00.000Z",
        "name": "agent",
        "input": None,
        "output": None,
        "sessionId": None,
        "userId": None,
        "metadata": {},
        "tags": [],
        "latency": 1.0,
        "totalCost": None,
        "observations": [
            _observation(
                "a",
                "AGENT",
                "support-agent",
                "00.000Z",
                "01.000Z",
                None,
                input=json.dumps({"question": "A-7 在哪？"}, ensure_ascii=False),
                output='"已发货。"',
            ),
            _observation(
                "g",
                "GENERATION",
                "chat",
                "00.100Z",
                "00.400Z",
                "a",
                model="qwen-max",
                input=json.dumps([{"role": "user", "content": "A-7 在哪？"}], ensure_ascii=False),
                output=json.dumps({"role": "assistant", "content": None, "tool_calls": [call]}),
                usageDetails={"input": 50, "output": 9, "total": 59},
            ),
            _observation(
                "t",
                "TOOL",
                "lookup_order",
                "00.450Z",
                "00.500Z",
                "a",
                input='{"id": "A-7"}',
                output='{"status": "shipped"}',
                metadata="from the v2 SDK: any JSON",
            ),
            _observation("r", "RETRIEVER", "kb", "00.510Z", "00.600Z", "a", input="A-7"),
            _observation(
                "e",
                "EMBEDDING",
                "embed",
                "00.520Z",
                "00.530Z",
                "r",
                model="text-embedding-3-small",
                usageDetails={"input": 3, "total": 3},
            ),
        ],
    }
    import_file(store, _write(tmp_path, "v3.jsonl", [trace]), "langfuse")
    row = _trace(store)
    spans = _spans(store, row["trace_id"])
    kinds = {name: s["kind"] for name, s in spans.items()}
    assert kinds == {
        "agent": "app",
        "support-agent": "other",
        "chat": "llm",
        "lookup_order": "tool",
        "kb": "retrieval",
        "embed": "embedding",
    }
    assert spans["chat"]["inputs"]["messages"] == [{"role": "user", "content": "A-7 在哪？"}]
    assert spans["chat"]["outputs"] == {"content": "", "tool_calls": [call]}
    assert spans["lookup_order"]["attributes"]["flywheel.metadata"] == {"value": "from the v2 SDK: any JSON"}
    assert spans["lookup_order"]["inputs"] == {"id": "A-7"} and spans["lookup_order"]["outputs"] == {
        "status": "shipped"
    }
    assert spans["embed"]["parent_id"] == spans["kb"]["span_id"] and spans["embed"]["input_tokens"] == 3
    # no trace input/output: the question and answer are the top observation's
    assert row["input_preview"] == "A-7 在哪？" and row["output_preview"] == "已发货。"
    assert (row["input_tokens"], row["output_tokens"]) == (53, 9)


def test_an_api_list_page_imports_each_trace(store, tmp_path):
    """`GET /api/public/traces` saved as is: `{"data": [...], "meta": {...}}`, observations as ids only."""
    listed = [
        {
            **{k: v for k, v in RAG.items() if k != "observations"},
            "id": f"lf-{i}",
            "observations": ["obs-answer", "obs-retrieve"],
        }
        for i in range(3)
    ]
    path = tmp_path / "traces.json"
    path.write_text(
        json.dumps({"data": listed, "meta": {"page": 1, "limit": 50, "totalItems": 3, "totalPages": 1}}),
        encoding="utf-8",
    )
    assert import_file(store, path, "langfuse").imported == 3
    with store.connect() as conn:
        rows = conn.execute(select(store.table("traces"))).mappings().all()
    assert {r["session_id"] for r in rows} == {"sess-42"} and {r["cost_usd"] for r in rows} == {0.0033}
    with pytest.raises(UserError) as err:  # the page given as the default format: named, not half read
        import_file(store, path)
    assert "--format langfuse" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"startTime": "soon"}, "observations.0.startTime"),
        ({"usageDetails": {"input": -3}}, "observations.0.usageDetails.input"),
        ({"parentObservationId": 7}, "observations.0.parentObservationId"),
    ],
)
def test_a_bad_observation_names_its_field(store, tmp_path, change, field):
    bad = copy.deepcopy(RAG)
    bad["observations"][0].update(change)
    with pytest.raises(UserError) as err:
        import_file(store, _write(tmp_path, "bad.jsonl", [RAG, bad]), "langfuse")
    assert err.value.where.endswith("bad.jsonl:2") and f"`{field}`" in err.value.message
    with store.connect() as conn:
        assert conn.execute(select(store.table("spans"))).first() is None


def test_get_trace_shows_the_tree(store, tmp_path):
    import_file(store, _write(tmp_path, "api.jsonl", [RAG]), "langfuse")
    tree = get_trace(store, _trace(store)["trace_id"])
    (root,) = tree["spans"]
    (pipeline,) = root["children"]
    assert [c["name"] for c in pipeline["children"]] == ["rewrite-query", "retrieve", "answer"]


def test_the_same_trace_in_two_exports_is_imported_once(store, tmp_path):
    """A daily API dump and a UI download overlap; a later export of a trace that gained a score since is
    still the same trace."""
    import_file(store, _write(tmp_path, "day1.jsonl", [RAG]), "langfuse")
    ui = {"trace": {k: v for k, v in RAG.items() if k != "observations"}, "observations": RAG["observations"]}
    (tmp_path / "ui.json").write_text(json.dumps(ui, indent=2), encoding="utf-8")
    scored = {**RAG, "scores": [{"name": "helpful", "value": 1}]}
    result = import_file(store, _write(tmp_path, "day2.jsonl", [scored]), "langfuse")
    assert (result.imported, result.already) == (0, 1)
    assert import_file(store, tmp_path / "ui.json", "langfuse").already == 1


def test_repeated_ids_and_parent_loops_still_make_one_tree(store, tmp_path):
    odd = copy.deepcopy(RAG)
    retrieve = next(o for o in odd["observations"] if o["id"] == "obs-retrieve")
    odd["observations"].append({**retrieve, "output": [{"id": "doc-2", "text": "更新后的资料"}]})  # an update
    odd["observations"].append(_observation("x", "SPAN", "loop-a", "00.000Z", "00.001Z", "y"))
    odd["observations"].append(_observation("y", "SPAN", "loop-b", "00.000Z", "00.001Z", "x"))
    odd["observations"].append(_observation("z", "EVENT", "orphan", "00.002Z", None, "not-exported"))
    import_file(store, _write(tmp_path, "odd.jsonl", [odd]), "langfuse")
    spans = _spans(store, _trace(store)["trace_id"])
    root = spans["rag-qa"]["span_id"]
    assert spans["retrieve"]["outputs"] == [{"id": "doc-2", "text": "更新后的资料"}]
    # a loop (x under y, y under x) is broken once: its first step hangs from the root, the other stays under it
    assert spans["loop-a"]["parent_id"] == root and spans["loop-b"]["parent_id"] == spans["loop-a"]["span_id"]
    assert spans["orphan"]["parent_id"] == root and spans["orphan"]["end_ns"] == spans["orphan"]["start_ns"]
    assert len(spans) == 8


def test_a_list_of_observations_is_told_apart_from_traces(store, tmp_path):
    """`GET /api/public/observations` saved as is: observations, not traces; said so, not `timestamp` missing."""
    path = tmp_path / "observations.json"
    path.write_text(json.dumps({"data": RAG["observations"], "meta": {"page": 1}}), encoding="utf-8")
    with pytest.raises(UserError, match="observation, not a trace"):
        import_file(store, path, "langfuse")
