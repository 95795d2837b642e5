"""What agent frameworks and multi-provider clients (OpenAI Agents SDK, Vercel AI SDK, LiteLLM, Instructor,
Pydantic AI, DSPy) send to `flywheel serve`, reproduced at the wire with the official `openai` / `anthropic` SDKs
and httpx (those clients are not installed in CI): `GET /v1/responses/{id}/input_items`, `parallel_tool_calls`
reaching the upstream (and Anthropic's `disable_parallel_tool_use` both ways), and the Anthropic wire's
`metadata.session_id` / `x-flywheel-session-id` reaching the request metadata (sticky route arms) and a chat app's
memory. Upstream is fake_llm."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from server_support import serving, weather_and_memory_llm

from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  claude: {{provider: anthropic, base_url: "{base}", model: fake-claude, max_retries: 0}}
  arm_a: {{provider: openai_compat, base_url: "{base}/v1", model: fake-a, max_retries: 0}}
  arm_b: {{provider: openai_compat, base_url: "{base}/v1", model: fake-b, max_retries: 0}}
routes:
  ab: {{split: {{arm_a: 50, arm_b: 50}}, sticky: session}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  assistant: {{kind: chat, model: gpt}}
  docs: {{kind: docs_qa, model: gpt}}
"""
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CHAT_WEATHER = {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
ANTHROPIC_WEATHER = {"name": "get_weather", "description": "Current weather in a city",
                     "input_schema": WEATHER["parameters"]}


@pytest.fixture(scope="module")
def llm():
    with weather_and_memory_llm() as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, llm):
    with serving(tmp_path_factory.mktemp("agent_sdks"), PROJECT.format(base=llm.url)) as server:
        yield server


@pytest.fixture(scope="module")
def oai(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def ant(live):
    return anthropic.Anthropic(base_url=live.url, api_key="unused", max_retries=0)


def _last(llm: FakeLLM) -> dict:
    return llm.requests[-1]


# ------------------------------------------------------------------------------ GET /v1/responses/{id}/input_items


@pytest.mark.parametrize("ask", ["What is the weather in Paris?", "巴黎现在的天气怎么样？"])
def test_input_items_list_the_request_input_in_order_paged(oai, ask):
    # the Agents SDK and the Vercel AI SDK send [developer, user, *output, function_call_output]
    sent = [{"role": "developer", "content": "Answer in one line."}, {"role": "user", "content": ask}]
    first = oai.responses.create(model="gpt", instructions="Be brief.", input=sent, tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    second = oai.responses.create(model="gpt", instructions="Be brief.", tools=[WEATHER], input=[
        *sent, *first.output, {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}])
    assert second.output_text == "It is 21 degrees in Paris."

    items = list(oai.responses.input_items.list(second.id, order="asc"))  # the instructions are not an item
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "developer"), ("message", "user"), ("function_call", None), ("function_call_output", None)]
    assert items[1].content[0].type == "input_text" and items[1].content[0].text == ask
    assert (items[2].call_id, items[2].name, items[2].arguments) == (call.call_id, "get_weather", call.arguments)
    assert (items[3].call_id, items[3].output) == (call.call_id, '{"temp": 21}')
    assert len({i.id for i in items}) == 4

    newest_first = oai.responses.input_items.list(second.id)  # OpenAI's default order: desc
    assert [i.id for i in newest_first.data] == [i.id for i in reversed(items)]
    page = oai.responses.input_items.list(second.id, order="asc", limit=3)
    assert [i.id for i in page.data] == [i.id for i in items[:3]] and page.has_more
    assert page.first_id == items[0].id and page.last_id == items[2].id
    assert [i.id for i in page] == [i.id for i in items]  # the SDK follows `after` to the last page
    rest = oai.responses.input_items.list(second.id, order="asc", after=items[1].id)
    assert [i.id for i in rest.data] == [i.id for i in items[2:]] and not rest.has_more
    before = oai.responses.input_items.list(second.id, order="asc", extra_query={"before": items[2].id})
    assert [i.id for i in before.data] == [i.id for i in items[:2]]


