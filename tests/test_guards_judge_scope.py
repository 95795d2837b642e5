"""A judge guard chooses what it judges on a stream: `scope: sentence` (the default, as before: each sentence is
judged before it is shown, so "never promises a refund" stops the stream before the promise) or `scope: answer`
(the whole answer, once, at the end of the stream: criteria such as "ends with its sources" that no sentence
alone meets). Before the fix `scope:` was passed to the judge check, which rejected it, and a whole-answer
criterion stopped every stream at its first sentence.

Driven by the official openai SDK against a real `flywheel serve` in front of fake_llm, which is both the model
that answers and the judge (its requests are counted); each answer is asked for whole and streamed.
"""

from __future__ import annotations

import re

import openai
import pytest

from flywheel.config import Project
from flywheel.errors import ConfigError
from flywheel.guards import GuardPolicy
from flywheel.testing.fake_llm import FakeLLM

STOP = "[stopped]"
SOURCES = "The answer ends with a line naming its sources."
REFUND = "The answer never promises a refund."
GUARD = "{{check: judge, criterion: '{criterion}', model: judge, on_fail: {on_fail}, message: '[stopped]'{extra}}}"
APPS = {  # app name → its one output guard
    "whole": GUARD.format(criterion=SOURCES, on_fail="block", extra=", scope: answer"),
    "whole-log": GUARD.format(criterion=SOURCES, on_fail="log-only", extra=", scope: answer"),
    "each": GUARD.format(criterion=SOURCES, on_fail="block", extra=""),  # the default: sentence
    "refund": GUARD.format(criterion=REFUND, on_fail="block", extra=""),
    "refund-sentence": GUARD.format(criterion=REFUND, on_fail="block", extra=", scope: sentence"),
}
PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}/v1", model: fake-model, max_retries: 0}}
  judge: {{provider: openai_compat, base_url: "{base}/v1", model: judge-model, max_retries: 0}}
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

REPLIES = {  # question → the model's answer
    "cited": "Open the config file. Set the model alias. Save it and restart.\nSources: [1] the setup guide.",
    "uncited": "Open the config file. Set the model alias. Save it and restart.",
    "refund": "Thanks for asking. We are open 9 to 5. You will get a full refund. Anything else I can do?",
}


def judge(body: dict) -> str:
    """fake_llm's judge: reads the criterion and the output of the judge prompt and decides as a person would."""
    prompt = body["messages"][-1]["content"]
    criterion = re.search(r"<criterion>\s*(.*?)\s*</criterion>", prompt, re.DOTALL).group(1)
    output = re.search(r"<output>\n(.*)\n</output>", prompt, re.DOTALL).group(1)
    if criterion == SOURCES:
        ok = output.strip().splitlines()[-1].startswith("Sources:")
    else:
        ok = "refund" not in output.lower()
    return f"Checked the output.\nVerdict: {'PASS' if ok else 'FAIL'}"


@pytest.fixture(scope="module")
def llm():
    with FakeLLM() as server:
        server.add(r"<criterion>", judge, model="judge-model")
        for question, reply in REPLIES.items():
            server.add(rf"question {question}\b", reply, model="fake-model")
        yield server


@pytest.fixture(scope="module")
def client(tmp_path_factory, llm):
    from server_support import serving

    with serving(tmp_path_factory.mktemp("judge_scope"), PROJECT.format(base=llm.url)) as live:
        yield openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


def _judged(llm) -> list[str]:
    """The outputs the judge was asked about, in order."""
    return [re.search(r"<output>\n(.*)\n</output>", r["messages"][-1]["content"], re.DOTALL).group(1)
            for r in llm.requests if r.get("model") == "judge-model"]


