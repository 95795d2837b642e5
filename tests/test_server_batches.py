"""The OpenAI Files + Batch APIs on a real `flywheel serve` (uvicorn on 127.0.0.1, fake_llm behind the aliases),
driven by the official `openai` SDK: chat and embeddings batches with output and error files in OpenAI's line
format (every body validated against the SDK's pydantic models), cancel, expiry, tenant isolation, bad input as
400s naming the line and field, and one trace per request tagged with the batch id."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
from openai import OpenAI
from openai.types import Batch, CreateEmbeddingResponse, FileObject
from openai.types.chat import ChatCompletion
from server_support import LiveServer

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM, Fault

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
  broken: {{provider: openai_compat, base_url: "{base}", model: broken-model, max_retries: 0}}
  emb: {{provider: openai_compat, base_url: "{base}", model: fake-embedding}}
retrieval: {{embedder: emb}}
cache: {{exact: false}}
server: {{batch_concurrency: 2, online_evaluators: false, embed_worker: false}}
"""


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory, llm):
    """(server, clock, {tenant: key}): keys for tenants `a` and `b`."""
    from conftest import FakeClock

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("batches")
    (root / "flywheel.yaml").write_text(YAML.format(base=llm.base_url), encoding="utf-8")
    clock = FakeClock()
    server = LiveServer(create_app(Project.load(root), clock=clock)).start()
    keys = {t: server.state.keys.create(f"key-{t}", tenant=t)[0] for t in ("a", "b")}
    yield server, clock, keys
    server.stop()


def client(served, tenant: str = "a") -> OpenAI:
    server, _, keys = served
    return OpenAI(base_url=server.url + "/v1", api_key=keys[tenant], max_retries=0)


def jsonl(lines: list[dict]) -> bytes:
    return ("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n").encode()


def chat_line(cid: str, text: str, model: str = "gpt") -> dict:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 20}}


def wait_final(c: OpenAI, batch_id: str) -> Batch:
    while True:  # readiness poll, not a timed assertion
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)


def read_lines(c: OpenAI, file_id: str | None) -> list[dict]:
    assert file_id is not None
    return [json.loads(x) for x in c.files.content(file_id).text.splitlines()]


