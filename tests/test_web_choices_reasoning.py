"""The dashboard's span body for a request with n > 1 choices from a reasoning model (OpenAI `n=2`): each choice's
answer on its own (`choice 0:`, `choice 1:`, as `flywheel traces show` prints them), each followed by its own
reasoning collapsed and escaped, never the attempt span's raw JSON; the trace list previews an answer, never the
thinking. Over real HTTP against the shared live server (tests/web_support.py) in front of fake_llm."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from flywheel.testing.fake_llm import Choices
from flywheel.testing.fake_llm_wire import Reasoned
from flywheel.tracing.query import span_body

ANSWERS = ("Red <i>warm</i>.", "Blue.")
THOUGHTS = ("Warm <b>colours</b> first.", "The <script>window.pwned=1</script> sky decides.")


class _Choices(HTMLParser):
    """The span body's choices as (label, answer, reasoning or None, reasoning collapsed), read from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.choices: list[dict[str, Any]] = []
        self.tags: list[str] = []  # raw tags inside a choice (an answer or thinking that became markup shows here)
        self._field: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and "data-choice" in a:
            self.choices.append({"index": a["data-choice"], "label": "", "answer": "", "reasoning": None,
                                 "open": None})
            self._depth = 1
            return
        if not self._depth:
            return
        if tag == "div":
            self._depth += 1
        if tag in ("b", "i", "script"):
            self.tags.append(tag)
        now = self.choices[-1]
        if tag == "h5":
            self._field = "label"
        elif tag == "pre" and "data-answer" in a:
            self._field = "answer"
        elif tag == "details":
            now["open"], now["reasoning"] = "open" in a, ""
        elif tag == "pre" and now["reasoning"] is not None:
            self._field = "reasoning"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h5", "pre"):
            self._field = None
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth and self._field:
            self.choices[-1][self._field] += data


def _read(body: str) -> _Choices:
    parser = _Choices()
    parser.feed(body)
    return parser


