"""The Conversations and Responses APIs walked with the official `openai` SDK the way OpenAI's docs use them, every
raw body checked field by field against the SDK's own pydantic models (no unknown field but `store` and our
`flywheel`, no required one missing): conversations with items and metadata, items paged (after, limit, order,
include), retrieved and deleted, responses continuing a conversation (streamed, with tools, instructions,
truncation, include) and chains of previous_response_id. Also what OpenAI does that flywheel did not:
`store: false` with a conversation still adds the turn to it (only the response is not kept), an item_reference
names any item of the caller's conversations or any input item of a kept response, and an unknown `after` is a
404. The LLM is fake_llm."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from openai.types.conversations import Conversation, ConversationDeletedResource, ConversationItem
from openai.types.conversations.conversation_item_list import ConversationItemList
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_item_list import ResponseItemList
from pydantic import BaseModel, TypeAdapter
from server_support import serving, weather_and_memory_llm

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
"""
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
OURS = {"store", "flywheel"}  # on a response: OpenAI answers `store` too (the SDK has no field for it); ours


@pytest.fixture(scope="module")
def llm():
    with weather_and_memory_llm() as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("conversations_walk"), PROJECT.format(base=llm.url)) as server:
        yield server


def _client(live, tenant: str | None = None) -> openai.OpenAI:
    headers = {"x-flywheel-tenant": tenant} if tenant else None
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0, default_headers=headers)


@pytest.fixture(scope="module")
def client(live):
    return _client(live)