def test_input_items_of_a_continued_response_are_its_own_input_only(oai):
    first = oai.responses.create(model="gpt", input="My name is Ada.")
    second = oai.responses.create(model="gpt", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Your name is Ada."
    items = oai.responses.input_items.list(second.id).data
    assert [(i.role, i.content[0].text) for i in items] == [("user", "What is my name?")]
    assert [i.content[0].text for i in oai.responses.input_items.list(first.id).data] == ["My name is Ada."]


def test_input_items_of_an_unknown_deleted_or_other_tenants_response_are_404(live, oai):
    r = oai.responses.create(model="gpt", input="hello")
    other = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0,
                          default_headers={"x-flywheel-tenant": "acme"})
    for client, rid in ((oai, "resp_" + "0" * 32), (oai, "nope"), (other, r.id)):
        with pytest.raises(openai.NotFoundError) as err:
            client.responses.input_items.list(rid)
        assert err.value.body["param"] == "response_id"
    unkept = oai.responses.create(model="gpt", input="hello", store=False)
    with pytest.raises(openai.NotFoundError, match="store: false"):
        oai.responses.input_items.list(unkept.id)
    oai.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError, match="deleted"):
        oai.responses.input_items.list(r.id)


@pytest.mark.parametrize(("query", "param"), [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                                              ("order=up", "order"), ("after=msg_nope", "after")])
def test_input_items_bad_query_is_a_400_naming_it(live, oai, query, param):
    r = oai.responses.create(model="gpt", input="hello")
    resp = httpx.get(f"{live.url}/v1/responses/{r.id}/input_items?{query}")
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


# ------------------------------------------------------------------------------ parallel_tool_calls upstream


@pytest.mark.parametrize("parallel", [False, True])
def test_chat_parallel_tool_calls_reach_the_upstream(llm, oai, parallel):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    oai.chat.completions.create(model="gpt", messages=ask, tools=[CHAT_WEATHER], parallel_tool_calls=parallel)
    assert _last(llm)["parallel_tool_calls"] is parallel
    oai.chat.completions.create(model="claude", messages=ask, tools=[CHAT_WEATHER], parallel_tool_calls=parallel)
    choice = _last(llm).get("tool_choice")
    assert (choice or {}).get("disable_parallel_tool_use", False) is (not parallel)


def test_parallel_tool_calls_without_tools_stay_out_of_the_upstream_request(llm, oai):
    # OpenAI refuses parallel_tool_calls without tools; LiteLLM and Pydantic AI may send it anyway
    oai.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hello"}],
                                parallel_tool_calls=False)
    assert "parallel_tool_calls" not in _last(llm)
    oai.chat.completions.create(model="claude", messages=[{"role": "user", "content": "hello"}],
                                parallel_tool_calls=False)
    assert "tool_choice" not in _last(llm)


