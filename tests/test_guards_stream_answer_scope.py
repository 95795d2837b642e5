"""Guards that judge the whole answer (`Check.scope == "answer"`) give a streamed answer the verdict the same
answer gets whole. Before the fix, through `flywheel serve`:
- `language: zh` stopped a Chinese answer quoting a long (> 1,000 characters) English log or code block, though
  the whole answer passed: the stream judged the last 1,000 released characters, then stopped once 1,000
  characters of "English" waited;
- `contains: 参考资料` and `max_words` ran on each sentence (and the released tail): the contains guard stopped
  on the first sentence lacking the phrase, the max_words guard passed every sentence of an answer whose total
  was over the limit.
Driven by the official openai SDK against a real uvicorn server in front of fake_llm; each answer is asked for
whole and streamed, and both verdicts compared.
"""

from __future__ import annotations

import openai
import pytest

from flywheel.checks.base import build
from flywheel.checks.text import count_words
from flywheel.guards import GuardPolicy, streaming
from flywheel.guards.streaming import guard_stream
from flywheel.testing.fake_llm import FakeLLM

STOP = "[stopped]"
APPS = {  # app name → its one output guard
    "lang": "{check: language, value: zh, on_fail: block, message: '[stopped]'}",
    "refs": "{check: contains, value: 参考资料, on_fail: block, message: '[stopped]'}",
    "short": "{check: max_words, value: 300, on_fail: block, message: '[stopped]'}",
    "secret": "{check: not-contains, value: 内部代号, on_fail: block, message: '[stopped]'}",
    "json": "{check: is-json, on_fail: block, message: '[stopped]'}",
}
PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
""" + "".join(f"""  {name}:
    kind: chat
    model: gpt
    guards:
      output:
        - {guard.replace("{", "{{").replace("}", "}}")}
