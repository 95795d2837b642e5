"""The Files and Batch APIs audited as a user of the official `openai` SDK: input and output lines holding
characters Python's `str.splitlines` also breaks on (U+2028, U+2029, U+0085: valid raw inside a JSON string,
common in text pasted from the web or Word), CR / CRLF line ends, a UTF-8 byte-order mark (Windows editors, Excel
"CSV UTF-8"), `output_expires_after`, a batch finalized twice (a lease taken over mid-finalize), a key revoked
mid-batch, bodies the route refuses, list pagination, and deleted input and output files."""

from __future__ import annotations

import json
import threading
import time

import openai
import pytest
from openai import OpenAI
from openai.types import Batch
from server_support import LiveServer

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
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
    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("batch_lines")
    (root / "flywheel.yaml").write_text(YAML.format(base=llm.base_url), encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    key = server.state.keys.create("key-a", tenant="a")[0]
    yield server, key
    server.stop()


@pytest.fixture
def client(served) -> OpenAI:
    server, key = served
    return OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def chat_line(cid: str, text: str) -> dict:
    return {
        "custom_id": cid,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt", "messages": [{"role": "user", "content": text}], "max_tokens": 20},
    }


def wait_final(c: OpenAI, batch_id: str) -> Batch:
    while True:  # readiness poll, not a timed assertion
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)


SEPARATORS = ["\u2028", "\u2029", "\x85"]


