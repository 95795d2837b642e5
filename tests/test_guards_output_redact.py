"""Output-side `redact`: its placeholders never collide with the input vault (found by the S6 guards audit).

Before the fix, an output `pii` redact numbered the model's address `<EMAIL_ADDRESS_1>`, the same placeholder
the input redaction had given the user's address, so restoring the answer put the user's address where the
model had quoted another one (and a streamed answer did the same, per sentence).
"""

from __future__ import annotations

import sqlite3

from pii_placeholder_replies import copies_placeholders, redacting_chat_project

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.guards import GuardPolicy

USER = "ann.lee@example.com"
OTHER = "refunds@acme-corp.com"


def write_project(tmp_path, base_url: str) -> Project:
    return redacting_chat_project(tmp_path, base_url, output_redact=True)


def test_output_redaction_is_not_restored_to_the_users_value(tmp_path, llm):
    llm.add(r"refund", copies_placeholders(f"Write to {OTHER}; I noted {{EMAIL_ADDRESS_1}} as yours."))
    with Runtime(write_project(tmp_path, llm.base_url)) as rt:
        answer = rt.app("support").run(f"How do I get a refund? My email is {USER}")
        streamed = rt.app("support").stream(f"How do I get a refund, please? My email is {USER}")
        shown = "".join(streamed)
    assert answer.text == f"Write to <EMAIL_ADDRESS>; I noted {USER} as yours."
    assert shown == answer.text
    assert OTHER not in answer.text and answer.text.count(USER) == 1
    db = sqlite3.connect(tmp_path / ".flywheel" / "flywheel.db")
    rows = [str(v) for t in ("spans", "cache_entries") for row in db.execute(f"select * from {t}") for v in row]
    assert not any(USER in v for v in rows)


def test_output_stage_redact_uses_type_placeholders_and_leaves_the_vault_empty():
    p = GuardPolicy.from_config({"output": [{"check": "pii", "on_fail": "redact"}]})
    out = p.output.run(f"Mail {OTHER} or {USER}.")
    assert out.passed and out.text == "Mail <EMAIL_ADDRESS> or <EMAIL_ADDRESS>." and out.vault == {}
    inp = GuardPolicy.from_config({"input": [{"check": "pii", "on_fail": "redact"}]}).input.run(f"I am {USER}")
    issued = f"<EMAIL_ADDRESS_1_{inp.vault.nonce}>"
    assert inp.text == f"I am {issued}" and inp.vault == {issued: USER}


def test_refusal_note_names_the_guard_that_stopped_the_answer():
    from flywheel.cli.chat import answer_note
    from flywheel.types import Answer, GuardAction

    answer = Answer(text="Sorry", refused=True, refusal="guard_blocked", guard_actions=[
        GuardAction(stage="input", check="pii", action="redact", passed=False, reason="EMAIL_ADDRESS"),
        GuardAction(stage="sources", check="injection", action="drop", passed=False, reason="source [1]"),
        GuardAction(stage="output", check="judge", action="block", passed=False, reason="judge crashed")])
    assert answer_note(answer) == "refused by the `judge` output guard (block)"