def test_chat_batch_writes_output_and_error_files(served, llm):
    llm.reset()
    llm.fail(Fault.SERVER_ERROR, times=None, model="broken-model")
    c = client(served)
    lines = [chat_line(f"req-{i}", f"question {i}") for i in range(19)]
    lines.insert(7, chat_line("req-broken", "this one fails", model="broken"))
    f = c.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    FileObject.model_validate(f.model_dump())
    assert f.purpose == "batch" and f.bytes == len(jsonl(lines))
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                             metadata={"job": "nightly"})
    assert batch.status in ("validating", "in_progress") and batch.request_counts.total == 20
    done = wait_final(c, batch.id)
    Batch.model_validate(done.model_dump())
    assert done.status == "completed", done
    assert (done.request_counts.completed, done.request_counts.failed) == (19, 1)
    assert done.metadata == {"job": "nightly"}
    assert done.in_progress_at and done.finalizing_at and done.completed_at
    out = read_lines(c, done.output_file_id)
    assert [x["custom_id"] for x in out] == [f"req-{i}" for i in range(19)]  # input order
    for x in out:
        assert x["id"].startswith("batch_req_") and x["error"] is None
        assert x["response"]["status_code"] == 200 and x["response"]["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(x["response"]["body"])
        question = next(ln for ln in lines if ln["custom_id"] == x["custom_id"])["body"]["messages"][0]["content"]
        assert completion.choices[0].message.content == f"You said: {question}"
    [err] = read_lines(c, done.error_file_id)
    assert err["custom_id"] == "req-broken" and err["response"]["status_code"] == 502
    assert err["response"]["body"]["error"]["code"] == "upstream_failed"
    assert done.usage is not None and done.usage.output_tokens > 0
    # one trace per request, its root tagged with the batch id and custom id
    server = served[0]
    from flywheel.tracing import tracer

    tracer.flush()
    server.state.store.flush()
    spans = server.state.store.table("spans")
    from sqlalchemy import select

    with server.state.store.connect() as conn:
        roots = [r for r in conn.execute(select(spans.c.attributes, spans.c.trace_id, spans.c.tenant)
                                         .where(spans.c.parent_id.is_(None), spans.c.name == "batch /v1/chat/completions"))
                 if r.attributes.get("flywheel.batch_id") == batch.id]
    assert sorted(r.attributes["flywheel.batch.custom_id"] for r in roots) == sorted(x["custom_id"] for x in lines)
    assert len({r.trace_id for r in roots}) == 20 and {r.tenant for r in roots} == {"a"}
    body_ids = {x["response"]["body"]["id"] for x in out}
    assert body_ids == {f"chatcmpl-{r.trace_id}" for r in roots if r.attributes["flywheel.batch.custom_id"] != "req-broken"}


def test_embeddings_batch(served, llm):
    llm.reset()
    c = client(served)
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": "emb", "input": [f"text {i}", "again"]}} for i in range(3)]
    f = c.files.create(file=("emb.jsonl", jsonl(lines)), purpose="batch")
    done = wait_final(c, c.batches.create(input_file_id=f.id, endpoint="/v1/embeddings",
                                          completion_window="24h").id)
    assert done.status == "completed" and done.request_counts.completed == 3 and done.error_file_id is None
    for x in read_lines(c, done.output_file_id):
        emb = CreateEmbeddingResponse.model_validate(x["response"]["body"])
        assert len(emb.data) == 2 and len(emb.data[0].embedding) > 0


def test_cancel_stops_new_requests(served, llm):
    llm.reset()
    gate = threading.Event()

    def held(_body: dict) -> str:
        gate.wait(30)
        return "late"

    llm.add(r"^hold", held)
    c = client(served)
    f = c.files.create(file=("c.jsonl", jsonl([chat_line(f"c{i}", f"hold {i}") for i in range(6)])),
                       purpose="batch")
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    while len(llm.requests) < 2:  # both slots (batch_concurrency: 2) are in flight
        time.sleep(0.02)
    cancelling = c.batches.cancel(batch.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    gate.set()
    done = wait_final(c, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    assert done.request_counts.completed == 2 and len(llm.requests) == 2
    assert len(read_lines(c, done.output_file_id)) == 2
    unrun = read_lines(c, done.error_file_id)
    assert len(unrun) == 4 and {x["error"]["code"] for x in unrun} == {"batch_cancelled"}
    assert all(x["response"] is None for x in unrun)
    with pytest.raises(openai.ConflictError):
        c.batches.cancel(batch.id)


def test_batch_past_its_window_expires(served, llm):
    llm.reset()
    gate = threading.Event()
    llm.add(r"^slow", lambda _b: gate.wait(30) and "done")
    _, clock, _ = served
    c = client(served)
    f = c.files.create(file=("x.jsonl", jsonl([chat_line(f"x{i}", f"slow {i}") for i in range(5)])), purpose="batch")
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    while len(llm.requests) < 2:
        time.sleep(0.02)
    clock.advance(86400 + 1)
    gate.set()
    try:
        done = wait_final(c, batch.id)
    finally:
        clock.advance(-(86400 + 1))
    assert done.status == "expired" and done.expired_at and done.request_counts.completed == 2
    unrun = read_lines(c, done.error_file_id)
    assert [x["custom_id"] for x in unrun] == ["x2", "x3", "x4"]
    assert {x["error"]["code"] for x in unrun} == {"batch_expired"}


def test_files_and_batches_are_tenant_scoped(served):
    a, b = client(served, "a"), client(served, "b")
    f = a.files.create(file=("t.jsonl", jsonl([chat_line("t1", "hi")])), purpose="batch")
    batch = a.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    for call in (lambda: b.files.retrieve(f.id), lambda: b.files.content(f.id), lambda: b.files.delete(f.id),
                 lambda: b.batches.retrieve(batch.id), lambda: b.batches.cancel(batch.id),
                 lambda: b.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            call()
    assert f.id not in {x.id for x in b.files.list()} and f.id in {x.id for x in a.files.list()}
    assert batch.id not in {x.id for x in b.batches.list()} and batch.id in {x.id for x in a.batches.list()}
    done = wait_final(a, batch.id)
    assert a.files.retrieve(done.output_file_id).purpose == "batch_output"
    with pytest.raises(openai.NotFoundError):
        b.files.content(done.output_file_id)
    assert a.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        a.files.retrieve(f.id)
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=served[0].url + "/v1", api_key="fw-000000000000-" + "x" * 30, max_retries=0).files.list()


def _refused(c: OpenAI, lines_or_bytes, endpoint: str = "/v1/chat/completions") -> openai.BadRequestError:
    content = lines_or_bytes if isinstance(lines_or_bytes, bytes) else jsonl(lines_or_bytes)
    f = c.files.create(file=("bad.jsonl", content), purpose="batch")
    with pytest.raises(openai.BadRequestError) as info:
        c.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h")  # type: ignore[arg-type]
    return info.value


def test_bad_input_is_a_400_naming_line_and_field(served):
    c = client(served)
    good = chat_line("g", "fine")
    err = _refused(c, jsonl([good]) + b'{"custom_id": "x", "method": "POST"\n')
    assert "line 2" in err.message and "not valid JSON" in err.message and err.code == "invalid_json_line"
    err = _refused(c, [good, chat_line("m", "hi", model="gpt-4o")])
    assert "line 2" in err.message and err.param == "body.model" and "gpt-4o" in err.message
    err = _refused(c, [good], endpoint="/v1/moderations")
    assert err.param == "endpoint" and "/v1/chat/completions" in err.message
    err = _refused(c, [good, {**chat_line("u", "hi"), "url": "/v1/embeddings"}])
    assert "line 2" in err.message and err.param == "url"
    err = _refused(c, [good, chat_line("g", "again")])
    assert "line 2" in err.message and "line 1" in err.message and err.param == "custom_id"
    bad_body = chat_line("b", "hi")
    bad_body["body"]["temperature"] = 7
    err = _refused(c, [good, good | {"custom_id": "h"}, bad_body])
    assert "line 3" in err.message and err.param == "body.temperature"
    streaming = chat_line("s", "hi")
    streaming["body"]["stream"] = True
    assert _refused(c, [streaming]).param == "body.stream"
    err = _refused(c, [{"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
                        "body": {"model": "gpt", "input": "x"}}], endpoint="/v1/embeddings")
    assert err.param == "body.model" and "line 1" in err.message
    with pytest.raises(openai.BadRequestError) as info:
        c.files.create(file=("x.jsonl", b"{}\n"), purpose="assistants")
    assert info.value.param == "purpose"
    with pytest.raises(openai.NotFoundError):
        c.batches.create(input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h")
    assert not [b for b in c.batches.list() if b.status == "failed"]
