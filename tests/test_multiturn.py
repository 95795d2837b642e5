"""Sessions and multi-turn evals: chat memory per session in the store (bounded, tenant-scoped, on the trace and
over HTTP), and eval cases made of turns with checks on each."""
# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest
from test_evals_support import llm, write_suite  # noqa: F401 - fixtures

from flywheel.apps.memory import ConversationMemory
from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.errors import ConfigError, UserError
from flywheel.evals.runner import RunOptions, run_suite
from flywheel.evals.suite import load_suite
from flywheel.store import schema_diff
from flywheel.testing.fake_llm import FakeLLM

QUIET = RunOptions(concurrency=2, progress=False)


def write_project(root: Path, llm: FakeLLM) -> Project:
    (root / "flywheel.yaml").write_text(textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: fake-model, max_retries: 0}}
        apps:
          support:
            kind: chat
            model: gpt
            options: {{system: "You are ACME support."}}
        """), encoding="utf-8")
    return Project.load(root)


def sent(llm: FakeLLM) -> list[list[dict]]:
    """The messages of every chat request the fake LLM received, in order."""
    return [r["messages"] for r in llm.requests if r["path"].endswith("/chat/completions")]


@pytest.fixture
def rt(tmp_path: Path, llm: FakeLLM):
    with Runtime(write_project(tmp_path, llm)) as runtime:
        yield runtime


def test_second_turn_carries_the_first_exchange_and_the_trace_records_the_session(rt, llm) -> None:
    llm.add(r"my name is", "Nice to meet you, Ann.")
    llm.add(r"what is my name", "Your name is Ann.")
    app = rt.app("support").remember(rt.store)
    app.run("Hi, my name is Ann.", session_id="s-1")
    answer = app.run("What is my name?", session_id="s-1")
    second = sent(llm)[-1]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "Hi, my name is Ann." and second[2]["content"] == "Nice to meet you, Ann."
    assert answer.text == "Your name is Ann."
    rt.store.flush()
    from flywheel.tracing.search import session_turns

    turns = session_turns(rt.store, "s-1")
    assert len(turns) == 2 and {t["session_id"] for t in turns} == {"s-1"}
    app.run("What is my name?")  # no session: no memory
    assert [m["role"] for m in sent(llm)[-1]] == ["system", "user"]


def test_a_session_id_from_another_tenant_starts_empty(rt, llm) -> None:
    llm.add(r".", "Noted.")
    app = rt.app("support").remember(rt.store)
    app.run("The code is 1234.", tenant="acme", session_id="shared")
    app.run("What was the code?", tenant="globex", session_id="shared")
    assert [m["role"] for m in sent(llm)[-1]] == ["system", "user"]
    app.run("What was the code?", tenant="acme", session_id="shared")
    assert "The code is 1234." in [m["content"] for m in sent(llm)[-1]]


def test_memory_is_bounded_and_refused_turns_are_not_kept(tmp_path: Path, rt, llm) -> None:
    llm.add(r".", "Okay.")
    app = rt.app("support")
    app.memory = ConversationMemory(rt.store, max_turns=2)
    for i in range(4):
        app.run(f"message {i}", session_id="long")
    contents = [m["content"] for m in sent(llm)[-1]]
    assert "message 0" not in contents and "message 1" in contents and "message 2" in contents
    assert len(app.memory.turns("default", "support", "long")) == 2  # older rows deleted
    tight = ConversationMemory(rt.store, max_turns=5, token_budget=8)  # about 32 characters: one exchange
    assert [m.content for m in tight.history("default", "support", "long")] == ["message 3", "Okay."]
    assert schema_diff(rt.store, ["chat_turns"]) == []


def test_avoid_recent_lists_the_last_answers_in_the_system_prompt(rt, llm) -> None:
    llm.add(r"joke", "Why did the chicken cross the road?")
    app = rt.app("support").remember(rt.store)
    app.avoid_recent = 1
    app.run("tell me a joke", session_id="j")
    app.run("another joke", session_id="j")
    system = sent(llm)[-1][0]["content"]
    assert system.startswith("You are ACME support.") and "Do not repeat" in system
    assert "- Why did the chicken cross the road?" in system


def test_session_without_memory_and_bad_session_ids_are_user_errors(rt) -> None:
    from flywheel.apps.chat import ChatApp

    app = ChatApp(gateway=rt.gateway, model="gpt", name="bare")  # built without a store
    with pytest.raises(UserError, match="no conversation memory"):
        app.run("hi", session_id="s")
    app.remember(rt.store)
    with pytest.raises(UserError, match="invalid session id"):
        app.run("hi", session_id="x" * 201)


def test_http_session_id_continues_the_conversation(live, server_llm) -> None:
    server_llm.add(r"favourite colour is", "Got it: green.")
    server_llm.add(r"which colour", "You like green.")
    url = f"{live.url}/v1/apps/support"
    first = httpx.post(url, json={"input": "My favourite colour is green.", "session_id": "web-1"}, timeout=30)
    assert first.status_code == 200 and first.json()["session_id"] == "web-1"
    second = httpx.post(url, json={"input": "Which colour do I like?", "session_id": "web-1"}, timeout=30)
    assert second.json()["text"] == "You like green."
    contents = [m["content"] for m in sent(server_llm)[-1]]
    assert "My favourite colour is green." in contents and "Got it: green." in contents
    other = httpx.post(url, json={"input": "Which colour do I like?", "session_id": "web-1", "tenant": "other"},
                       timeout=30)
    assert other.status_code == 200
    assert "Got it: green." not in [m["content"] for m in sent(server_llm)[-1]]


def test_openai_sdk_app_model_continues_a_session(live, server_llm) -> None:
    """`model: app:NAME` over /v1/chat/completions keeps the conversation given by the session header or
    `metadata.session_id`, like /v1/apps/{name}: the app answers the last user message from its stored memory."""
    import openai

    server_llm.add(r"my city is", "Noted: Lyon.")
    server_llm.add(r"which city", "You live in Lyon.")
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    client.chat.completions.create(model="app:support", messages=[{"role": "user", "content": "My city is Lyon."}],
                                   extra_headers={"x-flywheel-session-id": "sdk-1"})
    again = client.chat.completions.create(model="app:support",
                                           messages=[{"role": "user", "content": "Which city do I live in?"}],
                                           metadata={"session_id": "sdk-1"})
    assert again.choices[0].message.content == "You live in Lyon."
    contents = [m["content"] for m in sent(server_llm)[-1]]
    assert "My city is Lyon." in contents and "Noted: Lyon." in contents
    client.chat.completions.create(model="app:support", messages=[{"role": "user", "content": "Which city?"}])
    assert "Noted: Lyon." not in [m["content"] for m in sent(server_llm)[-1]]  # no session: no memory


# ---------------------------------------------------------------- multi-turn eval cases

TURNS_SUITE = """\
name: memory
target: app:support
cases:
  - id: remembers-name
    turns:
      - input: "Hi, my name is Ann."
        checks: [{contains: Ann}, {max_words: 20}]
      - input: "What is my name?"
        checks: [{contains: Ann}, {not-contains: Bob}]
