"""`flywheel traces import --format otlp`: spans exported by OpenLLMetry (current and pre-GenAI-conventions
releases) as OTLP/JSON files, one ExportTraceServiceRequest per line as the OpenTelemetry Collector's `file`
exporter writes them, land as the OTLP receiver would store them: same ids, structure, content, tokens, secrets
masked; a trace split over two export batches is one trace; a second import adds nothing."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

import flywheel.cli.traces_import  # noqa: F401 - registers `traces import`
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.tracing import get_trace
from flywheel.tracing.importer import import_file

DATA = Path(__file__).parent / "data" / "otlp_sdks"


def _payload(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _split(payload: dict) -> list[dict]:
    """The payload as two export batches: the first half of its spans, then the rest (a trace's spans in both)."""
    total = sum(len(ss["spans"]) for rs in payload["resourceSpans"] for ss in rs["scopeSpans"])
    batches = [copy.deepcopy(payload), copy.deepcopy(payload)]
    seen = 0
    for a, b in zip(batches[0]["resourceSpans"], batches[1]["resourceSpans"], strict=True):
        for sa, sb in zip(a["scopeSpans"], b["scopeSpans"], strict=True):
            keep = [seen + i < total // 2 for i in range(len(sa["spans"]))]
            seen += len(keep)
            sa["spans"] = [x for x, k in zip(sa["spans"], keep, strict=True) if k]
            sb["spans"] = [x for x, k in zip(sb["spans"], keep, strict=True) if not k]
    return batches


def _jsonl(path: Path, values: list[dict]) -> Path:
    path.write_text("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values), encoding="utf-8")
    return path


def _traces(store) -> list[dict]:
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(select(store.table("traces"))).mappings()]


def _count(store, table: str) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(store.table(table))).scalar() or 0)


def test_openllmetry_spans_split_over_batches_are_one_trace(store, tmp_path):
    path = _jsonl(tmp_path / "spans.jsonl", _split(_payload("openllmetry_traceloop_sdk")))
    result = import_file(store, path, "otlp")
    assert (result.lines, result.imported, result.already) == (2, 1, 0)
    (row,) = _traces(store)
    assert (row["session_id"], row["user_id"], row["span_count"]) == ("s-7", "u-42", 5)
    assert row["error_count"] == 1 and row["input_tokens"] > 0
    tree = get_trace(store, row["trace_id"])
    (workflow,) = tree["spans"]
    (task,) = workflow["children"]
    assert workflow["name"] == "handle_question.workflow" and task["name"] == "answer.task"
    chats = task["children"]
    assert [c["kind"] for c in chats] == ["llm"] * 3
    assert chats[1]["outputs"][0]["content"] == "巴黎。"
    again = import_file(store, path, "otlp")
    assert (again.imported, again.already) == (0, 1) and _count(store, "spans") == 5


def test_legacy_openllmetry_names_and_secrets(store, tmp_path):
    path = _jsonl(tmp_path / "legacy.jsonl", [_payload("openllmetry_legacy_0_40")])
    import_file(store, path, "otlp")
    rows = _traces(store)
    tree = json.dumps([get_trace(store, r["trace_id"]) for r in rows], ensure_ascii=False)
    assert "sk-proj-SECRETSECRETSECRET123456" not in tree and "[REDACTED]" in tree
    assert "法国的首都是哪里？" in tree
    spans = store.table("spans")
    with store.connect() as conn:
        zh = conn.execute(select(spans).where(spans.c.input_tokens == 9)).mappings().one()
    assert (zh["kind"], zh["output_tokens"]) == ("llm", 3)


def test_the_root_arriving_in_a_later_file_completes_the_trace(store, tmp_path):
    early, late = _split(_payload("openllmetry_traceloop_sdk"))
    with_root, without = (early, late) if _has_root(early) else (late, early)
    import_file(store, _jsonl(tmp_path / "a.jsonl", [without]), "otlp")
    assert _traces(store) == []  # (no root yet: incomplete, as when the receiver gets it)
    result = import_file(store, _jsonl(tmp_path / "b.jsonl", [with_root]), "otlp")
    assert result.imported == 1
    (row,) = _traces(store)
    assert row["span_count"] == 5 and row["error_count"] == 1


def _has_root(payload: dict) -> bool:
    return any(
        not s.get("parentSpanId")
        for rs in payload["resourceSpans"]
        for ss in rs["scopeSpans"]
        for s in ss["spans"]
    )


