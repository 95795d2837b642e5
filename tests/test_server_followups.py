"""Server follow-ups: `GET /` (a browser to /ui, an API client a JSON index, nothing more without a key when keys
are required), a stream whose client left before the first byte is settled on any ASGI server, review queues
over HTTP take the CLI's time forms, and a message's text parts reach the model joined with a newline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
import pytest
from server_support import serving

from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0,
        price: {{input: 125000.0, output: 125000.0}}}}
cache: {{exact: false}}
"""


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def open_live(tmp_path_factory, llm):
    """A server with no key ever created, on 127.0.0.1: served open."""
    with serving(tmp_path_factory.mktemp("followups_open"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_live(tmp_path_factory, llm):
    """A server where a key exists, so every caller needs one."""
    with serving(tmp_path_factory.mktemp("followups_keyed"), PROJECT.format(base=llm.url)) as server:
        key, _ = server.state.keys.create("reader", budget_usd=1000.0)
        server.key = key
        yield server


# -- GET / ---------------------------------------------------------------------------------------------------------

def test_a_browser_at_the_root_is_sent_to_the_dashboard(open_live, keyed_live):
    for live in (open_live, keyed_live):
        r = httpx.get(live.url + "/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
                      follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "/ui"
    # the dashboard then asks for a login when keys are required (its own rule, unchanged)
    page = httpx.get(keyed_live.url + "/", headers={"accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 200 and "/ui/login" in str(page.url)


def test_an_api_client_at_the_root_gets_an_index(open_live):
    from flywheel.server.app import _version

    r = httpx.get(open_live.url + "/")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    index = r.json()
    assert index["name"] == "flywheel" and index["version"] == _version()
    links = dict(index["links"])
    assert links.pop("base_url") == open_live.url + "/v1" and links["ui"] == open_live.url + "/ui"
    for link in links.values():  # every route it names answers
        assert httpx.get(link, headers={"accept": "application/json"}).status_code != 404, link


def test_the_index_tells_a_caller_without_a_key_nothing_more_than_the_public_addresses(keyed_live):
    anonymous = httpx.get(keyed_live.url + "/").json()
    assert "version" not in anonymous and set(anonymous) == {"name", "links"}
    assert httpx.get(keyed_live.url + "/", headers={"authorization": "Bearer fw-wrong"}).json() == anonymous
    with_key = httpx.get(keyed_live.url + "/", headers={"authorization": f"Bearer {keyed_live.key}"}).json()
    assert "version" in with_key and with_key["links"] == anonymous["links"]
    assert keyed_live.key not in json.dumps(with_key)


# -- a stream whose client is gone before its first byte ------------------------------------------------------------

STREAMS = {  # route → the streaming body asking `question` of the `gpt` alias
    "/v1/chat/completions": lambda q: {"model": "gpt", "stream": True, "messages": [{"role": "user", "content": q}]},
    "/v1/messages": lambda q: {"model": "gpt", "stream": True, "max_tokens": 64,
                               "messages": [{"role": "user", "content": q}]},
    "/v1/responses": lambda q: {"model": "gpt", "stream": True, "input": q},
    "/v1/completions": lambda q: {"model": "gpt", "stream": True, "prompt": q},  # first event: the first piece
}


def _stream_scope(path: str, key: str, spec_version: str) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "headers": [(b"host", b"test"), (b"content-type", b"application/json"),
                        (b"authorization", f"Bearer {key}".encode())]}


async def _hang_up_at_once(app: Any, path: str, key: str, question: str, spec_version: str) -> list[dict]:
    """POST a stream straight to the ASGI app, the client gone before any byte: every receive after the body is
    http.disconnect, and (as uvicorn does for a closed socket) sending raises OSError."""
    from starlette.requests import ClientDisconnect

    sent: list[dict] = []
    bodies = [{"type": "http.request", "body": json.dumps(STREAMS[path](question)).encode(), "more_body": False}]

    async def receive() -> dict:
        return bodies.pop(0) if bodies else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            raise OSError("the client closed the connection")

    with contextlib.suppress(OSError, ClientDisconnect):  # how the failed send surfaces is not under test
        await app(_stream_scope(path, key, spec_version), receive, send)
    return sent


@pytest.mark.parametrize(("path", "spec_version"), [("/v1/chat/completions", "2.0"), ("/v1/chat/completions", "2.4"),
                                                    ("/v1/messages", "2.4"), ("/v1/responses", "2.3"),
                                                    ("/v1/completions", "2.4")])
def test_a_stream_abandoned_before_its_first_byte_is_settled(tmp_path, llm, path, spec_version):
    """The first send fails (the client is gone), so Starlette never iterates the events generator and its
    `finally` cannot settle: before the fix the budget reservation stayed held and the trace never ended.
    Both ways Starlette runs a stream (a disconnect listener below ASGI spec 2.4) are driven."""
    from flywheel.config import Project
    from flywheel.server import create_app
    from flywheel.tracing import get_trace, tracer
    from flywheel.types import Message

    question = f"abandoned before the first byte ({path} {spec_version})"
    llm.add(question, "An answer nobody reads.")
    (tmp_path / "flywheel.yaml").write_text(PROJECT.format(base=llm.url), encoding="utf-8")
    app = create_app(Project.load(tmp_path))
    state = app.state.flywheel
    try:
        key, _ = state.keys.create("gone", budget_usd=1000.0)
        sent = asyncio.run(_hang_up_at_once(app, path, key, question, spec_version))
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 200
        trace_id = dict(start["headers"])[b"x-flywheel-trace-id"].decode()
        row = next(r for r in state.keys.list() if r["name"] == "gone")
        prompt_cost = state.cut_stream_usage("gpt", [Message(role="user", content=question)], "")[2]
        assert row["reserved_usd"] == 0.0
        assert row["spent_usd"] >= prompt_cost > 0  # the upstream was sent the prompt: it is billed
        tracer.flush()
        trace = get_trace(state.store, trace_id)
        assert trace is not None and trace["status"] == "error"
    finally:
        state.close()


# -- review queues: since/until as the CLI takes them ---------------------------------------------------------------

def _traces(live, n: int) -> None:
    from flywheel.tracing import tracer

    for i in range(n):
        r = httpx.post(live.url + "/v1/chat/completions",
                       json={"model": "gpt", "messages": [{"role": "user", "content": f"a trace to review {i}"}]})
        assert r.status_code == 200, r.text
    tracer.flush()


def test_review_queue_since_takes_an_age_a_date_or_unix_seconds(open_live, llm):
    llm.add("a trace to review", "Reviewed.")
    _traces(open_live, 3)  # one for each queue: a queued trace is not sampled again
    before = time.time()
    made = httpx.post(open_live.url + "/v1/review/queues", json={"name": "last-day", "since": "24h", "n": 1})
    assert made.status_code == 201, made.text
    assert before - 86_400 - 5 <= made.json()["since"] <= time.time() - 86_400
    dated = httpx.post(open_live.url + "/v1/review/queues",
                       json={"name": "dated", "since": "2020-01-01", "until": "2200-01-01", "n": 1})
    assert dated.status_code == 201, dated.text
    assert dated.json()["since"] == 1_577_836_800.0
    unix = httpx.post(open_live.url + "/v1/review/queues", json={"name": "unix", "since": 1_577_836_800, "n": 1})
    assert unix.status_code == 201, unix.text
    assert unix.json()["since"] == 1_577_836_800.0


def test_review_queue_since_in_no_known_form_is_a_400_naming_it(open_live):
    r = httpx.post(open_live.url + "/v1/review/queues", json={"since": "yesterday"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "since" and "'yesterday'" in error["message"] and "24h" in error["message"]
    far = httpx.post(open_live.url + "/v1/review/queues", json={"until": "9999-01-01"})
    assert far.status_code == 400 and "until" in far.json()["error"]["message"]


# -- content parts --------------------------------------------------------------------------------------------------

def test_text_parts_reach_the_model_as_separate_lines(open_live, llm):
    llm.add("part one", "Joined.")
    parts = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    r = httpx.post(open_live.url + "/v1/chat/completions",
                   json={"model": "gpt", "messages": [{"role": "user", "content": parts}]})
    assert r.status_code == 200, r.text
    sent = [q for q in llm.requests if q.get("path", "").endswith("/chat/completions")][-1]
    assert sent["messages"][-1]["content"] == "part one\npart two"


def test_one_text_part_is_the_same_request_as_a_string():
    from flywheel.server.openai_proxy import ContentPart, text_of

    assert text_of([ContentPart(type="text", text="你好")], "messages.0.content") == "你好"
    assert text_of("你好", "messages.0.content") == "你好"
