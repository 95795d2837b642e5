"""Token usage of a batch on `flywheel serve`, read with the official `openai` SDK: an upstream's prompt-cache reads
(fake_llm's `Cached` reply) come back in each output line's `usage.prompt_tokens_details.cached_tokens` exactly as
a live chat completion reports them, and the batch object's `usage.input_tokens_details.cached_tokens` is their
sum (as are its input, output and total tokens)."""

from __future__ import annotations

import json
import time

import pytest
from openai import OpenAI
from openai.types import Batch
from openai.types.chat import ChatCompletion
from server_support import LiveServer

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM
from flywheel.testing.fake_llm_wire import Cached

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
retrieval: {{embedder: none}}
server: {{batch_concurrency: 2, online_evaluators: false, embed_worker: false}}
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from flywheel.server import create_app

    with FakeLLM() as llm:
        llm.add(r"shared prefix", Cached("Noted.", 4))
        llm.add(r"缓存", Cached("好的。", 3))
        root = tmp_path_factory.mktemp("batch_usage")
        (root / "flywheel.yaml").write_text(YAML.format(base=llm.base_url), encoding="utf-8")
        server = LiveServer(create_app(Project.load(root))).start()
        try:
            yield OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        finally:
            server.stop()


def _line(cid: str, text: str) -> dict:
    return {"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt", "messages": [{"role": "user", "content": text}]}}


def _wait_final(c: OpenAI, batch_id: str) -> Batch:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # readiness poll with a deadline, not a timed assertion
        batch = c.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish")


def test_batch_output_and_totals_carry_cached_tokens(client):
    texts = ["the long shared prefix, part one", "the long shared prefix, part two", "使用缓存的问题",
             "plain question"]
    live = [client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": t}]) for t in texts]
    lines = [_line(f"r{i}", t) for i, t in enumerate(texts)]
    f = client.files.create(file=("in.jsonl", ("\n".join(json.dumps(x, ensure_ascii=False) for x in lines)).encode()),
                            purpose="batch")
    done = _wait_final(client, client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                                     completion_window="24h").id)
    Batch.model_validate(done.model_dump())
    assert done.status == "completed" and done.request_counts.completed == 4, done
    out = {x["custom_id"]: x for x in map(json.loads, client.files.content(done.output_file_id).text.splitlines())}
    bodies = [ChatCompletion.model_validate(out[f"r{i}"]["response"]["body"]) for i in range(4)]
    for body, same in zip(bodies, live, strict=True):
        assert body.usage.prompt_tokens_details.cached_tokens == same.usage.prompt_tokens_details.cached_tokens
        assert (body.usage.prompt_tokens, body.usage.completion_tokens) == \
            (same.usage.prompt_tokens, same.usage.completion_tokens)
    assert [b.usage.prompt_tokens_details.cached_tokens for b in bodies] == [4, 4, 3, 0]
    usage = done.usage
    assert usage is not None
    assert usage.input_tokens_details.cached_tokens == 11
    assert usage.input_tokens == sum(b.usage.prompt_tokens for b in bodies)
    assert usage.output_tokens == sum(b.usage.completion_tokens for b in bodies)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens_details.reasoning_tokens == 0  # the upstream reported none


def test_a_responses_batch_sums_input_tokens_details(client):
    lines = [{"custom_id": f"x{i}", "method": "POST", "url": "/v1/responses",
              "body": {"model": "gpt", "input": text}} for i, text in enumerate(["the shared prefix again", "hi"])]
    f = client.files.create(file=("in.jsonl", "\n".join(json.dumps(x) for x in lines).encode()), purpose="batch")
    done = _wait_final(client, client.batches.create(input_file_id=f.id, endpoint="/v1/responses",
                                                     completion_window="24h").id)
    assert done.status == "completed" and done.request_counts.completed == 2, done
    out = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    details = [x["response"]["body"]["usage"]["input_tokens_details"]["cached_tokens"] for x in out]
    assert details == [4, 0]
    assert done.usage is not None and done.usage.input_tokens_details.cached_tokens == 4


def test_token_details_are_read_from_either_usage_shape_and_summed_once(store_url):
    """The store side, for details the gateway may report (reasoning tokens): summed from the recorded requests,
    a request recorded twice (a runner that took the batch over) counted once."""
    from flywheel.server import batches_store
    from flywheel.server.batches_runner import _tokens
    from flywheel.server.keys import Principal
    from flywheel.store import Store, schema_diff

    chat = {"usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
                      "prompt_tokens_details": {"cached_tokens": 6},
                      "completion_tokens_details": {"reasoning_tokens": 5}}}
    responses = {"usage": {"input_tokens": 3, "output_tokens": 9, "input_tokens_details": {"cached_tokens": 2},
                           "output_tokens_details": {"reasoning_tokens": 4}}}
    assert _tokens(chat) == batches_store.Tokens(10, 7, 6, 5)
    assert _tokens(responses) == batches_store.Tokens(3, 9, 2, 4)
    assert _tokens({"usage": {"prompt_tokens": 4, "total_tokens": 4}}) == batches_store.Tokens(4, 0, 0, 0)
    assert _tokens({"error": {"code": "x"}}) == batches_store.Tokens()
    with Store.open(store_url) as store:
        assert schema_diff(store, ["batch_request_usage"]) == []
        lines = [batches_store.Line(n, f"c{n}", {"model": "gpt"}) for n in (1, 2, 3)]
        bid = batches_store.create_batch(store, principal=Principal(name="open", tenant="default"), tenant="default",
                                         endpoint="/v1/chat/completions", input_file_id="file-x", window_s=60,
                                         meta={}, model="gpt", lines=lines, now=1.0)
        for n, body in ((1, chat), (2, responses), (1, chat), (3, {"usage": {"prompt_tokens": 1}})):
            batches_store.record(store, bid, n, True, {"n": n}, _tokens(body), 2.0)
        tally = batches_store.counts(store, bid)
        usage = batches_store.batch_payload(batches_store.get_batch(store, bid), tally)["usage"]
    assert usage == {"input_tokens": 14, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 16,
                     "output_tokens_details": {"reasoning_tokens": 9}, "total_tokens": 30}