@pytest.mark.parametrize("sep", SEPARATORS, ids=["u2028", "u2029", "nel"])
def test_a_line_separator_inside_a_json_string_is_not_a_line_break(client, llm, sep):
    text = f"第一段{sep}第二段"
    lines = [chat_line("q1", text), chat_line("q2", "你好")]
    raw = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    assert sep in raw  # json.dumps leaves it raw: the file is valid JSONL
    f = client.files.create(file=("zh.jsonl", raw.encode()), purpose="batch")
    batch = wait_final(
        client,
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    assert batch.status == "completed" and batch.request_counts.total == 2
    assert batch.request_counts.completed == 2
    sent = [r for r in llm.requests if any(text == m.get("content") for m in r.get("messages", []))]
    assert sent, "the request went upstream with the separator kept inside its text"


def test_output_lines_split_the_way_users_split_them(client, llm):
    """An answer holding U+2028 stays on its own output line even for `text.splitlines()`."""
    llm.add(r"^separators please$", "甲\u2028乙\u2029丙\x85丁")
    line = json.dumps(chat_line("only", "separators please")) + "\n"
    f = client.files.create(file=("a.jsonl", line.encode()), purpose="batch")
    batch = wait_final(
        client,
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    assert batch.output_file_id is not None
    text = client.files.content(batch.output_file_id).text
    rows = [json.loads(x) for x in text.splitlines()]
    assert len(rows) == 1
    answer = rows[0]["response"]["body"]["choices"][0]["message"]["content"]
    assert answer == "甲\u2028乙\u2029丙\x85丁"


@pytest.mark.parametrize("end", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_windows_and_old_mac_line_ends_number_lines_as_editors_do(client, end):
    lines = [json.dumps(chat_line("a", "hi")), json.dumps(chat_line("b", "hi")), "{not json"]
    f = client.files.create(file=("e.jsonl", end.join(lines).encode()), purpose="batch")
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert err.value.body["message"].startswith("input file line 3:")


def test_a_byte_order_mark_is_read_as_utf8(client, llm):
    raw = "\ufeff" + json.dumps(chat_line("bom", "你好"), ensure_ascii=False) + "\n"
    f = client.files.create(file=("bom.jsonl", raw.encode()), purpose="batch")
    batch = wait_final(
        client,
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    assert batch.status == "completed" and batch.request_counts.completed == 1


def test_output_expires_after_is_refused_not_ignored(client):
    f = client.files.create(
        file=("e.jsonl", (json.dumps(chat_line("e", "hi")) + "\n").encode()), purpose="batch"
    )
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(
            input_file_id=f.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 3600},
        )
    assert err.value.body["param"] == "output_expires_after"
    assert "files.delete" in err.value.body["message"]
    assert not [b for b in client.batches.list() if b.input_file_id == f.id]


def test_finalizing_a_finished_batch_again_leaves_no_orphan_file(client, served):
    """A runner that took a lapsed lease over finalizes a batch another runner already finished: nothing is
    written, the batch keeps its files."""
    from flywheel.server import batches_store
    from flywheel.server.batches_runner import BatchRunner

    server, _ = served
    f = client.files.create(
        file=("o.jsonl", (json.dumps(chat_line("o", "hi")) + "\n").encode()), purpose="batch"
    )
    batch = wait_final(
        client,
        client.batches.create(
            input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id,
    )
    outputs = {x.id for x in client.files.list(purpose="batch_output", limit=100)}
    row = batches_store.get_batch(server.state.store, batch.id)
    BatchRunner(server.state)._finalize(row, "completed")
    assert {x.id for x in client.files.list(purpose="batch_output", limit=100)} == outputs
    again = client.batches.retrieve(batch.id)
    assert (again.status, again.output_file_id) == ("completed", batch.output_file_id)


def test_a_key_revoked_mid_batch_stops_its_remaining_requests(served, llm):
    """Revoking a leaked key stops what its running batch still has to send: those requests become 401 lines."""
    server, _ = served
    key = server.state.keys.create("key-revoked", tenant="r")[0]
    c = OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    gate = threading.Event()
    llm.add(r"^revoke-hold", lambda _b: gate.wait(30) and "late")
    lines = [chat_line(f"r{i}", f"revoke-hold {i}") for i in range(6)]
    f = c.files.create(file=("r.jsonl", "\n".join(json.dumps(x) for x in lines).encode()), purpose="batch")
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    while len([r for r in llm.requests if "revoke-hold" in json.dumps(r)]) < 2:  # both slots in flight
        time.sleep(0.02)
    assert server.state.keys.revoke("key-revoked") == 1
    gate.set()
    admin = OpenAI(
        base_url=server.url + "/v1", api_key=server.state.keys.create("key-r2", tenant="r")[0], max_retries=0
    )
    done = wait_final(admin, batch.id)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 4)
    failed = [json.loads(x) for x in admin.files.content(done.error_file_id).text.splitlines()]
    assert {x["response"]["status_code"] for x in failed} == {401}
    assert len([r for r in llm.requests if "revoke-hold" in json.dumps(r)]) == 2


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("/v1/responses", {"model": "gpt", "input": "你好", "background": True}, "body.background"),
        ("/v1/responses", {"model": "gpt", "input": "hi", "top_logprobs": 2}, "body.top_logprobs"),
        ("/v1/completions", {"model": "gpt", "prompt": "hi", "echo": True}, "body.echo"),
        ("/v1/completions", {"model": "gpt", "prompt": [1, 2, 3]}, "body.prompt"),
    ],
    ids=["background", "logprobs", "echo", "token-ids"],
)
def test_a_body_the_route_refuses_is_a_400_at_create(client, endpoint, body, param):
    """Refused when the batch is created, naming line and field, not as an error line once it has run."""
    good = {"custom_id": "ok", "method": "POST", "url": endpoint, "body": {"model": "gpt", "input": "hi"}}
    if endpoint == "/v1/completions":
        good["body"] = {"model": "gpt", "prompt": "hi"}
    bad = {"custom_id": "bad", "method": "POST", "url": endpoint, "body": body}
    raw = "\n".join(json.dumps(x, ensure_ascii=False) for x in (good, bad)).encode()
    f = client.files.create(file=("u.jsonl", raw), purpose="batch")
    with pytest.raises(openai.BadRequestError) as err:
        client.batches.create(input_file_id=f.id, endpoint=endpoint, completion_window="24h")
    assert err.value.body["param"] == param
    assert err.value.body["message"].startswith("input file line 2")


def test_files_list_pages_up_to_10000_as_openai(client):
    """`client.files.list(limit=150).data` holds 150 files (OpenAI's page goes to 10,000), not a silent 100."""
    for i in range(105 - len(client.files.list(limit=10_000).data)):
        client.files.create(file=(f"l{i}.jsonl", b'{"x": 1}\n'), purpose="batch")
    page = client.files.list(limit=150)
    assert len(page.data) >= 105 and len(page.data) == len({f.id for f in page.data})
    for bad in ("0", "10001", "many"):
        with pytest.raises(openai.BadRequestError) as err:
            client.files.list(extra_query={"limit": bad})
        assert err.value.body["param"] == "limit" and "10,000" in err.value.body["message"]


def test_batches_list_pages_with_after_and_names_a_bad_after(client):
    f = client.files.create(
        file=("p.jsonl", (json.dumps(chat_line("p", "hi")) + "\n").encode()), purpose="batch"
    )
    made = [
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h").id
        for _ in range(3)
    ]
    listed = [b.id for b in client.batches.list(limit=1)]  # the SDK follows `after` page by page
    assert len(listed) == len(set(listed)) and set(made) <= set(listed)
    with pytest.raises(openai.NotFoundError) as err:
        client.batches.list(after="batch_" + "0" * 24)
    assert err.value.body["param"] == "after"


def test_a_batch_outlives_its_deleted_input_file(client, llm):
    """The batch's requests are kept with it: deleting the input file once the batch exists changes nothing."""
    lines = [chat_line(f"d{i}", f"删除 {i}") for i in range(3)]
    f = client.files.create(
        file=("d.jsonl", "\n".join(json.dumps(x) for x in lines).encode()), purpose="batch"
    )
    created = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert client.files.delete(f.id).deleted
    done = wait_final(client, created.id)
    assert (done.status, done.request_counts.completed, done.input_file_id) == ("completed", 3, f.id)
    assert done.output_file_id is not None
    client.files.delete(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(done.output_file_id)


def test_a_request_waiting_on_the_rate_limit_is_not_sent_after_a_cancel(served, llm):
    """Before: a request refused by its key's rpm slept out Retry-After and was sent again even after the batch
    was cancelled (and kept retrying past the completion window)."""
    server, _ = served
    key = server.state.keys.create("key-rpm", tenant="rpm", rpm=1)[0]
    c = OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    llm.add(r"^rpm-line", "ok")
    lines = [chat_line(f"p{i}", f"rpm-line {i}") for i in range(3)]
    f = c.files.create(file=("p.jsonl", "\n".join(json.dumps(x) for x in lines).encode()), purpose="batch")
    admin = OpenAI(base_url=server.url + "/v1", api_key=server.state.keys.create("key-rpm2", tenant="rpm")[0],
                   max_retries=0)
    batch = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    while len([r for r in llm.requests if "rpm-line" in json.dumps(r)]) < 1:  # the minute's one request went out
        time.sleep(0.02)
    admin.batches.cancel(batch.id)
    done = wait_final(admin, batch.id)
    assert done.status == "cancelled" and done.request_counts.completed == 1
    unrun = [json.loads(x) for x in admin.files.content(done.error_file_id).text.splitlines()]
    assert {x["error"]["code"] for x in unrun} == {"batch_cancelled"} and len(unrun) == 2
    assert len([r for r in llm.requests if "rpm-line" in json.dumps(r)]) == 1
