"""The trace page and the traces list for a reasoning model's call (its thinking recorded on the attempt span as
`{"content": answer, "reasoning": thinking}`) and for traces imported from LangSmith and the Vercel AI SDK, in
real Chromium (shared server and browser: tests/web_support.py)."""

from __future__ import annotations

import json

import pytest
from test_trace_import_audit3 import AI_SDK_SPANS, LANGSMITH_RUNS, TRACE, _otlp_file
from web_support import login

from flywheel.tracing.importer import import_file
from flywheel.tracing.query import span_body
from flywheel.tracing.store_sink import answer_preview
from flywheel.web.trace_view import final_prompt

pytest.importorskip("playwright")
from playwright.sync_api import expect

THINKING = "<b>weigh</b> the <script>window.pwned=1</script> options"


def test_a_reasoning_attempt_previews_its_answer_never_its_thinking():
    assert answer_preview({"content": "Two years.", "reasoning": "long thoughts"}) == "Two years."
    # all thinking, no answer (cut by max_tokens): an empty answer, not the thinking as a JSON blob
    assert answer_preview({"content": None, "reasoning": "long thoughts"}) == ""


def test_the_final_prompt_shows_an_assistant_turn_that_only_called_tools():
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "get_weather",
                                                                      "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 21}"}]
    span = {"span_id": "s1", "kind": "llm", "start_ns": 1}
    shown = final_prompt([span], {"s1": {"inputs": {"messages": messages}}})
    assert shown is not None
    assert shown["text"] == ("[user]\nWeather in Paris?\n\n[assistant]\n→ get_weather({\"city\": \"Paris\"})"
                             "\n\n[tool call_0]\n{\"temp\": 21}")


@pytest.fixture(scope="module")
def traces(web_server, tmp_path_factory):
    """A reasoning model's answer through the live server, and the LangSmith and AI SDK imports."""
    import httpx

    web_server.llm.add(r"guarantee", f"<think>{THINKING}</think>Two years of cover.")
    key = web_server.keys["admin"]
    response = httpx.post(f"{web_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt", "messages": [{"role": "user", "content": "How long is the guarantee?"}]})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Two years of cover."
    tid = response.headers["x-flywheel-trace-id"]
    web_server.wait_for_trace(tid, key)
    store = web_server.live.app.state.flywheel.store
    folder = tmp_path_factory.mktemp("imports")
    runs = folder / "runs.jsonl"
    runs.write_text("\n".join(json.dumps(r) for r in LANGSMITH_RUNS) + "\n", encoding="utf-8")
    assert import_file(store, runs, "langsmith").imported == 1
    assert import_file(store, _otlp_file(folder / "ai.jsonl", AI_SDK_SPANS), "otlp").imported >= 1
    return {"reasoning": tid, "langsmith": TRACE.replace("-", ""), "ai_sdk": "a1" * 16}


@pytest.fixture(scope="module")
def admin(browser, web_server):
    w = login(browser, web_server, "admin")
    yield w
    w.context.close()


def _open_span(w, name: str):
    row = w.page.locator("#span-rows tr.span", has_text=name).first
    row.click()
    body = w.page.locator("#span-body .body")
    expect(body).to_contain_text(name)
    return body