"""


def test_multi_turn_case_fails_on_its_second_turn_and_reports_each_turn(tmp_path: Path, rt, llm) -> None:
    llm.add(r"my name is", "Nice to meet you, Ann.")
    llm.add(r"what is my name", "You are Bob.")  # forgot
    suite = load_suite(write_suite(tmp_path / "evals" / "m.yaml", TURNS_SUITE), rt.project)
    summary = run_suite(suite, rt, options=QUIET)
    assert summary.passed == 0 and summary.executions == 1
    case = summary.by_case[0]
    assert case["kind"] == "turns"
    assert [(t["turn"], t["passes"], t["failed_checks"]) for t in case["turns"]] == [
        (1, 1, []), (2, 0, ["contains", "not-contains"])]
    result = summary.results[0]
    assert "[turn 2] What is my name?\nYou are Bob." in result.output
    assert {c.details["turn"] for c in result.checks} == {1, 2}
    assert all(c.reason.startswith(f"turn {c.details['turn']}: ") for c in result.checks)  # shown in the report
    second = sent(llm)[-1]
    assert second[1]["content"] == "Hi, my name is Ann."  # the turns ran in one session

    llm.reset()
    llm.add(r"my name is", "Nice to meet you, Ann.")
    llm.add(r"what is my name", "You are Ann.")
    assert run_suite(suite, rt, options=QUIET).passed == 1


def test_model_target_turns_grow_the_message_list(tmp_path: Path, rt, llm) -> None:
    llm.add(r"2\+2", "4")
    llm.add(r"times 3", "12")
    text = """\
