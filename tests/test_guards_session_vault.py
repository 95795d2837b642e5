"""Chat sessions keep their redaction vault in process memory: a value masked in turn 1 comes back when a later
answer repeats turn 1's placeholder; sessions (and tenants) never see each other's values; the store never holds
the value; the vaults are bounded (LRU, TTL); the streamed path and `flywheel serve` do the same."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from pii_placeholder_replies import copies_placeholders
from sqlalchemy import MetaData, select

from flywheel.apps.memory import SessionVaults
from flywheel.apps.runtime import Runtime
from flywheel.checks.pii import PLACEHOLDER
from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
apps:
  support:
    kind: chat
    model: gpt
    options: {{system: "You are ACME support."}}
    guards:
      input:
        - {{check: pii, on_fail: redact}}
"""
ANN, BOB = "ann.lee@example.com", "bob.kim@example.org"


def write_project(root: Path, base_url: str) -> Project:
    (root / "flywheel.yaml").write_text(YAML.format(base=base_url), encoding="utf-8")
    return Project.load(root)


def last_user(body: dict) -> str:
    return str(body["messages"][-1]["content"])


def script(llm: FakeLLM) -> None:
    """A model that answers from the conversation: it repeats the placeholder it was given in an earlier turn."""
    llm.add(r"my email is", "Noted, thanks.")
    llm.add(r"what is my email", copies_placeholders("Your email is {EMAIL_ADDRESS_1}."))
    llm.add(r"^echo", lambda body: last_user(body)[5:])


def sent(llm: FakeLLM) -> list[list[dict]]:
    return [r["messages"] for r in llm.requests if r["path"].endswith("/chat/completions")]


@pytest.fixture
def rt(tmp_path: Path, llm: FakeLLM):
    script(llm)
    with Runtime(write_project(tmp_path, llm.base_url)) as runtime:
        yield runtime


def app_with_vaults(rt: Runtime, vaults: SessionVaults):
    app = rt.app("support")
    app.memory.vaults = vaults
    return app


def store_text(rt: Runtime) -> str:
    """Every string in every table of the store."""
    rt.store.flush()
    meta = MetaData()
    meta.reflect(rt.store.engine)
    out: list[str] = []
    with rt.store.connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                out += [str(v) for v in row if v is not None]
    return "\n".join(out)


def test_a_later_turn_shows_the_value_masked_in_an_earlier_turn(rt, llm) -> None:
    app = app_with_vaults(rt, SessionVaults())
    app.run(f"Hi, my email is {ANN}.", session_id="s-1")
    first_sent = sent(llm)[-1][-1]["content"]
    assert ANN not in first_sent and "<EMAIL_ADDRESS_1_" in first_sent
    answer = app.run("What is my email?", session_id="s-1")
    assert answer.text == f"Your email is {ANN}."
    assert all(ANN not in m["content"] for m in sent(llm)[-1])  # the model still never saw it
    # the same value keeps the same placeholder in a later turn (one vault, one nonce per session)
    app.run(f"echo write to {ANN} please", session_id="s-1")
    issued = {m.group(0) for m in PLACEHOLDER.finditer(first_sent)}
    assert issued and issued <= {m.group(0) for m in PLACEHOLDER.finditer(sent(llm)[-1][-1]["content"])}


def test_sessions_and_tenants_never_see_each_others_values(rt, llm) -> None:
    app = app_with_vaults(rt, SessionVaults())
    app.run(f"Hi, my email is {ANN}.", session_id="s-a")
    ann_placeholder = PLACEHOLDER.search(sent(llm)[-1][-1]["content"]).group(0)  # type: ignore[union-attr]
    app.run(f"Hi, my email is {BOB}.", session_id="s-b")
    assert app.run("What is my email?", session_id="s-b").text == f"Your email is {BOB}."
    # planted text: session A's exact placeholder, and one with no nonce, echoed by the model in session B
    echoed = app.run(f"echo {ann_placeholder} and <EMAIL_ADDRESS_1>", session_id="s-b").text
    assert ANN not in echoed and BOB not in echoed
    assert echoed == f"{ann_placeholder} and <EMAIL_ADDRESS_1>"
    # the same session id under another tenant is another conversation with another vault
    other = app.run(f"echo {ann_placeholder}", tenant="other", session_id="s-a").text
    assert ANN not in other
    assert app.run("What is my email?", session_id="s-a").text == f"Your email is {ANN}."