def test_a_reasoning_answer_and_its_thinking_apart(admin, web_server, traces):
    page, tid = admin.page, traces["reasoning"]
    admin.errors.clear()
    page.goto(f"{web_server.url}/ui/traces?lang=en&limit=200")
    row = page.locator(f'tr[data-trace="{tid}"]')
    expect(row).to_contain_text("How long is the guarantee?")
    assert "weigh" not in row.inner_text()
    listed = {r["trace_id"]: r for r in page.request.get(f"{web_server.url}/ui/traces.json?limit=200").json()["rows"]}
    assert listed[tid]["output_preview"] == "Two years of cover."  # the answer, not a JSON blob with the thinking
    page.goto(f"{web_server.url}/ui/traces/{tid}")
    spans = page.locator("#span-rows tr.span")
    attempts = [spans.nth(i) for i in range(spans.count())]
    bodies = []
    for span in attempts:
        span.click()
        expect(page.locator("#span-body .body")).to_be_visible()
        page.wait_for_function("(id) => document.querySelector('#span-body [data-span-body]')?.dataset.spanBody"
                               " === id", arg=span.get_attribute("data-span"))
        if page.locator("#span-body details.reasoning").count():
            bodies.append(span.get_attribute("data-span"))
            break
    assert bodies, "no span shows the model's reasoning apart"
    answer = page.locator("#span-body pre[data-answer]")
    expect(answer).to_have_text("Two years of cover.")  # the answer as text, not {"content": …}
    details = page.locator("#span-body details.reasoning")
    expect(details.locator("summary")).to_contain_text("Reasoning")
    expect(details.locator("pre")).to_be_hidden()  # collapsed until opened
    details.locator("summary").click()
    expect(details.locator("pre")).to_have_text(THINKING)  # escaped: shown as text, never run
    assert page.evaluate("window.pwned") is None
    assert details.locator("b").count() == 0
    admin.shot("reasoning-span")
    # the page's twin lists the span (no bodies: those load per span); the stored body keeps answer and thinking
    twin = page.request.get(f"{web_server.url}/ui/traces/{tid}.json").json()
    assert bodies[0] in {r["span_id"] for r in twin["rows"]}
    stored = span_body(web_server.live.app.state.flywheel.store, bodies[0])
    assert stored is not None and stored["outputs"] == {"content": "Two years of cover.", "reasoning": THINKING}
    raw = page.request.get(f"{web_server.url}/ui/spans/{bodies[0]}/body").text()
    assert "&lt;script&gt;" in raw and "<script>" not in raw
    page.goto(f"{web_server.url}/ui/traces/{tid}?lang=zh")
    page.locator(f'#span-rows tr.span[data-span="{bodies[0]}"]').click()
    expect(page.locator("#span-body details.reasoning summary")).to_contain_text("推理")
    assert admin.errors == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_imported_traces_show_messages_tool_calls_and_tokens(admin, web_server, traces, lang):
    page = admin.page
    admin.errors.clear()
    page.goto(f"{web_server.url}/ui/traces/{traces['langsmith']}?lang={lang}")
    expect(page.locator("#final-prompt")).to_have_text("[system]\nBe brief.\n\n[user]\nWhat is the weather in Paris?")
    expect(page.locator("#span-rows tr.span", has_text="ChatOpenAI")).to_contain_text("12/9")
    body = _open_span(admin, "ChatOpenAI")
    expect(body).to_contain_text("get_weather")
    tool = _open_span(admin, "get_weather")
    expect(tool.locator("pre.err")).to_have_text("TimeoutError: weather service timed out")
    admin.shot(f"langsmith-trace-{lang}")

    page.goto(f"{web_server.url}/ui/traces/{traces['ai_sdk']}?lang={lang}")
    # the last model call's prompt: the earlier assistant turn's tool call and the tool's answer are shown
    prompt = page.locator("#final-prompt")
    expect(prompt).to_contain_text("[assistant]\n→ get_weather({\"city\": \"Paris\"})")
    expect(prompt).to_contain_text("[tool call_0]\n{\"city\": \"Paris\", \"temp\": 21}")
    expect(page.locator("p.meta")).to_contain_text("35/17")
    expect(page.locator("#span-rows tr.span", has_text="ai.toolCall")).to_be_visible()
    admin.shot(f"ai-sdk-trace-{lang}")
    page.goto(f"{web_server.url}/ui/traces?lang={lang}&limit=200")
    listed = {r["trace_id"]: r for r in page.request.get(f"{web_server.url}/ui/traces.json?limit=200").json()["rows"]}
    for tid in (traces["langsmith"], traces["ai_sdk"]):
        expect(page.locator(f'tr[data-trace="{tid}"]')).to_contain_text("What is the weather in Paris?")
    assert listed[traces["langsmith"]]["output_preview"] == "I could not reach the weather service."
    assert listed[traces["ai_sdk"]]["output_preview"] == "21 °C in Paris."
    assert admin.errors == []