def test_a_bad_span_names_its_line_and_path_and_writes_nothing(store, tmp_path):
    bad = _payload("openllmetry_legacy_0_40")
    bad["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "yesterday"
    path = _jsonl(tmp_path / "bad.jsonl", [_payload("openllmetry_traceloop_sdk"), bad])
    with pytest.raises(UserError) as err:
        import_file(store, path, "otlp")
    assert err.value.where.endswith("bad.jsonl:2")
    assert "`resourceSpans.0.scopeSpans.0.spans.0.startTimeUnixNano`" in err.value.message
    assert _count(store, "spans") == 0 and _count(store, "traces") == 0
    with pytest.raises(UserError, match="resourceSpans"):
        import_file(
            store, _jsonl(tmp_path / "other.jsonl", [{"timestamp": 1, "input": "q", "output": "a"}]), "otlp"
        )


def test_an_otlp_file_given_as_another_format_names_otlp(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    path = _jsonl(tmp_path / "spans.jsonl", [_payload("openllmetry_legacy_0_40")])
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "traces", "import", str(path)])
    assert result.exit_code == 2 and "--format otlp" in result.output
    ok = CliRunner().invoke(
        main, ["--project", str(tmp_path), "traces", "import", str(path), "--format", "otlp"]
    )
    assert ok.exit_code == 0 and "imported 3 trace(s) from 1 line(s)" in ok.output  # (one per call)


def _snake(value):
    """OTLP/JSON written with the proto field names, as Phoenix downloads it (`resource_spans`, `string_value`)."""
    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def test_phoenix_otlp_downloads_with_proto_field_names(store, tmp_path):
    payload = _payload("openllmetry_traceloop_sdk")
    download = _snake(payload)  # the UI's "OTLP JSON" download of a trace
    assert "resource_spans" in download and "start_time_unix_nano" in json.dumps(download)
    result = import_file(store, _jsonl(tmp_path / "trace-otlp.json", [download]), "otlp")
    assert result.imported == 1
    (row,) = _traces(store)
    assert (row["span_count"], row["session_id"]) == (5, "s-7")
    # `GET /v1/projects/{id}/spans/otlpv1` saved as is: a page of bare spans
    spans = [s for rs in download["resource_spans"] for ss in rs["scope_spans"] for s in ss["spans"]]
    page = _jsonl(tmp_path / "page.json", [{"data": spans, "next_cursor": None}])
    assert import_file(store, page, "otlp").already == 1


@pytest.mark.parametrize("mode", ["openai_v2_events", "openai_v2_event_only"])
def test_content_sent_as_log_records_completes_its_spans(store, tmp_path, mode):
    """opentelemetry-instrumentation-openai-v2 puts prompts and answers in log records, not on the spans: with
    the Collector writing both signals to one file, or the logs file imported after the traces file."""
    traces, logs = _payload(f"{mode}_traces"), _payload(f"{mode}_logs")
    import_file(store, _jsonl(tmp_path / "both.jsonl", [logs, traces]), "otlp")  # (logs first: either order)
    (row,) = _traces(store)
    first = _model_answers(store, row["trace_id"])
    assert first[:2] == ["Paris.", "巴黎。"]
    assert "sk-proj-SECRETSECRETSECRET123456" not in json.dumps(get_trace(store, row["trace_id"]))

    other = tmp_path / "other"
    other.mkdir()
    from flywheel.store import Store

    separate = Store.open(f"sqlite:///{other / 'f.db'}")
    try:
        import_file(separate, _jsonl(other / "traces.jsonl", [traces]), "otlp")
        (before,) = _traces(separate)
        assert _model_answers(separate, before["trace_id"])[:2] == [None, None]
        assert import_file(separate, _jsonl(other / "logs.jsonl", [logs]), "otlp").imported == 1
        assert _model_answers(separate, before["trace_id"]) == first
        assert _traces(separate)[0]["output_preview"] == row["output_preview"]
    finally:
        separate.close()


def _model_answers(store, trace_id: str) -> list:
    spans = store.table("spans")
    with store.connect() as conn:
        rows = conn.execute(
            select(spans)
            .where(spans.c.trace_id == trace_id, spans.c.kind == "llm")
            .order_by(spans.c.start_ns)
        ).mappings()
        return [(r["outputs"] or [{}])[0].get("content") for r in rows]


def test_a_combined_file_after_the_traces_alone_still_brings_the_content(store, tmp_path):
    traces, logs = _payload("openai_v2_events_traces"), _payload("openai_v2_events_logs")
    import_file(store, _jsonl(tmp_path / "traces.jsonl", [traces]), "otlp")
    (row,) = _traces(store)
    assert _model_answers(store, row["trace_id"])[:2] == [None, None]
    import_file(store, _jsonl(tmp_path / "both.jsonl", [traces, logs]), "otlp")
    assert _model_answers(store, row["trace_id"])[:2] == ["Paris.", "巴黎。"]