""" for name, guard in APPS.items())

ZH = "这是一个很长的中文回答，用来说明配置文件里的每一个选项。"
LOG = "ERROR 2024-01-01 connection refused by upstream host, retrying the request now.\n" * 20
CODE = "```python\n" + "def handler(request):\n    return respond(request, status=200)  # handle it\n" * 40 + "```\n"
SEVEN = "This is a sentence with seven words. "
REPLIES = {  # question → the model's answer
    "log-after-intro": ZH * 10 + "日志如下：\n" + LOG * 2 + ZH * 20,
    "log-first": "日志如下：\n" + LOG + ZH * 15,  # the answer so far reads as English for 1,700 characters
    "code": "示例代码如下：\n" + CODE + ZH * 3,
    "english": "Sure. " + SEVEN * 60,
    "refs-at-end": "第一步，打开配置文件。第二步，设置模型别名。第三步，保存并重启服务。\n参考资料：[1] 配置指南。",
    "refs-missing": "第一步，打开配置文件。第二步，设置模型别名。第三步，保存并重启服务。",
    "words-60": SEVEN * 60,  # 420 words, 60 sentences of 7
    "words-40": SEVEN * 40,  # 280 words
    "secret-late": ZH * 3 + "这个项目的内部代号是青龙。" + ZH * 3,
    "secret-across": ZH * 3 + "内部\n代号" + ZH,  # `内部\n代号` is not the phrase: passes whole
    "json-object": '{"name": "flywheel", "version": "1.2.0",\n"tags": ["llm", "guards"]}',
}
CASES = [("lang", "log-after-intro"), ("lang", "log-first"), ("lang", "code"), ("lang", "english"),
         ("refs", "refs-at-end"), ("refs", "refs-missing"), ("short", "words-60"), ("short", "words-40"),
         ("secret", "secret-late"), ("secret", "secret-across"), ("json", "json-object")]


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        for question, reply in REPLIES.items():
            server.add(rf"question {question}\b", reply)
        yield server


@pytest.fixture(scope="module")
def client(tmp_path_factory, llm):
    from server_support import serving

    with serving(tmp_path_factory.mktemp("answer_scope"), PROJECT.format(base=llm.url)) as live:
        yield openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def _whole_and_streamed(client, app: str, question: str) -> tuple[str, bool, str, bool]:
    """(whole text, refused), (streamed text, refused) for the same question to `app:NAME`."""
    messages = [{"role": "user", "content": f"question {question}"}]
    whole = client.chat.completions.create(model=f"app:{app}", messages=messages)
    chunks = list(client.chat.completions.create(model=f"app:{app}", messages=messages, stream=True))
    shown = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    return (whole.choices[0].message.content, whole.model_extra["flywheel"]["refused"],
            shown, final.model_extra["flywheel"]["refused"])


@pytest.mark.parametrize(("app", "question"), CASES)
def test_a_streamed_answer_gets_the_verdict_of_the_same_answer_whole(client, app, question):
    text, refused, shown, streamed_refused = _whole_and_streamed(client, app, question)
    assert streamed_refused is refused, shown
    if refused:
        assert text == STOP and shown.endswith(STOP)
    else:
        assert text == REPLIES[question] and shown == text


def test_a_chinese_answer_quoting_a_long_english_log_or_code_block_passes_streamed(client):
    for question in ("log-after-intro", "log-first", "code"):
        text, refused, shown, streamed_refused = _whole_and_streamed(client, "lang", question)
        assert not refused and not streamed_refused and shown == text == REPLIES[question]  # was: stopped mid-stream


def test_an_answer_in_the_wrong_language_is_stopped_with_nothing_of_it_shown(client):
    _, refused, shown, streamed_refused = _whole_and_streamed(client, "lang", "english")
    assert refused and streamed_refused and shown == STOP  # held back, then the whole answer's verdict


def test_contains_is_satisfied_by_the_end_of_the_answer(client):
    _, refused, shown, streamed_refused = _whole_and_streamed(client, "refs", "refs-at-end")
    assert not refused and not streamed_refused and shown == REPLIES["refs-at-end"]  # was: "[stopped]" at once
    _, refused, shown, streamed_refused = _whole_and_streamed(client, "refs", "refs-missing")
    assert refused and streamed_refused and shown == REPLIES["refs-missing"] + "\n" + STOP  # judged at the end


def test_max_words_stops_the_stream_as_soon_as_the_answer_exceeds_it(client):
    _, refused, shown, streamed_refused = _whole_and_streamed(client, "short", "words-60")
    assert refused and streamed_refused  # was: every sentence (and every 1,000-character tail) passed
    before = shown.removesuffix("\n" + STOP)
    assert shown.endswith(STOP) and REPLIES["words-60"].startswith(before)
    assert count_words(before) <= 300 < count_words(before + SEVEN)  # the sentence that would exceed it: not shown


def test_a_forbidden_phrase_stops_the_stream_before_it_is_shown(client):
    _, refused, shown, streamed_refused = _whole_and_streamed(client, "secret", "secret-late")
    assert refused and streamed_refused and "内部代号" not in shown and shown.startswith(ZH * 3)


def test_answer_scope_is_declared_by_the_checks_that_judge_the_whole_answer():
    for name, arg in [("contains", "x"), ("icontains-all", ["x"]), ("regex", "x"), ("max_words", 5),
                      ("min_words", 5), ("words", {"min": 1, "max": 5}), ("equals", "x"), ("starts-with", "x"),
                      ("is-json", None), ("language", "zh"), ("not-contains", "x")]:
        assert build(name, arg).scope == "answer", name
    assert build("pii", None).scope == "span" and build("judge", "No refunds are promised.").scope == "span"
    # what a verdict on the answer so far settles: a maximum exceeded, a phrase found (and, negated, not found)
    assert build("max_words", 5).settles == "fail" and build("min_words", 5).settles == "pass"
    assert build("contains", "x").settles == "pass" and build("not-contains", "x").settles == "fail"
    assert build("language", "zh").holds and build("is-json", None).settles == ""
    words = build("words", {"min": 3, "max": 5})
    assert not words.settled(words.run("one two")) and words.settled(words.run("one two three four five six"))


def _lag(text: str, policy) -> int:
    """The most characters the model had sent beyond what a `language` guard's stream had shown."""
    sent: list[int] = [0]

    def deltas():
        for i in range(0, len(text), 10):
            sent[0] = i + 10
            yield text[i:i + 10]

    shown, lag = 0, 0
    for piece in guard_stream(deltas(), policy.output):
        lag = max(lag, min(sent[0], len(text)) - shown)
        shown += len(piece)
    return lag


def test_a_long_code_block_in_a_long_chinese_answer_is_shown_as_it_comes(monkeypatch):
    text = ZH * 40 + "示例代码如下：\n" + CODE + ZH * 40
    policy = GuardPolicy.from_config({"output": [{"check": "language", "value": "zh", "on_fail": "block"}]})
    assert policy.output.run(text).passed
    assert _lag(text, policy) < 200  # a line or two: read with the Chinese before the block
    monkeypatch.setattr(streaming, "_FENCE", "\0\0\0")  # a tail holding code lines alone reads as English
    assert _lag(text, policy) > 500
