"""OTLP/JSON written with the proto field names (`resource_spans`, `scope_spans`, `trace_id`, `string_value`),
as `MessageToJson(preserving_proto_field_name=True)` and Phoenix write it, is read by the live receiver like
OTLP's lowerCamelCase (it used to answer 200 and keep no span); the decoding is the tracing layer's, so a file
import of OTLP runs without the `server` extra."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flywheel.tracing import get_trace, tracer

DATA = Path(__file__).parent / "data" / "otlp_sdks"


def _payload(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _proto_names(payload: dict, signal: str) -> dict:
    """`payload` as the protobuf library writes it with the proto field names."""
    pytest.importorskip("opentelemetry.proto")
    from google.protobuf.json_format import MessageToJson, ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    msg = ExportTraceServiceRequest() if signal == "trace" else ExportLogsServiceRequest()
    return json.loads(MessageToJson(ParseDict(payload, msg), preserving_proto_field_name=True))


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


def _stored(live, trace_id: str, done=lambda trace: trace["status"] != "incomplete"):
    for _ in range(100):
        tracer.flush()
        trace = get_trace(live.state.store, trace_id)
        if trace is not None and done(trace):
            return trace
    return get_trace(live.state.store, trace_id)


def _walk(spans: list[dict]) -> list[dict]:
    return [s for span in spans for s in (span, *_walk(span.get("children") or []))]


def test_trace_export_with_proto_field_names_is_stored(live):
    payload = _payload("openllmetry_traceloop_sdk")
    body = _proto_names(payload, "trace")
    assert "resource_spans" in body and '"trace_id"' in json.dumps(body) and "resourceSpans" not in body
    resp = httpx.post(live.url + "/v1/traces", json=body)
    assert resp.status_code == 200
    first = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    count = sum(len(ss["spans"]) for rs in payload["resourceSpans"] for ss in rs["scopeSpans"])
    trace = _stored(live, _hex(first["traceId"]))
    assert trace is not None, "the receiver kept none of the spans sent with proto field names"
    spans = _walk(trace["spans"])
    assert len(spans) == count
    assert {s["span_id"] for s in spans} >= {_hex(first["spanId"])}
    assert [s["kind"] for s in spans].count("llm") == 3
    answers = [s["outputs"][0]["content"] for s in spans if s["kind"] == "llm" and s["outputs"]]
    assert "巴黎。" in answers


def test_log_records_with_proto_field_names_complete_their_span(live):
    traces = _proto_names(_payload("openai_v2_events_traces"), "trace")
    logs = _proto_names(_payload("openai_v2_events_logs"), "logs")
    assert "resource_logs" in logs and "log_records" in json.dumps(logs)
    trace_id = _hex(
        _payload("openai_v2_events_traces")["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    )
    assert httpx.post(live.url + "/v1/traces", json=traces).status_code == 200
    assert _stored(live, trace_id) is not None
    assert httpx.post(live.url + "/v1/logs", json=logs).status_code == 200

    def answered(trace: dict) -> bool:
        return any(s["kind"] == "llm" and s["outputs"] for s in _walk(trace["spans"]))

    trace = _stored(live, trace_id, answered)
    answers = [
        s["outputs"][0].get("content") for s in _walk(trace["spans"]) if s["kind"] == "llm" and s["outputs"]
    ]
    assert "Paris." in answers


def test_a_bad_field_under_proto_names_is_a_400_naming_its_path(live):
    span = {"trace_id": "not-an-id", "span_id": "eee19b7ec3c1b174", "name": "x"}
    body = {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}
    resp = httpx.post(live.url + "/v1/traces", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert (
        error["param"] == "resourceSpans.0.scopeSpans.0.spans.0.traceId" and error["code"] == "invalid_value"
    )
    span["trace_id"] = "5b8efff798038103d269b633813fc60d"
    span.update(start_time_unix_nano="1700000000000000000", end_time_unix_nano="1700000000200000000")
    span["attributes"] = [{"key": "input.value", "value": {"string_value": "pin a version"}}]
    assert httpx.post(live.url + "/v1/traces", json=body).status_code == 200
    (stored,) = _stored(live, span["trace_id"])["spans"]
    assert stored["start_ns"] == 1700000000000000000 and stored["inputs"] == "pin a version"


def test_protobuf_without_the_otel_packages_names_the_install(live, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.protobuf.json_format", None)  # import of it fails
    resp = httpx.post(
        live.url + "/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"}
    )
    assert resp.status_code == 415
    message = resp.json()["error"]["message"]
    assert "pip install" in message and "[otel]" in message and "{" not in message


def test_file_import_of_otlp_needs_no_server_package(tmp_path):
    """`flywheel traces import --format otlp` with fastapi missing (no `server` extra) imports the file."""
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(_payload("openllmetry_legacy_0_40")) + "\n", encoding="utf-8")
    script = f"""
import sys
sys.modules["fastapi"] = None  # as without the server extra: importing it fails
from flywheel.store import Store
from flywheel.tracing.importer import import_file
store = Store.open("sqlite:///{tmp_path / "f.db"}")
result = import_file(store, __import__("pathlib").Path({str(path)!r}), "otlp")
store.close()
print(result.imported, sorted(m for m in sys.modules if m.startswith("flywheel.server")))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "3 []"
