"""Cache keys: what invalidates an entry by itself, what is noise, and per-request directives."""

from __future__ import annotations

import pytest

from flywheel.cache.keys import Versions, directives, exact_key, is_single_turn, item_key, semantic_scope
from flywheel.errors import UserError
from flywheel.types import ChatRequest, Message

BASE = Versions("qwen2.5:7b@2025-01", prompt_version="p1", corpus_version="c1", tenant="acme")


def req(text: str = "How do I pin a model version?", **kw) -> ChatRequest:
    return ChatRequest.of(text, system="You answer from the docs.", **kw)


@pytest.mark.parametrize("changed", [
    Versions("qwen2.5:7b@2025-02", "p1", "c1", "acme"),  # model upgrade
    Versions("qwen2.5:7b@2025-01", "p2", "c1", "acme"),  # prompt edit
    Versions("qwen2.5:7b@2025-01", "p1", "c2", "acme"),  # re-ingested corpus
    Versions("qwen2.5:7b@2025-01", "p1", "c1", "other"),  # another tenant
])
def test_model_prompt_corpus_or_tenant_change_gives_a_new_key(changed: Versions) -> None:
    assert exact_key(req(), changed) != exact_key(req(), BASE)


def test_output_changing_params_are_in_the_key_and_noise_is_not() -> None:
    key = exact_key(req(), BASE)
    assert exact_key(req(temperature=0.7), BASE) != key
    assert exact_key(req(max_tokens=50), BASE) != key
    assert exact_key(req(response_format={"type": "json_object"}), BASE) != key
    assert exact_key(req(text="How do I pin a model?"), BASE) != key
    # noise: timeouts, metadata (trace ids, directives, tags), surrounding whitespace, CRLF
    assert exact_key(req(timeout=3.0, metadata={"trace": "abc", "cache": "no-store"}), BASE) == key
    assert exact_key(req(text="  How do I pin a model version?\r\n"), BASE) == key


def test_system_prompt_is_part_of_the_key() -> None:
    other = ChatRequest.of("How do I pin a model version?", system="Answer in French.")
    assert exact_key(other, BASE) != exact_key(req(), BASE)


def test_item_keys_follow_the_item_version_not_the_text() -> None:
    a = item_key("summarise", "doc-42", 3, versions=BASE)
    assert item_key("summarise", "doc-42", "3", versions=BASE) == a
    assert item_key("summarise", "doc-42", 4, versions=BASE) != a
    assert item_key("translate", "doc-42", 3, versions=BASE) != a
    assert item_key("summarise", "doc-43", 3, versions=BASE) != a
    # a request marked as an item task is keyed by the item, whatever its (long) text
    marked = req("Summarise: <10 pages>", metadata={"cache_item": {"task": "summarise", "id": "doc-42", "version": 3}})
    assert exact_key(marked, BASE) == a
    with pytest.raises(UserError, match="cache_item"):
        exact_key(req(metadata={"cache_item": "doc-42"}), BASE)


def test_semantic_scope_ignores_the_question_but_not_its_context() -> None:
    a = semantic_scope(req("What is flywheel?"), BASE)
    assert semantic_scope(req("Tell me what flywheel is"), BASE) == a
    assert semantic_scope(ChatRequest.of("What is flywheel?", system="Be terse."), BASE) != a
    assert semantic_scope(req("What is flywheel?"), Versions("other-model", "p1", "c1", "acme")) != a
    assert semantic_scope(req("What is flywheel?"), Versions(BASE.model_version, "p1", "c1", "t2")) != a


def test_multi_turn_scope_includes_the_history() -> None:
    def convo(first_answer: str) -> ChatRequest:
        return ChatRequest(messages=[Message(role="user", content="Tell me about Paris"),
                                     Message(role="assistant", content=first_answer),
                                     Message(role="user", content="And its population?")])

    assert not is_single_turn(convo("Paris is the capital of France."))
    assert is_single_turn(req())
    assert semantic_scope(convo("A"), BASE, multi_turn=True) == semantic_scope(convo("A"), BASE, multi_turn=True)
    assert semantic_scope(convo("A"), BASE, multi_turn=True) != semantic_scope(convo("B"), BASE, multi_turn=True)


@pytest.mark.parametrize("value, read, write", [
    (None, True, True),
    ("no-cache", False, True),
    ("no-store", True, False),
    ("no-cache, no-store", False, False),
    (["no-store", "no-cache"], False, False),
    ("NO_CACHE", False, True),
])
def test_directives(value, read: bool, write: bool) -> None:
    d = directives(req(metadata={} if value is None else {"cache": value}))
    assert (d.read, d.write) == (read, write)


def test_unknown_directive_is_a_user_error() -> None:
    with pytest.raises(UserError, match="no-cahce") as err:
        directives(req(metadata={"cache": "no-cahce"}))
    assert "no-cache" in (err.value.hint or "")


# ---------------------------------------------------------------- everything that changes an output


def _alias(**kw):
    from flywheel.config import ModelAlias

    base = {"provider": "openai_compat", "model": "qwen2.5:7b", "base_url": "http://localhost:11434/v1"}
    return ModelAlias(**{**base, **kw})


def _with(**changes) -> Versions:
    import dataclasses

    from flywheel.cache.keys import route_version

    routed = dataclasses.replace(BASE, route=route_version([_alias()]), guards="g1")
    return dataclasses.replace(routed, **changes)


@pytest.mark.parametrize("changed", [
    {"model_version": "qwen2.5:7b@2025-02"},
    {"prompt_version": "p2"},
    {"corpus_version": "c2"},
    {"tenant": "other"},
    {"guards": "g2"},  # another guard policy (apps pass GuardPolicy.version)
    {"route": "provider"},
    {"route": "base_url"},
    {"route": "version"},
    {"route": "params"},
    {"route": "family"},
    {"route": "fallbacks"},
], ids=lambda c: next(iter(c.values())) if "route" in c else next(iter(c)))
def test_each_thing_that_changes_an_output_changes_the_key(changed) -> None:
    from flywheel.cache.keys import route_version

    routes = {"provider": [_alias(provider="anthropic", base_url=None)],
              "base_url": [_alias(base_url="https://api.deepseek.com/v1")],
              "version": [_alias(version="2025-02")],
              "params": [_alias(params={"temperature": 0.7})],
              "family": [_alias(family="qwen")],
              "fallbacks": [_alias(), _alias(model="llama3.1:8b")]}
    if "route" in changed:
        changed = {"route": route_version(routes[changed["route"]])}
    assert exact_key(req(), _with(**changed)) != exact_key(req(), _with())
    assert semantic_scope(req(), _with(**changed)) != semantic_scope(req(), _with())


def test_request_params_each_change_the_key() -> None:
    key = exact_key(req(), _with())
    changed = [req(temperature=0.2), req(max_tokens=10), req(stop=["\n"]),
               req(response_format={"type": "json_object"})]
    assert len({exact_key(r, _with()) for r in changed} | {key}) == 5


def test_the_route_ignores_what_does_not_change_an_answer() -> None:
    from flywheel.cache.keys import route_version

    same = route_version([_alias()])
    assert route_version([_alias(base_url="http://localhost:11434/v1/")]) == same  # trailing slash
    assert route_version([_alias(api_key_env="OTHER_KEY", timeout=5.0, max_retries=0)]) == same
