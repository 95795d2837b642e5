"""`flywheel traces import` as a user migrating from other tools: the Vercel AI SDK's telemetry spans (in an OTLP
file, or received live) read as model / tool / embedding calls; a trace file that is one huge JSON array read in
constant memory; a Langfuse trace's root showing its answer, not flywheel's `{"text": …}` wrapper; and exports of
tools flywheel does not read refused naming what it does read."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import UserError
from flywheel.tracing import get_trace, list_traces
from flywheel.tracing import importer as importer_mod
from flywheel.tracing.import_fields import otlp_kvs
from flywheel.tracing.importer import import_file

# ------------------------------------------------------------------------------------------ the Vercel AI SDK


_kv = otlp_kvs  # the importers' own encoder: a span as the SDK's OTLP exporter writes it


def _span(sid: str, parent: str, name: str, start: int, attrs: dict[str, Any], tid: str = "a1" * 16,
          error: str | None = None) -> dict[str, Any]:
    base = {"operation.name": f"{name} weather-bot", "ai.operationId": name, "ai.telemetry.functionId": "weather-bot"}
    return {"traceId": tid, "spanId": sid * 8, "parentSpanId": parent * 8 if parent else "", "name": name,
            "kind": 1, "startTimeUnixNano": str(1_790_000_000_000_000_000 + start * 1_000_000),
            "endTimeUnixNano": str(1_790_000_000_000_000_000 + (start + 5) * 1_000_000),
            "attributes": _kv({**base, **attrs}),
            "status": {"code": 2, "message": error} if error else {"code": 0}}


USER = json.dumps([{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}])
CALL = {"type": "tool-call", "toolCallId": "call_0", "toolName": "get_weather", "input": {"city": "Paris"}}
RESULT = {"type": "tool-result", "toolCallId": "call_0", "toolName": "get_weather",
          "output": {"type": "json", "value": {"city": "Paris", "temp": 21}}}
MODEL = {"ai.model.provider": "openai.chat", "ai.model.id": "gpt-4o-mini"}
# attribute names as AI SDK 6 writes them (checked against node_modules/ai/dist), a tool round then the answer
AI_SDK_SPANS = [
    _span("01", "", "ai.generateText", 0, {**MODEL, "ai.prompt": json.dumps(
        {"system": "Be brief.", "prompt": "What is the weather in Paris?"}), "ai.response.text": "21 °C in Paris.",
        "ai.response.finishReason": "stop", "ai.usage.inputTokens": 35, "ai.usage.outputTokens": 17,
        "ai.usage.totalTokens": 52, "ai.telemetry.metadata.sessionId": "chat-9",
        "ai.telemetry.metadata.userId": "u-4"}),
    _span("02", "01", "ai.generateText.doGenerate", 1, {
        **MODEL, "ai.prompt.messages": USER, "gen_ai.system": "openai.chat", "gen_ai.request.model": "gpt-4o-mini",
        "ai.response.toolCalls": json.dumps([{"toolCallId": "call_0", "toolName": "get_weather",
                                              "input": "{\"city\":\"Paris\"}"}]),
        "ai.response.finishReason": "tool-calls", "ai.usage.inputTokens": 10, "ai.usage.outputTokens": 9,
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 9, "ai.settings.temperature": 0.2}),
    _span("03", "01", "ai.toolCall", 2, {"ai.toolCall.name": "get_weather", "ai.toolCall.id": "call_0",
                                         "ai.toolCall.args": "{\"city\":\"Paris\"}",
                                         "ai.toolCall.result": "{\"city\":\"Paris\",\"temp\":21}"}),
    _span("04", "01", "ai.generateText.doGenerate", 3, {
        **MODEL, "ai.prompt.messages": json.dumps([*json.loads(USER), {"role": "assistant", "content": [CALL]},
                                                   {"role": "tool", "content": [RESULT]}]),
        "ai.response.text": "21 °C in Paris.", "ai.response.finishReason": "stop", "ai.response.model": "gpt-4o-mini-2024",
        "ai.usage.inputTokens": 25, "ai.usage.outputTokens": 8}),
    # AI SDK 4's names: promptTokens / completionTokens, `args` and `result` parts
    _span("05", "", "ai.streamText.doStream", 0, {
        **MODEL, "ai.prompt.messages": json.dumps([{"role": "assistant", "content": [
            {"type": "tool-call", "toolCallId": "c1", "toolName": "f", "args": {"x": 1}}]},
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "f", "result": 2}]}]),
        "ai.response.text": "two", "ai.usage.promptTokens": 7, "ai.usage.completionTokens": 1}, tid="b2" * 16),
    _span("06", "", "ai.embedMany", 0, {"ai.model.id": "text-embedding-3-small", "ai.usage.tokens": 4,
                                        "ai.values": ['"hello"', '"world"'], "ai.embeddings": ["[0.1,0.2,0.3]"] * 2},
          tid="c3" * 16),
    _span("07", "06", "ai.embedMany.doEmbed", 1, {"ai.model.id": "text-embedding-3-small", "ai.usage.tokens": 4,
                                                  "ai.values": ['"hello"', '"world"'],
                                                  "ai.embeddings": ["[0.1,0.2,0.3]"] * 2}, tid="c3" * 16),
    _span("08", "", "ai.generateText", 0, {**MODEL, "ai.prompt": json.dumps({"prompt": "fail please"})},
          tid="d4" * 16, error="rate limited"),
]


def _otlp_file(path: Path, spans: list[dict[str, Any]]) -> Path:
    request = {"resourceSpans": [{"resource": {"attributes": _kv({"service.name": "weather-bot"})},
                                  "scopeSpans": [{"scope": {"name": "ai"}, "spans": spans}]}]}
    path.write_text(json.dumps(request) + "\n", encoding="utf-8")
    return path


def _by_name(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}

    def walk(nodes: list[dict[str, Any]]) -> None:
        for n in nodes:
            out.setdefault(n["name"], []).append(n)
            walk(n["children"])

    walk(trace["spans"])
    return out


def test_ai_sdk_spans_are_model_tool_and_embedding_calls(store, tmp_path):
    import_file(store, _otlp_file(tmp_path / "ai.jsonl", AI_SDK_SPANS), "otlp")
    tool_round = get_trace(store, "a1" * 16)
    spans = _by_name(tool_round)
    first, second = spans["ai.generateText.doGenerate"]
    assert (first["kind"], second["kind"], spans["ai.toolCall"][0]["kind"]) == ("llm", "llm", "tool")
    assert spans["ai.generateText"][0]["kind"] == "other"  # the function around the calls, as OpenInference has it
    assert (first["model"], first["input_tokens"], first["output_tokens"]) == ("gpt-4o-mini", 10, 9)
    assert second["model"] == "gpt-4o-mini-2024" and second["input_tokens"] == 25
    assert first["inputs"]["messages"] == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "What is the weather in Paris?"}]
    assert first["outputs"][0]["tool_calls"] == [{"id": "call_0", "type": "function", "function": {
        "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
    assert second["inputs"]["messages"][2:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_0", "type": "function", "function": {
            "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "{\"city\": \"Paris\", \"temp\": 21}"}]
    assert second["outputs"][0]["content"] == "21 °C in Paris."
    tool = spans["ai.toolCall"][0]
    assert tool["inputs"] == {"city": "Paris"} and tool["outputs"] == {"city": "Paris", "temp": 21}
    assert tool["attributes"]["gen_ai.tool.name"] == "get_weather"
    assert first["attributes"]["gen_ai.request.temperature"] == 0.2
    # the trace: its question and answer, its tokens counted once (the function restates its calls' totals)
    assert (tool_round["input_preview"], tool_round["output_preview"]) == ("What is the weather in Paris?",
                                                                           "21 °C in Paris.")
    assert (tool_round["input_tokens"], tool_round["output_tokens"]) == (35, 17)
    assert (tool_round["session_id"], tool_round["user_id"]) == ("chat-9", "u-4")
    # the prompt and answer were lifted out of the attributes (tracing.capture_content: false drops them)
    assert not {"ai.prompt.messages", "ai.response.text", "ai.toolCall.args"} & set(first["attributes"])

    older = _by_name(get_trace(store, "b2" * 16))["ai.streamText.doStream"][0]
    assert (older["kind"], older["input_tokens"], older["output_tokens"]) == ("llm", 7, 1)
    assert older["inputs"]["messages"][1] == {"role": "tool", "tool_call_id": "c1", "content": "2"}
    assert older["inputs"]["messages"][0]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{\"x\": 1}"}

    embed = _by_name(get_trace(store, "c3" * 16))
    call = embed["ai.embedMany.doEmbed"][0]
    assert (call["kind"], call["model"], call["input_tokens"]) == ("embedding", "text-embedding-3-small", 4)
    assert call["inputs"] == ["hello", "world"] and call["outputs"] == {"vectors": 2, "dimensions": 3}
    assert "ai.embeddings" not in call["attributes"]  # the vectors are not stored

    failed = get_trace(store, "d4" * 16)
    assert failed["status"] == "error" and failed["error"] == "rate limited"
    assert failed["input_preview"] == "fail please"


AI_SDK_SCRIPT = r"""
import { createRequire } from "node:module";
import path from "node:path";
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";