name: math
target: model:gpt
prompt: "{{question}}"
cases:
  - turns:
      - {input: "2+2?", checks: [{equals: "4"}]}
      - {input: "times 3?", checks: [{equals: "12"}]}
"""
    suite = load_suite(write_suite(tmp_path / "evals" / "math.yaml", text), rt.project)
    assert run_suite(suite, rt, options=QUIET).passed == 1
    assert [m["content"] for m in sent(llm)[-1]] == ["2+2?", "4", "times 3?"]


def test_a_conversations_stored_reference_is_its_last_turns(tmp_path: Path, rt, llm) -> None:
    llm.add(r"2\+2", "4")
    llm.add(r"times 3", "12")
    text = """\
name: math-ref
target: model:gpt
prompt: "{{question}}"
cases:
  - turns:
      - {input: "2+2?"}
      - {input: "times 3?", reference: "12", checks: [{equals: "12"}]}
"""
    suite = load_suite(write_suite(tmp_path / "evals" / "math-ref.yaml", text), rt.project)
    summary = run_suite(suite, rt, options=QUIET)
    assert summary.passed == 1 and summary.results[0].reference == "12"  # shown in the run page's reference column


@pytest.mark.parametrize(("case", "message", "line"), [
    ("  - turns: [{input: hi, chekcs: []}]", "unknown key `chekcs` in case 1 — did you mean `checks`?", 4),
    ("  - turns: []", "turns", 4),
    ("  - id: x\n    turns:\n      - {checks: []}", "the suite needs `turns.0.input:` in case 1", 6),
    ("  - turns: [{input: hi}]\n    choices: [a, b]\n    answer: 0", "both `turns:` and `choices:`", 5),
])
def test_bad_turns_are_config_errors_with_file_and_line(tmp_path: Path, rt, case, message, line) -> None:
    path = write_suite(tmp_path / "evals" / "bad.yaml", f"name: bad\ntarget: app:support\ncases:\n{case}\n")
    with pytest.raises(ConfigError) as err:
        load_suite(path, rt.project)
    assert message in err.value.message and err.value.where == f"{path}:{line}"


def test_memory_store_on_both_engines(store_url: str) -> None:
    from flywheel.store import Store

    with Store.open(store_url) as store:
        assert schema_diff(store, ["chat_turns"]) == []
        memory = ConversationMemory(store, max_turns=2, keep_turns=3)
        for i in range(5):
            memory.append("acme", "support", "s", f"q{i}", f"a{i} key sk-proj-{'x' * 40}")
        assert [t.user for t in memory.turns("acme", "support", "s")] == ["q2", "q3", "q4"]  # kept: 3
        assert [m.content for m in memory.history("acme", "support", "s")][::2] == ["q3", "q4"]  # shown: 2
        assert "sk-proj" not in memory.turns("acme", "support", "s")[0].answer  # credentials scrubbed
        assert memory.turns("globex", "support", "s") == [] and memory.turns("acme", "other", "s") == []
        assert memory.clear("acme", "support", "s") == 3 and memory.turns("acme", "support", "s") == []


def test_a_streamed_turn_is_remembered(rt, llm) -> None:
    llm.add(r"plan", "Take the train. It is faster.")
    llm.add(r"why", "Because of traffic.")
    app = rt.app("support").remember(rt.store)
    stream = app.stream("plan my trip", session_id="st")
    assert "".join(stream) == "Take the train. It is faster." and stream.answer is not None
    app.run("why?", session_id="st")
    assert "Take the train. It is faster." in [m["content"] for m in sent(llm)[-1]]
