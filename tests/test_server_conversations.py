"""The OpenAI Conversations API on a real `flywheel serve` app, driven by the official `openai` SDK in front of
fake_llm: conversations and their items (create / retrieve / update / delete, items listed a page at a time),
`responses.create(conversation=…)` prepending the conversation and appending the input and output items
(streamed and not, English and Chinese), tenants, 404s and 400s, secrets scrubbed before they are stored, and a
conversation that outlives its server (SQLite and PostgreSQL). Raw bodies are checked against the SDK's own
pydantic models."""

from __future__ import annotations

import re

import httpx
import openai
import pytest
from openai.types.conversations import Conversation, ConversationDeletedResource, ConversationItem
from openai.types.conversations.conversation_item_list import ConversationItemList
from pydantic import TypeAdapter
from server_support import serving

from flywheel.testing.fake_llm import FakeLLM, ToolCall

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  helpdesk: {{kind: chat, model: gpt}}
"""
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
SECRET = "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a"
ITEM = TypeAdapter(ConversationItem)


def _from_history(body: dict) -> str:
    """Answers only from earlier turns: the name a previous user message gave (English or Chinese)."""
    earlier = " ".join(m["content"] for m in body["messages"][:-1] if isinstance(m.get("content"), str))
    found = re.search(r"my name is (\w+)", earlier, re.IGNORECASE)
    if found:
        return f"Your name is {found.group(1)}."
    found = re.search(r"我叫(\w+?)[。，]", earlier)
    return f"你叫{found.group(1)}。" if found else "I do not know."


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"what is my name|我叫什么", _from_history)
        server.add(r"weather in Paris", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
        server.add(r'"temp": ?21', "It is 21 degrees in Paris.")
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("conversations"), PROJECT.format(base=llm.url)) as server:
        yield server


def _client(live, tenant: str | None = None) -> openai.OpenAI:
    headers = {"x-flywheel-tenant": tenant} if tenant else None
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0, default_headers=headers)


@pytest.fixture(scope="module")
def client(live):
    return _client(live)


def _raw(live, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, live.url + "/v1" + path, **kwargs)


def _items(client: openai.OpenAI, cid: str) -> list:
    return list(client.conversations.items.list(cid, order="asc"))


def _texts(items: list) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if item.type == "message":
            out.append((item.role, "".join(getattr(p, "text", "") for p in item.content)))
        else:
            out.append((item.type, getattr(item, "call_id", "")))
    return out


def test_create_retrieve_update_delete(live, client):
    conv = client.conversations.create(metadata={"topic": "intro"}, items=[
        {"type": "message", "role": "user", "content": "Hello, my name is Ada."},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "你好，Ada！"}]}])
    assert conv.object == "conversation" and conv.id.startswith("conv_") and conv.metadata == {"topic": "intro"}
    raw = _raw(live, "GET", f"/conversations/{conv.id}").json()
    assert Conversation.model_validate(raw) == conv
    assert client.conversations.retrieve(conv.id).created_at == conv.created_at
    updated = client.conversations.update(conv.id, metadata={"topic": "名字", "lang": "zh"})
    assert updated.metadata == {"topic": "名字", "lang": "zh"} == client.conversations.retrieve(conv.id).metadata
    assert _texts(_items(client, conv.id)) == [("user", "Hello, my name is Ada."), ("assistant", "你好，Ada！")]
    deleted = client.conversations.delete(conv.id)
    assert ConversationDeletedResource.model_validate(deleted.model_dump()) == deleted
    assert deleted.deleted is True and deleted.id == conv.id and deleted.object == "conversation.deleted"
    for call in (lambda: client.conversations.retrieve(conv.id), lambda: _items(client, conv.id),
                 lambda: client.conversations.delete(conv.id)):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert err.value.body["code"] == "conversation_not_found"


def test_items_are_paged_retrieved_and_deleted(live, client):
    conv = client.conversations.create()
    assert _items(client, conv.id) == []
    added = client.conversations.items.create(conv.id, items=[
        {"type": "message", "role": "user", "content": f"第{i}条消息 message {i}"} for i in range(7)])
    assert ConversationItemList.model_validate(added.model_dump()).object == "list"
    ids = [i.id for i in added.data]
    assert len(set(ids)) == 7 and added.first_id == ids[0] and added.last_id == ids[-1] and not added.has_more
    raw = _raw(live, "GET", f"/conversations/{conv.id}/items", params={"limit": 3}).json()
    assert [d["id"] for d in raw["data"]] == ids[::-1][:3] and raw["has_more"] is True  # desc by default
    assert [ITEM.validate_python(d).id for d in raw["data"]] == ids[::-1][:3]
    # the SDK pages with `after`: asc and desc, 2 at a time
    asc = client.conversations.items.list(conv.id, order="asc", limit=2)
    assert [i.id for i in asc] == ids and len(asc.data) == 2 and asc.has_more
    assert [i.id for i in client.conversations.items.list(conv.id, limit=2)] == ids[::-1]
    after = client.conversations.items.list(conv.id, order="asc", after=ids[4], limit=100)
    assert [i.id for i in after.data] == ids[5:] and not after.has_more
    item = client.conversations.items.retrieve(ids[2], conversation_id=conv.id)
    assert item.type == "message" and item.content[0].type == "input_text" and item.content[0].text == "第2条消息 message 2"
    assert item.status == "completed" and item.role == "user"
    back = client.conversations.items.delete(ids[2], conversation_id=conv.id)
    assert back.id == conv.id and back.object == "conversation"
    assert [i.id for i in _items(client, conv.id)] == ids[:2] + ids[3:]
    with pytest.raises(openai.NotFoundError) as err:
        client.conversations.items.retrieve(ids[2], conversation_id=conv.id)
    assert err.value.body["code"] == "item_not_found"
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(ids[2], conversation_id=conv.id)


def test_a_response_continues_and_extends_the_conversation(live, llm, client):
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "Hi, my name is Ada."},
                                              {"type": "message", "role": "assistant", "content": "Hello Ada!"}])
    resp = client.responses.create(model="gpt", input="What is my name?", conversation=conv.id,
                                   instructions="Be brief.")
    assert resp.output_text == "Your name is Ada." and resp.conversation.id == conv.id
    assert [(m["role"], m["content"]) for m in llm.requests[-1]["messages"]] == [
        ("system", "Be brief."), ("user", "Hi, my name is Ada."), ("assistant", "Hello Ada!"),
        ("user", "What is my name?")]
    items = _items(client, conv.id)
    assert _texts(items) == [("user", "Hi, my name is Ada."), ("assistant", "Hello Ada!"),
                             ("user", "What is my name?"), ("assistant", "Your name is Ada.")]
    assert items[-1].id == resp.output[0].id  # the output items keep their ids
    # the response's own input items are this request's input only; a retrieve answers the conversation too
    assert [i.content[0].text for i in client.responses.input_items.list(resp.id)] == ["What is my name?"]
    assert client.responses.retrieve(resp.id).conversation.id == conv.id
    from flywheel.tracing import get_trace, tracer

    tracer.flush()
    root = get_trace(live.state.store, resp.id.removeprefix("resp_"))["spans"][0]
    assert root["attributes"]["flywheel.response.conversation"] == conv.id
    # streamed, in Chinese, with {"id": …}
    zh = client.conversations.create(items=[{"type": "message", "role": "user", "content": "你好，我叫李雷。"}])
    with client.responses.stream(model="gpt", input="我叫什么名字？", conversation={"id": zh.id}) as events:
        final = events.get_final_response()
    assert final.output_text == "你叫李雷。" and final.conversation.id == zh.id
    assert _texts(_items(client, zh.id)) == [("user", "你好，我叫李雷。"), ("user", "我叫什么名字？"),
                                              ("assistant", "你叫李雷。")]
    raw = _raw(live, "GET", f"/conversations/{zh.id}/items").json()
    assert [ITEM.validate_python(d).type for d in raw["data"]] == ["message"] * 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_round_trip_in_a_conversation(live, llm, client, stream):
    conv = client.conversations.create()
    ask = "What is the weather in Paris?"
    if stream:
        with client.responses.stream(model="gpt", input=ask, tools=[WEATHER], conversation=conv.id) as events:
            first = events.get_final_response()
    else:
        first = client.responses.create(model="gpt", input=ask, tools=[WEATHER], conversation=conv.id)
    (call,) = first.output
    assert call.type == "function_call" and call.call_id == "call_w1"
    done = client.responses.create(model="gpt", tools=[WEATHER], conversation=conv.id, input=[
        {"type": "function_call_output", "call_id": "call_w1", "output": '{"temp": 21}'}])
    assert done.output_text == "It is 21 degrees in Paris."
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather" and sent[2]["tool_call_id"] == "call_w1"
    raw = _raw(live, "GET", f"/conversations/{conv.id}/items", params={"order": "asc"}).json()
    kinds = [ITEM.validate_python(d).type for d in raw["data"]]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    assert raw["data"][1]["id"] == call.id and raw["data"][1]["arguments"] == call.arguments


def test_what_the_agents_sdk_session_sends_round_trips(client):
    """OpenAIConversationsSession (openai-agents): create(items=[]), list asc and dump each item, send them back as
    `input` with the new message, then add the new input and the output items in one items.create."""
    cid = client.conversations.create(items=[]).id
    new = {"role": "user", "content": "Hello, my name is Ada."}
    for ask in (new, {"role": "user", "content": "What is my name?"}):
        history = [i.model_dump(exclude_unset=True) for i in client.conversations.items.list(cid, order="asc")]
        resp = client.responses.create(model="gpt", input=[*history, ask])
        client.conversations.items.create(cid, items=[ask, *[o.model_dump(exclude_unset=True) for o in resp.output]])
    assert resp.output_text == "Your name is Ada."
    items = _items(client, cid)
    assert [i.role for i in items] == ["user", "assistant", "user", "assistant"] and items[-1].id == resp.output[0].id
    newest = client.conversations.items.list(cid, limit=2)  # get_items(limit=2): newest first
    assert [i.id for i in newest.data] == [i.id for i in items[:1:-1]] and newest.has_more


def test_another_tenants_conversation_is_exactly_like_a_missing_one(live):
    acme, globex = _client(live, "acme"), _client(live, "globex")
    mine = acme.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    for cid in (mine.id, "conv_" + "0" * 48):
        calls = [lambda c=cid: globex.conversations.retrieve(c),
                 lambda c=cid: globex.conversations.update(c, metadata={"x": "y"}),
                 lambda c=cid: globex.conversations.delete(c),
                 lambda c=cid: list(globex.conversations.items.list(c)),
                 lambda c=cid: globex.conversations.items.create(c, items=[{"role": "user", "content": "hi"}])]
        for call in calls:
            with pytest.raises(openai.NotFoundError) as err:
                call()
            assert err.value.body["message"] == f"no conversation with id {cid!r} was found"
        with pytest.raises(openai.NotFoundError) as err:
            globex.responses.create(model="gpt", input="What is my name?", conversation=cid)
        assert err.value.body["param"] == "conversation"
    assert [i.type for i in _items(acme, mine.id)] == ["message"]  # untouched by the other tenant


@pytest.mark.parametrize(("call", "param"), [
    (lambda c, cid: c.responses.create(model="gpt", input="hi", conversation=cid, previous_response_id="resp_1"),
     "conversation"),
    (lambda c, cid: c.responses.create(model="app:helpdesk", input="hi", conversation=cid), "conversation"),
    (lambda c, cid: c.responses.create(model="gpt", input="hi", conversation={"name": "x"}), "conversation"),
    (lambda c, cid: c.conversations.items.list(cid, limit=0), "limit"),
    (lambda c, cid: c.conversations.items.list(cid, order="sideways"), "order"),
    (lambda c, cid: c.conversations.items.create(cid, items=[{"type": "reasoning", "summary": [{"type": "x"}]}]),
     "items.0.summary"),  # a reasoning item is a conversation item (as on OpenAI); a malformed one is not
    (lambda c, cid: c.conversations.items.create(cid, items=[
        {"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]), "items.0.content.0.type"),
    (lambda c, cid: c.conversations.items.create(cid, items=[]), "items"),
    (lambda c, cid: c.conversations.items.create(cid, items=[{"role": "user", "content": "x"}] * 21), "items"),
    (lambda c, cid: c.conversations.create(metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
    (lambda c, cid: c.conversations.create(extra_body={"colour": "red"}), "colour"),
    (lambda c, cid: c.conversations.items.create(cid, items=[{"id": "msg_mine", "role": "user", "content": "x"},
                                                             {"id": "msg_mine", "role": "user", "content": "y"}]),
     "items.1.id"),
])
def test_bad_requests_are_400_naming_the_field(client, call, param):
    cid = client.conversations.create().id
    with pytest.raises(openai.BadRequestError) as err:
        call(client, cid)
    assert err.value.status_code == 400 and err.value.body["param"] == param
    assert _items(client, cid) == []  # nothing half-added


def test_an_id_given_by_the_caller_is_kept_and_unique(client):
    cid = client.conversations.create(items=[{"id": "msg_mine", "role": "user", "content": "x"}]).id
    with pytest.raises(openai.BadRequestError) as err:
        client.conversations.items.create(cid, items=[{"id": "msg_mine", "role": "user", "content": "again"}])
    assert err.value.body["code"] == "duplicate_item"
    # a response whose input repeats an id the conversation has gets a new id for it (the answer is kept)
    client.responses.create(model="gpt", conversation=cid, input=[
        {"id": "msg_mine", "type": "message", "role": "user", "content": "What is my name?"}])
    ids = [i.id for i in _items(client, cid)]
    assert len(ids) == 3 == len(set(ids)) and ids[0] == "msg_mine"


def test_an_item_reference_is_stored_as_the_item_it_names(client):
    resp = client.responses.create(model="gpt", input="What is my name?")
    cid = client.conversations.create(items=[{"type": "item_reference", "id": resp.output[0].id}]).id
    (item,) = _items(client, cid)
    assert item.id == resp.output[0].id and item.role == "assistant" and item.content[0].text == resp.output_text
    with pytest.raises(openai.NotFoundError) as err:
        client.conversations.items.create(cid, items=[{"type": "item_reference", "id": "msg_nope"}])
    assert err.value.body["param"] == "items.0.id"


def test_secrets_are_scrubbed_before_they_are_stored(live, client):
    from sqlalchemy import select

    from flywheel.store.schema_conversations import conversation_items

    conv = client.conversations.create(items=[{"role": "user", "content": f"my key is {SECRET} please keep it"}])
    client.responses.create(model="gpt", conversation=conv.id, input=f"What is my name? api_key={SECRET}")
    assert SECRET not in _stored_text(live)
    texts = [i.content[0].text for i in _items(client, conv.id) if i.role == "user"]
    assert texts == ["my key is [REDACTED] please keep it", "What is my name? api_key=[REDACTED]"]
    with live.state.store.engine.connect() as conn:
        rows = [str(r[0]) for r in conn.execute(select(conversation_items.c.item))]
    assert rows and not any(SECRET in r for r in rows)


def _stored_text(live) -> str:
    """Everything the conversation tables hold, as text."""
    from sqlalchemy import select

    from flywheel.store.schema_conversations import conversation_items, conversations

    with live.state.store.engine.connect() as conn:
        return " ".join(str(r) for t in (conversations, conversation_items) for r in conn.execute(select(t)))


def test_a_conversation_outlives_its_server(tmp_path, llm, store_url):
    from server_support import LiveServer

    from flywheel.config import Project
    from flywheel.server import create_app
    from flywheel.store.db import schema_diff

    (tmp_path / "flywheel.yaml").write_text(f"store: '{store_url}'\n" + PROJECT.format(base=llm.url),
                                            encoding="utf-8")
    first = LiveServer(create_app(Project.load(tmp_path))).start()
    try:
        c = _client(first)
        conv = c.conversations.create(metadata={"who": "Ada"}, items=[{"role": "user", "content": "My name is Ada."}])
        c.responses.create(model="gpt", conversation=conv.id, input="What is my name?")
        assert schema_diff(first.state.store, ["conversations", "conversation_items"]) == []
    finally:
        first.stop()
    second = LiveServer(create_app(Project.load(tmp_path))).start()
    try:
        c = _client(second)
        assert c.conversations.retrieve(conv.id).metadata == {"who": "Ada"}
        assert _texts(_items(c, conv.id)) == [("user", "My name is Ada."), ("user", "What is my name?"),
                                              ("assistant", "Your name is Ada.")]
        again = c.responses.create(model="gpt", conversation=conv.id, input="And what is my name now?")
        assert again.output_text == "Your name is Ada."
    finally:
        second.stop()