const require = createRequire(path.join(process.env.FLYWHEEL_AI_SDK_DIR, "package.json"));
const { generateText, streamText, tool, stepCountIs, embed } = require("ai");
const { createOpenAI } = require("@ai-sdk/openai");
const { z } = require("zod");

// a minimal OpenTelemetry tracer: the SDK's spans, written as one OTLP/JSON request (the Collector's file exporter)
const spans = [];
const active = new AsyncLocalStorage();
const nanos = () => (BigInt(Date.now()) * 1000000n).toString();
const value = (v) => typeof v === "string" ? { stringValue: v } : typeof v === "boolean" ? { boolValue: v }
  : Number.isInteger(v) ? { intValue: String(v) } : typeof v === "number" ? { doubleValue: v }
  : Array.isArray(v) ? { arrayValue: { values: v.map(value) } } : { stringValue: String(v) };
const kv = (a) => Object.entries(a).filter(([, v]) => v !== undefined).map(([key, v]) => ({ key, value: value(v) }));
class Span {
  constructor(name, attrs, parent) {
    this.name = name; this.attrs = { ...attrs }; this.status = { code: 0 };
    this.traceId = parent ? parent.traceId : randomBytes(16).toString("hex");
    this.spanId = randomBytes(8).toString("hex"); this.parentSpanId = parent ? parent.spanId : "";
    this.start = nanos();
  }
  spanContext() { return { traceId: this.traceId, spanId: this.spanId, traceFlags: 1 }; }
  setAttribute(k, v) { if (v !== undefined) this.attrs[k] = v; return this; }
  setAttributes(a) { for (const [k, v] of Object.entries(a)) this.setAttribute(k, v); return this; }
  addEvent() { return this; }
  setStatus(s) { this.status = s; return this; }
  recordException() {}
  updateName(n) { this.name = n; return this; }
  isRecording() { return true; }
  end() { this.end_ = nanos(); spans.push(this); }
}
const tracer = {
  startSpan(name, opts) { return new Span(name, opts?.attributes || {}, active.getStore()); },
  startActiveSpan(name, ...args) {
    const fn = args[args.length - 1];
    const span = new Span(name, (args.length > 1 ? args[0] : {})?.attributes || {}, active.getStore());
    return active.run(span, () => fn(span));
  },
};
const telemetry = { isEnabled: true, tracer, functionId: "weather-bot" };
const openai = createOpenAI({ baseURL: process.argv[2], apiKey: "unused" });
const weather = tool({ description: "Current weather in a city", inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => ({ city, temp: 21 }) });
await generateText({ model: openai.chat("fake"), prompt: "What is the weather in Paris?",
  tools: { get_weather: weather }, stopWhen: stepCountIs(3), experimental_telemetry: telemetry });