@pytest.fixture(scope="module")
def n2(web_server):
    """An n=2 chat completion from a reasoning model (each choice thinks its own thought) through the server."""
    web_server.llm.add(r"\btwo minds\b", Choices(*(Reasoned(a, 2, thought=t) for a, t in zip(ANSWERS, THOUGHTS))))
    key = web_server.keys["admin"]
    response = httpx.post(f"{web_server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                          json={"model": "gpt", "n": 2, "messages": [{"role": "user", "content": "two minds"}]})
    assert response.status_code == 200, response.text
    assert [c["message"]["content"] for c in response.json()["choices"]] == list(ANSWERS)
    tid = response.headers["x-flywheel-trace-id"]
    web_server.wait_for_trace(tid, key)
    return tid


def _get(web_server, path: str) -> httpx.Response:
    r = httpx.get(f"{web_server.url}{path}", headers={"Authorization": f"Bearer {web_server.keys['admin']}"})
    assert r.status_code == 200, r.text
    return r


def _llm_spans(web_server, tid: str) -> dict[str, str]:
    """The trace's model spans: span id → "attempt" (its stored choices hold their reasoning) or "call"."""
    store = web_server.live.app.state.flywheel.store
    out = {}
    for row in _get(web_server, f"/ui/traces/{tid}.json").json()["rows"]:
        if row["kind"] != "llm":
            continue
        stored = span_body(store, row["span_id"])
        assert stored is not None and isinstance(stored["outputs"], dict), stored
        kinds = [isinstance(c, dict) and "reasoning" in c for c in stored["outputs"]["choices"]]
        out[row["span_id"]] = "attempt" if all(kinds) else "call"
    assert sorted(out.values()) == ["attempt", "call"], out
    return out


def test_each_choice_shows_its_answer_then_its_own_collapsed_reasoning(web_server, n2):
    spans = _llm_spans(web_server, n2)
    attempt = next(sid for sid, kind in spans.items() if kind == "attempt")
    body = _get(web_server, f"/ui/spans/{attempt}/body?lang=en").text
    assert "&#34;reasoning&#34;" not in body and "&#34;choices&#34;" not in body  # not the stored JSON
    shown = _read(body)
    assert [(c["index"], c["label"], c["answer"]) for c in shown.choices] == [
        ("0", "choice 0:", ANSWERS[0]), ("1", "choice 1:", ANSWERS[1])]
    assert [c["reasoning"] for c in shown.choices] == list(THOUGHTS)  # each choice's own, in its order
    assert [c["open"] for c in shown.choices] == [False, False]  # collapsed until opened
    assert shown.tags == []  # model text is text: no <b>, <i> or <script> from it became markup
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in body and "<script>" not in body
    assert "2 choices" in body
    # the stored span keeps every choice whole
    stored = span_body(web_server.live.app.state.flywheel.store, attempt)
    assert stored is not None
    assert stored["outputs"]["choices"] == [{"content": a, "reasoning": t} for a, t in zip(ANSWERS, THOUGHTS)]


def test_the_call_span_shows_the_answers_alone(web_server, n2):
    call = next(sid for sid, kind in _llm_spans(web_server, n2).items() if kind == "call")
    body = _get(web_server, f"/ui/spans/{call}/body?lang=en").text
    shown = _read(body)
    assert [(c["label"], c["answer"], c["reasoning"]) for c in shown.choices] == [
        ("choice 0:", ANSWERS[0], None), ("choice 1:", ANSWERS[1], None)]
    assert "reasoning" not in body and "&#34;choices&#34;" not in body


def test_the_choices_match_what_traces_show_prints(web_server, n2, capsys):
    from flywheel.cli.traces import _print_tree
    from flywheel.tracing import get_trace

    trace = get_trace(web_server.live.app.state.flywheel.store, n2)
    assert trace is not None
    capsys.readouterr()
    _print_tree(trace, width=400)
    lines = [line.split("│")[-1].strip() for line in capsys.readouterr().out.splitlines()]
    printed = [line for line in lines if line.startswith(("choice ", "reasoning: "))]
    shown = []
    for sid in _spans_in_tree_order(trace):
        for c in _read(_get(web_server, f"/ui/spans/{sid}/body?lang=en").text).choices:
            shown.append(f"{c['label']} {c['answer']}")
            if c["reasoning"] is not None:
                shown.append(f"reasoning: {c['reasoning']}")
    assert shown == printed and len(shown) == 8  # the server's root span (2 answers), the call (2), the attempt (4)


def _spans_in_tree_order(trace: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(span: dict[str, Any]) -> None:
        out.append(span["span_id"])
        for child in span["children"]:
            walk(child)

    for span in trace["spans"]:
        walk(span)
    return out


def test_chinese_labels(web_server, n2):
    attempt = next(sid for sid, kind in _llm_spans(web_server, n2).items() if kind == "attempt")
    shown = _read(_get(web_server, f"/ui/spans/{attempt}/body?lang=zh").text)
    assert [c["label"] for c in shown.choices] == ["选项 0：", "选项 1："]
    assert [c["reasoning"] for c in shown.choices] == list(THOUGHTS)


def test_the_trace_list_previews_an_answer_never_the_reasoning(web_server, n2):
    rows = {r["trace_id"]: r for r in _get(web_server, "/ui/traces.json?limit=500").json()["rows"]}
    preview = rows[n2]["output_preview"]
    assert ANSWERS[0] in preview
    assert not any(word in preview for word in ("colours", "sky decides", "reasoning"))
    page = _get(web_server, "/ui/traces?limit=500&lang=en").text
    assert "two minds" in page and "colours" not in page and "sky decides" not in page
    spans = _get(web_server, f"/ui/traces/{n2}?lang=en").text  # the span rows' previews: answers only
    assert "colours" not in spans and "sky decides" not in spans


def test_in_chromium_each_choices_reasoning_opens_as_text(browser, web_server, n2):
    from playwright.sync_api import expect
    from web_support import login

    attempt = next(sid for sid, kind in _llm_spans(web_server, n2).items() if kind == "attempt")
    w = login(browser, web_server, "admin")
    try:
        page = w.page
        page.goto(f"{web_server.url}/ui/traces/{n2}?lang=en")
        page.locator(f'#span-rows tr.span[data-span="{attempt}"]').click()
        second = page.locator('#span-body [data-choice="1"]')
        expect(second.locator("pre[data-answer]")).to_have_text(ANSWERS[1])
        thinking = second.locator("details.reasoning pre")
        expect(thinking).to_be_hidden()  # collapsed until opened
        second.locator("details.reasoning summary").click()
        expect(thinking).to_have_text(THOUGHTS[1])  # the script shown as text, never run
        assert page.evaluate("window.pwned") is None
        assert page.locator("#span-body [data-choice] b, #span-body [data-choice] i").count() == 0
        assert w.errors == []
        w.shot("choices-reasoning-span")
    finally:
        w.context.close()