def _ask(client, llm, app: str, question: str, stream: bool) -> tuple[str, bool, list[str]]:
    """(text shown, refused, the outputs the judge was asked about) for one request to `app:NAME`."""
    before = len(_judged(llm))
    messages = [{"role": "user", "content": f"question {question}"}]
    if not stream:
        whole = client.chat.completions.create(model=f"app:{app}", messages=messages)
        text, refused = whole.choices[0].message.content, whole.model_extra["flywheel"]["refused"]
    else:
        chunks = list(client.chat.completions.create(model=f"app:{app}", messages=messages, stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
        refused = final.model_extra["flywheel"]["refused"]
    return text, refused, _judged(llm)[before:]


@pytest.mark.parametrize("question", ["cited", "uncited"])
def test_an_answer_scope_judge_gives_a_stream_the_verdict_of_the_whole_answer_with_one_call(client, llm, question):
    text, refused, whole_calls = _ask(client, llm, "whole", question, stream=False)
    shown, streamed_refused, stream_calls = _ask(client, llm, "whole", question, stream=True)
    assert streamed_refused is refused is (question == "uncited")
    assert whole_calls == stream_calls == [REPLIES[question]]  # one judge call on the whole answer, each way
    if refused:  # shown as it came, then the verdict at the end, as other end-of-answer guards do
        assert text == STOP and shown == REPLIES[question] + "\n" + STOP
    else:
        assert text == shown == REPLIES[question]  # was: stopped at its first sentence


def test_a_log_only_answer_scope_judge_logs_once_and_lets_the_answer_through(client, llm):
    shown, refused, calls = _ask(client, llm, "whole-log", "uncited", stream=True)
    assert not refused and shown == REPLIES["uncited"] and calls == [REPLIES["uncited"]]


def test_a_sentence_scope_judge_still_judges_each_sentence_before_it_is_shown(client, llm):
    for app in ("refund", "refund-sentence"):  # the default and the explicit scope: the same behaviour as before
        shown, refused, calls = _ask(client, llm, app, "refund", stream=True)
        assert refused and shown.endswith(STOP) and "refund" not in shown.removesuffix(STOP)
        assert shown.startswith("Thanks for asking. We are open 9 to 5.")
        assert len(calls) > 1 and calls[0] == "Thanks for asking. "  # a call per sentence (and its tail)
        text, refused, calls = _ask(client, llm, app, "refund", stream=False)
        assert refused and text == STOP and calls == [REPLIES["refund"]]  # not streamed: the whole answer once
    # a whole-answer criterion judged per sentence fails the first one: why `scope: answer` exists
    shown, refused, calls = _ask(client, llm, "each", "cited", stream=True)
    assert refused and shown == STOP and calls == ["Open the config file. "]


YAML = """models:
  default: {{provider: extractive}}
  judge: {{provider: openai_compat, base_url: "http://127.0.0.1:9/v1", model: judge-model}}
apps:
  docs_qa:
    guards:
      {stage}:
        - check: {check}
          scope: {scope}
"""


JUDGE = "judge\n          criterion: Polite.\n          model: judge"


@pytest.mark.parametrize(("stage", "check", "scope", "words"), [
    ("output", JUDGE, "whole", "must be sentence or answer, not 'whole'"),
    ("output", JUDGE, "[answer]", "must be sentence or answer, not ['answer']"),
    ("output", "pii", "answer", "only a judge guard"),
    ("input", JUDGE, "answer", "applies only to output guards"),
    ("sources", "injection", "answer", "applies only to output guards"),
])
def test_a_bad_scope_is_a_config_error_naming_the_line_and_the_allowed_values(tmp_path, stage, check, scope, words):
    (tmp_path / "flywheel.yaml").write_text(YAML.format(stage=stage, check=check, scope=scope), encoding="utf-8")
    project = Project.load(tmp_path)
    with pytest.raises(ConfigError) as err:
        GuardPolicy.from_config(project.config.apps["docs_qa"].guards,
                                where=lambda *p: project.where("apps", "docs_qa", "guards", *p))
    assert words in err.value.message
    line = 11 if check == JUDGE else 9  # the `scope:` line
    assert err.value.where == f"{tmp_path.resolve() / 'flywheel.yaml'}:{line}"


def test_an_answer_scope_is_part_of_the_policy_version_and_the_default_keeps_it():
    def version(**extra):
        spec = {"check": "judge", "criterion": REFUND, "model": "judge", **extra}
        return GuardPolicy.from_config({"output": [spec]}).version

    assert version() == version(scope=None) == version(scope="sentence") != version(scope="answer")