const s = streamText({ model: openai.chat("fake"), prompt: "stream me", experimental_telemetry: telemetry });
for await (const _ of s.textStream) { /* drain */ }
await s.usage;
await embed({ model: openai.embedding("emb"), value: "hello", experimental_telemetry: telemetry });
await new Promise((r) => setTimeout(r, 50));
console.log(JSON.stringify({ resourceSpans: [{ resource: { attributes: kv({ "service.name": "weather-bot" }) },
  scopeSpans: [{ scope: { name: "ai" }, spans: spans.map((x) => ({ traceId: x.traceId, spanId: x.spanId,
    parentSpanId: x.parentSpanId, name: x.name, kind: 1, startTimeUnixNano: x.start, endTimeUnixNano: x.end_,
    attributes: kv(x.attrs), status: x.status })) }] }] }));
"""


def test_the_real_ai_sdk_spans_import_as_model_and_tool_calls(store, tmp_path, llm):
    sdk = os.environ.get("FLYWHEEL_AI_SDK_DIR")
    if not shutil.which("node") or not sdk or not (Path(sdk) / "node_modules" / "ai").is_dir():
        pytest.skip("node and FLYWHEEL_AI_SDK_DIR (a folder with `npm install ai @ai-sdk/openai zod`) needed")
    from flywheel.testing.fake_llm import ToolCall

    llm.add(r"weather in Paris", ToolCall("get_weather", {"city": "Paris"}))
    llm.add(r'"temp"', "It is 21 °C in Paris.")
    script = tmp_path / "spans.mjs"
    script.write_text(AI_SDK_SCRIPT, encoding="utf-8")
    done = subprocess.run(["node", str(script), llm.base_url], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FLYWHEEL_AI_SDK_DIR": sdk}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "ai.jsonl").write_text(done.stdout, encoding="utf-8")
    assert import_file(store, tmp_path / "ai.jsonl", "otlp").imported == 3
    traces = {t["name"]: t for t in list_traces(store)}
    assert set(traces) == {"ai.generateText", "ai.streamText", "ai.embed"}
    tools = _by_name(get_trace(store, traces["ai.generateText"]["trace_id"]))
    assert [s["kind"] for s in tools["ai.generateText.doGenerate"]] == ["llm", "llm"]
    assert tools["ai.toolCall"][0]["kind"] == "tool" and tools["ai.toolCall"][0]["outputs"] == {"city": "Paris",
                                                                                                 "temp": 21}
    asked, answered = tools["ai.generateText.doGenerate"]
    assert asked["model"] == "fake" and asked["input_tokens"] and asked["output_tokens"]
    assert asked["outputs"][0]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert answered["inputs"]["messages"][-1]["role"] == "tool"
    assert traces["ai.generateText"]["output_preview"] == "It is 21 °C in Paris."
    assert traces["ai.generateText"]["input_preview"] == "What is the weather in Paris?"
    stream = _by_name(get_trace(store, traces["ai.streamText"]["trace_id"]))["ai.streamText.doStream"][0]
    assert stream["kind"] == "llm" and stream["outputs"][0]["content"] == "You said: stream me"
    assert traces["ai.streamText"]["output_tokens"] == stream["output_tokens"] > 0
    doembed = _by_name(get_trace(store, traces["ai.embed"]["trace_id"]))["ai.embed.doEmbed"][0]
    assert doembed["kind"] == "embedding" and doembed["inputs"] == ["hello"] and doembed["outputs"]["vectors"] == 1


# ------------------------------------------------------------------------------------------ one huge JSON array

RSS_SCRIPT = """
import resource, sys
from pathlib import Path
from flywheel.tracing import importer
path = Path(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
n = sum(1 for _ in importer._records(path, "flywheel"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, (after - before) * 1024)  # ru_maxrss is in KiB on Linux
"""


def _record(i: int) -> dict[str, Any]:
    return {"timestamp": 1_790_000_000 + i, "app": "big", "model": "gpt-4o", "input": f"q{i} " + "x" * 1900,
            "output": "ok"}


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB is Linux's")
@pytest.mark.parametrize("layout", ["pretty", "one_line"])
def test_a_large_json_array_is_read_in_flat_memory(tmp_path, layout):
    """80 MB in one JSON array (pretty-printed, or all on one line as json.dump writes it): reading it must not
    hold the file, nor its records, in memory at once."""
    path, n = tmp_path / "big.json", 40_000
    with path.open("w", encoding="utf-8") as f:
        f.write("[\n" if layout == "pretty" else "[")
        for i in range(n):
            f.write(("" if i == 0 else (",\n" if layout == "pretty" else ", ")) + json.dumps(_record(i)))
        f.write("\n]\n" if layout == "pretty" else "]")
    size = path.stat().st_size
    assert size > 75_000_000
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(path)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    count, grew = map(int, done.stdout.split())
    assert count == n
    assert grew < size * 0.4, (grew, size)  # (held whole, it grows by more than the file's size)


TRICKY = """[
  {"a": 1, "s": "x\\"y ], {", "u": "\u00e9\u4e2d"},
  12345678901234567890,
  {"n": [1, 2.5e10, -3], "t": true, "z": null},

  {"deep": {"k": "v,]"}}  ,  "last"
]
"""


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_values_and_their_lines_do_not_depend_on_where_reads_split(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(importer_mod, "_CHUNK", chunk)
    path = tmp_path / "t.json"
    path.write_text(TRICKY, encoding="utf-8")
    got = list(importer_mod._values(path))
    assert got == list(zip([2, 3, 4, 6, 6], json.loads(TRICKY), strict=True))
    pretty = tmp_path / "p.json"
    pretty.write_text('{\n  "a": 1\n}\n\n{"b": [1,\n 2]}\n   {"c": 3}\n', encoding="utf-8")
    assert list(importer_mod._values(pretty)) == [(1, {"a": 1}), (5, {"b": [1, 2]}), (7, {"c": 3})]
    pretty.write_text('\n{\n  "a": 1\n}\n{"b": 2}', encoding="utf-8")  # (no newline at the end)
    assert list(importer_mod._values(pretty)) == [(2, {"a": 1}), (5, {"b": 2})]


@pytest.mark.parametrize("chunk", [5, 1 << 20])
def test_a_broken_array_is_the_line_of_the_bad_element(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(importer_mod, "_CHUNK", chunk)
    cases = {
        '[\n {"a": 1},\n {"b": tru},\n {"c": 3}\n]\n': ("bad.json:3", "line 3"),
        '[\n {"a": 1},\n {"b": 2}\n': ("bad.json:4", "ends before"),
        '[\n {"a": 1}\n]\n{"b": 2}\n': ("bad.json:3", "text after the end"),
    }
    for text, (where, said) in cases.items():
        path = tmp_path / "bad.json"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(UserError) as err:
            list(importer_mod._values(path))
        assert err.value.where.endswith(where) and said in err.value.message, (text, err.value)


def test_a_gzipped_array_streams_too(store, tmp_path):
    path = tmp_path / "day.json.gz"
    path.write_bytes(gzip.compress(json.dumps([_record(i) for i in range(3)]).encode()))
    assert import_file(store, path).imported == 3


# ------------------------------------------------------------------------------------------ Langfuse's root


def _langfuse(tid: str, trace_input: Any, trace_output: Any) -> dict[str, Any]:
    return {"id": tid, "timestamp": "2026-10-02T10:00:00Z", "name": "support-bot", "input": trace_input,
            "output": trace_output, "latency": 1.2, "sessionId": "s1", "userId": "u1", "htmlPath": f"/t/{tid}",
            "observations": [{"id": f"{tid}-g", "type": "GENERATION", "name": "chat", "model": "gpt-4o",
                              "startTime": "2026-10-02T10:00:00.1Z", "endTime": "2026-10-02T10:00:01Z",
                              "input": [{"role": "user", "content": "How do I reset my password?"}],
                              "output": {"role": "assistant", "content": "Use the reset link."},
                              "parentObservationId": None, "usageDetails": {"input": 10, "output": 5}}]}


def test_a_langfuse_root_shows_its_answer_not_a_wrapper(tmp_path):
    from click.testing import CliRunner

    from flywheel.cli import main

    lines = [_langfuse("lf-1", {"text": "How do I reset my password?", "lang": "en"}, {"text": "Use the reset link."}),
             _langfuse("lf-2", {"args": ["Where is my order?"], "kwargs": {}}, "It ships tomorrow.")]
    path = tmp_path / "langfuse.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    runner = CliRunner()
    done = runner.invoke(main, ["--project", str(tmp_path), "traces", "import", "--format", "langfuse", str(path)])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(main, ["--project", str(tmp_path), "traces", "--json"])
    rows = {r["input_preview"]: r for r in json.loads(listed.stdout[listed.stdout.index("["):])}
    assert set(rows) == {"How do I reset my password?", "Where is my order?"}  # the text, not the object
    for row in rows.values():
        shown = runner.invoke(main, ["--project", str(tmp_path), "traces", "show", row["trace_id"]])
        root = shown.output.splitlines()[1:4]
        assert not any('{"text"' in line or '"args"' in line for line in root), shown.output
        assert any(line.strip(" │").startswith("out: ") and row["output_preview"] in line for line in root)


# ------------------------------------------------------------------------------------------ other tools' exports


def _lc(kind: str, content: Any, **kwargs: Any) -> dict[str, Any]:
    """A LangChain message as LangSmith stores it (langchain_core.load.dumpd)."""
    return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", kind],
            "kwargs": {"content": content, "type": kind.removesuffix("Message").lower(), **kwargs}}


TRACE = "0b1c2d3e-0000-7000-8000-000000000001"
CALL_ID = "0b1c2d3e-0000-7000-8000-000000000002"
TOOL_ID = "0b1c2d3e-0000-7000-8000-000000000003"
# a LangSmith export (client.list_runs → runs.jsonl): the children before their root, as the API pages them
LANGSMITH_RUNS = [
    {"id": CALL_ID, "name": "ChatOpenAI", "run_type": "llm", "trace_id": TRACE, "parent_run_id": TRACE,
     "dotted_order": f"20261002T100000000000Z{TRACE}.20261002T100000100000Z{CALL_ID}",
     "start_time": "2026-10-02T10:00:00.100000", "end_time": "2026-10-02T10:00:01.000000", "error": None,
     "inputs": {"messages": [[_lc("SystemMessage", "Be brief."),
                              _lc("HumanMessage", [{"type": "text", "text": "What is the weather in Paris?"}])]]},
     "outputs": {"generations": [[{"text": "", "type": "ChatGeneration", "message": _lc(
         "AIMessage", "", tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}],
         usage_metadata={"input_tokens": 12, "output_tokens": 9, "total_tokens": 21})}]],
                 "llm_output": {"model_name": "gpt-4o-mini"}},
     "extra": {"invocation_params": {"model": "gpt-4o-mini"},
               "metadata": {"ls_provider": "openai", "ls_model_name": "gpt-4o-mini", "thread_id": "th-7"}},
     "prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21, "total_cost": "0.000123", "tags": []},
    {"id": TOOL_ID, "name": "get_weather", "run_type": "tool", "trace_id": TRACE, "parent_run_id": TRACE,
     "dotted_order": "x", "start_time": "2026-10-02T10:00:01.100000", "end_time": "2026-10-02T10:00:01.200000",
     "inputs": {"input": "{'city': 'Paris'}"}, "outputs": None,
     "error": "Traceback (most recent call last):\n  ...\nTimeoutError: weather service timed out", "extra": {}},
    {"id": TRACE, "name": "weather-agent", "run_type": "chain", "trace_id": TRACE, "parent_run_id": None,
     "dotted_order": f"20261002T100000000000Z{TRACE}", "start_time": "2026-10-02T10:00:00.000000",
     "end_time": "2026-10-02T10:00:02.000000", "inputs": {"question": "What is the weather in Paris?"},
     "outputs": {"output": {"content": "I could not reach the weather service.", "type": "ai"}}, "error": None,
     "extra": {"metadata": {"thread_id": "th-7", "user_id": "u-3"}}, "tags": ["prod"]},
]


def test_a_langsmith_export_imports_every_run_as_a_span(store, tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in LANGSMITH_RUNS) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as err:  # (the default format: named, not misread)
        import_file(store, path)
    assert "--format langsmith" in (err.value.hint or "") and err.value.where.endswith("runs.jsonl:1")
    assert import_file(store, path, "langsmith").imported == 1
    assert import_file(store, path, "langsmith").imported == 0  # the same runs again: nothing added
    trace = get_trace(store, TRACE.replace("-", ""))
    spans = _by_name(trace)
    assert [s["name"] for s in trace["spans"]] == ["weather-agent"]
    model, tool = spans["ChatOpenAI"][0], spans["get_weather"][0]
    assert (model["kind"], model["model"], model["input_tokens"], model["output_tokens"]) == ("llm", "gpt-4o-mini",
                                                                                           12, 9)
    assert model["cost_usd"] == pytest.approx(0.000123)
    assert model["inputs"]["messages"] == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "What is the weather in Paris?"}]
    assert model["outputs"][0]["tool_calls"] == [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]
    assert tool["kind"] == "tool" and tool["error"] == "TimeoutError: weather service timed out"
    assert (trace["input_preview"], trace["output_preview"]) == ("What is the weather in Paris?",
                                                                 "I could not reach the weather service.")
    assert (trace["session_id"], trace["user_id"], trace["input_tokens"]) == ("th-7", "u-3", 12)
    assert trace["started_at"] == 1_790_935_200.0  # LangSmith's times are UTC without an offset


def test_langchain_runs_as_its_tracer_records_them(store, tmp_path, llm):
    """Runs recorded by LangChain's own tracer (what LangSmith stores), for a chain on the fake LLM."""
    pytest.importorskip("langchain_openai")
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.tracers.base import BaseTracer
    from langchain_openai import ChatOpenAI

    class Capture(BaseTracer):
        def __init__(self) -> None:
            super().__init__()
            self.runs: list[Any] = []

        def _persist_run(self, run: Any) -> None:
            self.runs.append(run)

    def flat(run: Any) -> list[dict[str, Any]]:
        return [json.loads(run.model_dump_json(exclude={"child_runs"})), *(d for c in run.child_runs
                                                                           for d in flat(c))]

    llm.add(r"refund", "30 days.")
    capture = Capture()
    chain = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{q}")]) | ChatOpenAI(
        base_url=llm.base_url, api_key="unused", model="gpt-4o-mini")
    chain.invoke({"q": "What is the refund policy?"}, config={"callbacks": [capture],
                                                              "metadata": {"session_id": "s-1"}})
    path = tmp_path / "runs.json"  # (as one JSON array)
    path.write_text(json.dumps([d for r in capture.runs for d in flat(r)]), encoding="utf-8")
    assert import_file(store, path, "langsmith").imported == 1
    trace = list_traces(store)[0]
    assert (trace["input_preview"], trace["output_preview"], trace["session_id"]) == (
        "What is the refund policy?", "30 days.", "s-1")
    call = _by_name(get_trace(store, trace["trace_id"]))["ChatOpenAI"][0]
    assert (call["kind"], call["model"], call["output_tokens"]) == ("llm", "gpt-4o-mini", 3)


def test_a_parquet_file_says_how_to_save_it_as_json(store, tmp_path):
    path = tmp_path / "spans.parquet"
    path.write_bytes(b"PAR1\x15\x04\x15\xff\xfe" + bytes(64))
    with pytest.raises(UserError) as err:
        import_file(store, path, "phoenix")
    assert "Parquet" in err.value.message and "orient='records', lines=True" in (err.value.hint or "")


def test_a_phoenix_dataframe_saved_split_imports(store, tmp_path):
    columns = ["context.span_id", "context.trace_id", "parent_id", "name", "span_kind", "start_time", "end_time",
               "status_code", "attributes.input.value", "attributes.output.value"]
    data = [["a1b2c3d4e5f60718", "0123456789abcdef0123456789abcdef", None, "RAG", "CHAIN", 1790935200000,
             1790935202000, "OK", "What is the refund policy?", "30 days."]]
    path = tmp_path / "df.json"
    path.write_text(json.dumps({"columns": columns, "index": [0], "data": data}), encoding="utf-8")
    assert import_file(store, path, "phoenix").imported == 1
    assert list_traces(store)[0]["input_preview"] == "What is the refund policy?"