@pytest.mark.parametrize("stream", [False, True])
def test_responses_parallel_tool_calls_false_reaches_the_upstream(llm, oai, stream):
    # the Agents SDK sends parallel_tool_calls whenever ModelSettings sets it; the AI SDK via providerOptions
    kw = {"model": "gpt", "input": "What is the weather in Paris?", "tools": [WEATHER], "parallel_tool_calls": False}
    if stream:
        with oai.responses.stream(**kw) as events:
            r = events.get_final_response()
    else:
        r = oai.responses.create(**kw)
    assert r.parallel_tool_calls is False and _last(llm)["parallel_tool_calls"] is False
    oai.responses.create(**{**kw, "model": "claude"})
    assert _last(llm)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_anthropic_disable_parallel_tool_use_reaches_an_openai_upstream(llm, ant):
    msg = ant.messages.create(model="gpt", max_tokens=64, tools=[ANTHROPIC_WEATHER],
                              tool_choice={"type": "auto", "disable_parallel_tool_use": True},
                              messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert msg.stop_reason == "tool_use"
    assert _last(llm)["parallel_tool_calls"] is False and _last(llm)["tool_choice"] == "auto"


# ------------------------------------------------------------------------------ Anthropic wire: session_id


def _arm(live, session: str) -> str:
    from flywheel.gateway.routes import pick_arm

    route = live.state.project.config.routes["ab"]
    return {"arm_a": "fake-a", "arm_b": "fake-b"}[pick_arm("ab", route, session)]


def test_anthropic_session_id_picks_the_sticky_arm_like_the_openai_wire(live, llm, ant, oai):
    sessions = [f"s-{i}" for i in range(8)]
    assert len({_arm(live, s) for s in sessions}) == 2  # both arms are expected somewhere among these
    for s in sessions:
        ant.messages.create(model="ab", max_tokens=32, metadata={"session_id": s},  # type: ignore[typeddict-unknown-key]
                            messages=[{"role": "user", "content": "hello"}])
        assert _last(llm)["model"] == _arm(live, s), s
        ant.messages.create(model="ab", max_tokens=32, extra_headers={"x-flywheel-session-id": s},
                            messages=[{"role": "user", "content": "你好"}])
        assert _last(llm)["model"] == _arm(live, s), s
        oai.chat.completions.create(model="ab", metadata={"session_id": s},
                                    messages=[{"role": "user", "content": "hello"}])
        assert _last(llm)["model"] == _arm(live, s), s


@pytest.mark.parametrize(("tell", "ask", "stream"), [("My name is Ada.", "What is my name?", False),
                                                     ("我叫 Ada。", "我叫什么名字？", True)])
def test_anthropic_session_id_continues_a_chat_app(ant, tell, ask, stream):
    session = f"anthropic-{stream}"
    ant.messages.create(model="app:assistant", max_tokens=64, metadata={"session_id": session},  # type: ignore
                        messages=[{"role": "user", "content": tell}])
    if stream:
        with ant.messages.stream(model="app:assistant", max_tokens=64, messages=[{"role": "user", "content": ask}],
                                 extra_headers={"x-flywheel-session-id": session}) as events:
            text = "".join(events.text_stream)
    else:
        text = ant.messages.create(model="app:assistant", max_tokens=64, metadata={"session_id": session},  # type: ignore
                                   messages=[{"role": "user", "content": ask}]).content[0].text
    assert text == "Your name is Ada."
    fresh = ant.messages.create(model="app:assistant", max_tokens=64, metadata={"session_id": session + "-new"},  # type: ignore
                                messages=[{"role": "user", "content": ask}])
    assert fresh.content[0].text == "I do not know."


def test_anthropic_session_id_on_an_app_without_sessions_is_a_400(live):
    r = httpx.post(live.url + "/v1/messages", json={
        "model": "app:docs", "max_tokens": 32, "metadata": {"session_id": "s1"},
        "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


# ------------------------------------------------------------------------------ item_reference input items


@pytest.mark.parametrize("stream", [False, True])
def test_item_reference_to_a_kept_answer_is_read_back(llm, oai, stream):
    # the Vercel AI SDK (`@ai-sdk/openai`, store on by default) sends an assistant turn it got from this server
    # as {type: item_reference, id: <the message item's id>}
    if stream:
        with oai.responses.stream(model="gpt", input="My name is Ada.") as events:
            first = events.get_final_response()
    else:
        first = oai.responses.create(model="gpt", input="我叫 Ada。")
    said = first.output[0]
    second = oai.responses.create(model="gpt", input=[
        {"role": "user", "content": "My name is Ada."}, {"type": "item_reference", "id": said.id},
        {"role": "user", "content": "What is my name?"}])
    assert second.output_text == "Your name is Ada."
    assert [(m["role"], m["content"]) for m in _last(llm)["messages"]][1] == ("assistant", said.content[0].text)
    items = oai.responses.input_items.list(second.id, order="asc").data
    assert items[1].type == "message" and items[1].role == "assistant"


def test_item_reference_to_a_function_call_is_read_back(llm, oai):
    ask = {"role": "user", "content": "What is the weather in Paris?"}
    first = oai.responses.create(model="gpt", input=[ask], tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    done = oai.responses.create(model="gpt", tools=[WEATHER], input=[
        ask, {"type": "item_reference", "id": call.id},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}])
    assert done.output_text == "It is 21 degrees in Paris."
    sent = _last(llm)["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id and sent[2]["tool_call_id"] == call.call_id


def test_item_reference_unknown_or_other_tenants_is_a_404_naming_the_item(live, oai):
    said = oai.responses.create(model="gpt", input="hello").output[0]
    other = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0,
                          default_headers={"x-flywheel-tenant": "acme"})
    for client, ref in ((oai, "msg_nope"), (oai, "msg_" + "0" * 32), (oai, "rs_abc"), (other, said.id)):
        with pytest.raises(openai.NotFoundError) as err:
            client.responses.create(model="gpt", input=[{"role": "user", "content": "hi"},
                                                        {"type": "item_reference", "id": ref}])
        assert err.value.body["param"] == "input.1.id", ref


def test_parallel_tool_calls_is_part_of_the_cache_key_only_when_sent():
    from flywheel.cache.keys import normalised_request
    from flywheel.types import ChatRequest

    ask = ChatRequest.of("What is the weather in Paris?", tools=[CHAT_WEATHER])
    assert "parallel_tool_calls" not in normalised_request(ask)["params"]  # keys of earlier requests unchanged
    one_call = ask.model_copy(update={"parallel_tool_calls": False})
    assert normalised_request(one_call)["params"]["parallel_tool_calls"] is False