def test_the_store_never_holds_a_redacted_value(rt, llm) -> None:
    app = app_with_vaults(rt, SessionVaults())
    app.run(f"Hi, my email is {ANN}.", session_id="s-1")
    assert app.run("What is my email?", session_id="s-1").text == f"Your email is {ANN}."
    assert app.run(f"echo {ANN} is mine", session_id="s-1").text == f"{ANN} is mine"
    turns = app.memory.turns("default", "support", "s-1")
    assert len(turns) == 3 and turns[1].answer.startswith("Your email is <EMAIL_ADDRESS_1_")
    assert ANN not in store_text(rt)


def test_vaults_are_bounded_by_sessions_and_time(rt, llm, clock) -> None:
    vaults = SessionVaults(max_sessions=2, ttl_s=60, clock=clock)
    app = app_with_vaults(rt, vaults)
    for session in ("s-1", "s-2", "s-3"):
        app.run(f"Hi, my email is {ANN}.", session_id=session)
    assert len(vaults) == 2
    evicted = app.run("What is my email?", session_id="s-1").text  # the oldest session's vault was dropped
    assert ANN not in evicted and "<EMAIL_ADDRESS_1_" in evicted
    assert app.run("What is my email?", session_id="s-3").text == f"Your email is {ANN}."
    clock.advance(61)
    expired = app.run("What is my email?", session_id="s-3").text
    assert ANN not in expired and "<EMAIL_ADDRESS_1_" in expired


def test_a_streamed_turn_restores_and_is_remembered_masked(rt, llm) -> None:
    app = app_with_vaults(rt, SessionVaults())
    first = app.stream(f"Hi, my email is {ANN}.", session_id="s-1")
    assert "".join(first) == "Noted, thanks."
    stream = app.stream("What is my email?", session_id="s-1")
    assert "".join(stream) == f"Your email is {ANN}." and stream.answer.text == f"Your email is {ANN}."
    turns = app.memory.turns("default", "support", "s-1")
    assert len(turns) == 2 and ANN not in turns[1].answer and "<EMAIL_ADDRESS_1_" in turns[1].answer


def test_concurrent_turns_of_one_session_never_share_a_placeholder(rt, llm) -> None:
    app = app_with_vaults(rt, SessionVaults())
    emails = [f"user{i}@example.com" for i in range(6)]
    answers: dict[str, str] = {}

    def turn(email: str) -> None:
        answers[email] = app.run(f"echo mail {email} now", session_id="s-busy").text

    threads = [threading.Thread(target=turn, args=(e,)) for e in emails]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {e: f"mail {e} now" for e in emails}
    vault = app.memory.vault("default", "support", "s-busy")
    assert sorted(vault.values()) == sorted(emails) and len({*vault}) == len(emails)


def test_flywheel_serve_restores_an_earlier_turns_value(tmp_path: Path, llm) -> None:
    from server_support import serve_project

    script(llm)
    server = serve_project(tmp_path, YAML.format(base=llm.base_url))
    try:
        url = f"{server.url}/v1/chat/completions"
        for text in (f"Hi, my email is {ANN}.", "What is my email?"):
            reply = httpx.post(url, json={"model": "app:support", "messages": [{"role": "user", "content": text}],
                                          "metadata": {"session_id": "web-1"}}, timeout=30)
            assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == f"Your email is {ANN}."
        other = httpx.post(f"{server.url}/v1/apps/support", json={"input": "What is my email?",
                                                                  "session_id": "web-2"}, timeout=30)
        assert ANN not in other.json()["text"]
    finally:
        server.stop()