def _raw(live, method: str, path: str, **kwargs) -> Any:
    r = httpx.request(method, live.url + "/v1" + path, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def _strict(model: Any, raw: dict[str, Any]) -> Any:
    """`raw` validated by the SDK's `model` (a class or a TypeAdapter), and every field of it, at every depth,
    one the model knows (bar OURS on a response), every required field there."""
    parsed = model.validate_python(raw) if isinstance(model, TypeAdapter) else model.model_validate(raw)
    problems: list[str] = []

    def walk(obj: Any, data: Any, path: str) -> None:
        if isinstance(obj, BaseModel) and isinstance(data, dict):
            fields = type(obj).model_fields
            allowed = OURS if isinstance(obj, Response) else set()
            problems.extend(f"{path}.{k}: unknown" for k in data if k not in fields and k not in allowed)
            problems.extend(f"{path}.{k}: missing" for k, f in fields.items() if f.is_required() and k not in data)
            for k in fields.keys() & data.keys():
                walk(getattr(obj, k), data[k], f"{path}.{k}")
        elif isinstance(obj, list) and isinstance(data, list):
            for i, (o, d) in enumerate(zip(obj, data, strict=True)):
                walk(o, d, f"{path}[{i}]")

    walk(parsed, raw, "")
    assert problems == [], f"{type(parsed).__name__}: {problems}"
    return parsed


ITEM = TypeAdapter(ConversationItem)
EVENT = TypeAdapter(ResponseStreamEvent)


def _events(live, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", live.url + "/v1/responses", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


def _texts(items: list) -> list[tuple[str, str]]:
    return [(i.role, "".join(p.text for p in i.content)) if i.type == "message" else (i.type, i.call_id)
            for i in items]


def _items(client: openai.OpenAI, cid: str) -> list:
    return list(client.conversations.items.list(cid, order="asc"))


# ------------------------------------------------------------------ store: false with a conversation


@pytest.mark.parametrize("stream", [False, True])
def test_store_false_still_adds_the_turn_to_the_conversation_but_keeps_no_response(live, llm, client, stream):
    """OpenAI: a response's input and output items are added to its `conversation`; `store` governs the
    response object (retrieve, previous_response_id), not the conversation."""
    conv = client.conversations.create(items=[{"role": "user", "content": "Hi, my name is Ada."}])
    body = {"model": "gpt", "input": "What is my name?", "conversation": conv.id, "store": False}
    if stream:
        raw = _events(live, body)[-1]["response"]
    else:
        raw = _raw(live, "POST", "/responses", json=body)
    resp = _strict(Response, raw)
    assert raw["store"] is False and resp.conversation.id == conv.id and resp.output_text == "Your name is Ada."
    items = _items(client, conv.id)
    assert _texts(items) == [("user", "Hi, my name is Ada."), ("user", "What is my name?"),
                             ("assistant", "Your name is Ada.")]
    assert items[-1].id == resp.output[0].id
    for call in (lambda: client.responses.retrieve(resp.id), lambda: client.responses.input_items.list(resp.id),
                 lambda: client.responses.create(model="gpt", input="hi", previous_response_id=resp.id)):
        with pytest.raises(openai.NotFoundError) as err:
            call()
        assert "store: false" in err.value.body["message"]
    client.responses.create(model="gpt", input="What is my name again?", conversation=conv.id)
    assert [m["content"] for m in llm.requests[-1]["messages"]] == [
        "Hi, my name is Ada.", "What is my name?", "Your name is Ada.", "What is my name again?"]


# ------------------------------------------------------------------ item_reference


def test_an_item_reference_names_an_item_of_any_of_the_callers_conversations(live, llm, client):
    conv = client.conversations.create(items=[{"role": "user", "content": "Hello, my name is Ada."}])
    (said,) = _items(client, conv.id)
    ask = {"role": "user", "content": "What is my name?"}
    # without `conversation`: found in the caller's conversations
    r = client.responses.create(model="gpt", input=[{"type": "item_reference", "id": said.id}, ask])
    assert r.output_text == "Your name is Ada."
    # the answer of a store: false response lives only in the conversation it was added to
    unkept = client.responses.create(model="gpt", input=[ask], conversation=conv.id, store=False)
    again = client.responses.create(model="gpt", input=[
        {"type": "item_reference", "id": unkept.output[0].id}, {"role": "user", "content": "Thanks"}])
    assert llm.requests[-1]["messages"][0] == {"role": "assistant", "content": "Your name is Ada."}
    assert again.status == "completed"
    # with it, and when adding items to another conversation
    r = client.responses.create(model="gpt", conversation=conv.id, input=[{"type": "item_reference", "id": said.id}])
    assert r.status == "completed"
    other = client.conversations.create(items=[{"type": "item_reference", "id": said.id}])
    assert _texts(_items(client, other.id)) == [("user", "Hello, my name is Ada.")]
    added = client.conversations.items.create(other.id, items=[{"type": "item_reference", "id": unkept.output[0].id}])
    assert _strict(ConversationItemList, added.model_dump()).data[0].role == "assistant"
    # another tenant's item is exactly as absent as a missing one
    for ref in (said.id, "msg_nope"):
        with pytest.raises(openai.NotFoundError) as err:
            _client(live, "globex").responses.create(model="gpt", input=[{"type": "item_reference", "id": ref}, ask])
        assert err.value.body["param"] == "input.0.id" and err.value.body["code"] == "item_not_found"


def test_an_item_id_in_two_conversations_is_read_from_the_requests_own(llm, client):
    ada = client.conversations.create(items=[{"id": "msg_shared", "role": "user", "content": "My name is Ada."}])
    bob = client.conversations.create(items=[{"id": "msg_shared", "role": "user", "content": "My name is Bob."}])
    ref = [{"type": "item_reference", "id": "msg_shared"}, {"role": "user", "content": "What is my name?"}]
    assert client.responses.create(model="gpt", input=ref, store=False).output_text == "Your name is Bob."  # newest
    for conv, name in ((ada, "Ada"), (bob, "Bob")):
        # (the conversation's own history holds it too: only the reference's own text is checked here)
        client.responses.create(model="gpt", input=ref, conversation=conv.id)
        assert llm.requests[-1]["messages"][-2]["content"] == f"My name is {name}."


def test_an_item_reference_to_an_input_item_of_a_kept_response_is_that_item(llm, client):
    first = client.responses.create(model="gpt", input=[
        {"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hello, my name is Ada."},
        {"role": "user", "content": "What is my name?"}])
    listed = _strict(ResponseItemList, client.responses.input_items.list(first.id, order="asc").model_dump())
    developer, hello, _ = listed.data
    r = client.responses.create(model="gpt", input=[
        {"type": "item_reference", "id": developer.id}, {"type": "item_reference", "id": hello.id},
        {"role": "user", "content": "What is my name?"}])
    assert llm.requests[-1]["messages"][:2] == [{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": "Hello, my name is Ada."}]
    assert r.output_text == "Your name is Ada."
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="gpt", input=[{"type": "item_reference", "id": f"msg_{first.id[5:]}_in9"}])
    assert err.value.body["code"] == "item_not_found"


# ------------------------------------------------------------------ the SDK walk, shapes checked


def test_conversations_and_items_match_the_sdk_models(live, client):
    conv = client.conversations.create(metadata={"topic": "天气", "user": "ada"}, items=[
        {"type": "message", "role": "system", "content": "You are terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello, my name is Ada."}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi Ada!"}]},
        {"type": "function_call", "call_id": "call_0", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        {"type": "function_call_output", "call_id": "call_0", "output": '{"temp": 3}'}])
    _strict(Conversation, _raw(live, "GET", f"/conversations/{conv.id}"))
    assert conv.metadata == {"topic": "天气", "user": "ada"}
    ids = [i.id for i in _items(client, conv.id)]
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen, after = [], None
        while True:
            page = _strict(ConversationItemList, _raw(live, "GET", f"/conversations/{conv.id}/items", params={
                "order": order, "limit": 2, "include[]": ["message.output_text.logprobs"],
                **({"after": after} if after else {})}))
            seen += [i.id for i in page.data]
            assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
            if not page.has_more:
                break
            after = page.last_id
        assert seen == expected
    for item_id in ids:
        _strict(ITEM, _raw(live, "GET", f"/conversations/{conv.id}/items/{item_id}"))
    assert client.conversations.items.retrieve(ids[3], conversation_id=conv.id).type == "function_call"
    with pytest.raises(openai.NotFoundError) as err:  # as OpenAI answers an unknown `after`
        client.conversations.items.list(conv.id, after="msg_missing")
    assert err.value.body["param"] == "after"
    _strict(Conversation, _raw(live, "DELETE", f"/conversations/{conv.id}/items/{ids[0]}"))
    assert [i.id for i in _items(client, conv.id)] == ids[1:]
    updated = _strict(Conversation, _raw(live, "POST", f"/conversations/{conv.id}", json={"metadata": {"x": "y"}}))
    assert updated.metadata == {"x": "y"}
    gone = _strict(ConversationDeletedResource, _raw(live, "DELETE", f"/conversations/{conv.id}"))
    assert gone.deleted and gone.id == conv.id


def test_responses_in_a_conversation_match_the_sdk_models(live, llm, client):
    conv = client.conversations.create(items=[{"role": "user", "content": "Hello, my name is Ada."}])
    body = {"model": "gpt", "conversation": conv.id, "instructions": "Be brief.", "truncation": "auto",
            "include": ["reasoning.encrypted_content"], "metadata": {"k": "v"}}
    resp = _strict(Response, _raw(live, "POST", "/responses", json={**body, "input": "What is my name?"}))
    assert resp.output_text == "Your name is Ada." and resp.instructions == "Be brief."
    assert resp.truncation == "auto" and resp.completed_at is not None and resp.completed_at >= resp.created_at
    assert llm.requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}
    kept = _strict(Response, _raw(live, "GET", f"/responses/{resp.id}"))
    assert (kept.truncation, kept.conversation.id, kept.completed_at) == ("auto", conv.id, resp.completed_at)
    # streamed, with a tool: every event as the SDK's union has it
    events = _events(live, {**body, "input": "What is the weather in Paris?", "tools": [WEATHER]})
    for event in events:
        _strict(EVENT, event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    final = _strict(Response, events[-1]["response"])
    (call,) = final.output
    done = client.responses.create(model="gpt", conversation=conv.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}])
    assert done.output_text == "It is 21 degrees in Paris."
    page = _strict(ConversationItemList, _raw(live, "GET", f"/conversations/{conv.id}/items", params={"order": "asc"}))
    assert [i.type for i in page.data] == ["message"] * 3 + ["message", "function_call", "function_call_output",
                                                            "message"]
    assert page.data[4].id == call.id and "Be brief." not in json.dumps(page.model_dump())  # no instructions


def test_a_previous_response_id_chain_matches_the_sdk_models(live, client):
    first = client.responses.create(model="gpt", input="我叫李雷。", instructions="Answer briefly.")
    second = client.responses.create(model="gpt", input="What is my name?", previous_response_id=first.id)
    third = client.responses.create(model="gpt", input="What is the weather in Paris?", tools=[WEATHER],
                                    previous_response_id=second.id)
    assert second.output_text == "Your name is 李雷." and third.output[0].type == "function_call"
    for resp in (first, second, third):
        kept = _strict(Response, _raw(live, "GET", f"/responses/{resp.id}"))
        assert kept.output == resp.output and kept.truncation == "disabled"
        _strict(ResponseItemList, _raw(live, "GET", f"/responses/{resp.id}/input_items"))
    assert client.responses.retrieve(third.id).previous_response_id == second.id


def test_truncation_is_echoed_and_a_bad_value_named(live, client):
    assert client.responses.create(model="gpt", input="hi", truncation="disabled").truncation == "disabled"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="gpt", input="hi", extra_body={"truncation": "sometimes"})
    assert err.value.body["param"] == "truncation"
