"""Virtual keys through a real server: auth and revocation, allowed models, tenant isolation, budgets exact at
the limit, rate limits with Retry-After (on an injected clock), and the `flywheel keys` CLI."""

from __future__ import annotations

import json
import random

import httpx
import openai
import pytest
from click.testing import CliRunner

from flywheel.cli import main


@pytest.fixture(scope="module")
def keys(live):
    return live.state.keys


def _chat(live, key: str | None, content: str = "hello", model: str = "gpt", **headers) -> httpx.Response:
    if key:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(live.url + "/v1/chat/completions", timeout=30, headers=headers,
                      json={"model": model, "messages": [{"role": "user", "content": content}]})


def test_open_until_the_first_key_then_keys_are_required(live, keys):
    assert _chat(live, None).status_code == 200  # no keys yet, bound to 127.0.0.1: open
    key, _ = keys.create("first")
    assert _chat(live, None).json()["error"]["code"] == "missing_api_key"
    assert _chat(live, "fw-000000000000-" + "x" * 43).status_code == 401
    assert _chat(live, key[:-1] + ("A" if key[-1] != "A" else "B")).status_code == 401  # forged secret
    assert _chat(live, key).status_code == 200
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0)
    assert client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}]).choices
    keys.revoke("first")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    stored = live.state.store.table("api_keys")
    with live.state.store.connect() as conn:
        row = conn.execute(stored.select().where(stored.c.name == "first")).mappings().one()
    secret = key.split("-", 2)[2]  # fw-<id>-<secret>: the secret itself may hold "-" (URL-safe base64)
    assert len(secret) >= 40 and secret not in json.dumps(dict(row), default=str)  # only the salted hash is stored


def test_allowed_models_and_apps(live, keys):
    key, _ = keys.create("narrow", models=["other"], apps=["support"])
    assert _chat(live, key, model="gpt").status_code == 403
    assert _chat(live, key, model="other").status_code == 200
    assert _chat(live, key, model="app:docs_qa").status_code == 403
    listed = {m["id"] for m in httpx.get(live.url + "/v1/models", headers={"authorization": f"Bearer {key}"})
              .json()["data"]}
    assert listed == {"other", "app:support"}
    one = httpx.get(live.url + "/v1/models/gpt", headers={"authorization": f"Bearer {key}"})
    assert one.status_code == 404 and "gpt" not in one.json()["error"]["message"].split("known:")[1]
    keys.revoke("narrow")


def test_tenant_isolation_randomized(live, keys, server_llm):
    """Each key only ever writes traces and feedback under its own tenant, and cannot post feedback on another
    tenant's trace (it looks missing), whatever the interleaving."""
    rng = random.Random(7)
    tenants = {t: keys.create(f"iso-{t}", tenant=t)[0] for t in ("acme", "globex", "initech")}
    traces: dict[str, list[str]] = {t: [] for t in tenants}
    for _ in range(12):
        tenant = rng.choice(list(tenants))
        resp = _chat(live, tenants[tenant], f"isolation {rng.random()}")
        assert resp.status_code == 200
        traces[tenant].append(resp.headers["x-flywheel-trace-id"])
    forbidden = _chat(live, tenants["acme"], "x", **{"x-flywheel-tenant": "globex"})
    assert forbidden.status_code == 403
    from flywheel.tracing import list_traces, tracer

    tracer.flush()
    for tenant in tenants:
        stored = {t["trace_id"] for t in list_traces(live.state.store, last=1000, tenant=tenant)}
        assert set(traces[tenant]) <= stored
        others = {tid for t, ids in traces.items() if t != tenant for tid in ids}
        assert not stored & others  # 0 cross-tenant rows
    cross = 0
    for tenant, key in tenants.items():
        for other, ids in traces.items():
            for tid in ids:
                resp = httpx.post(live.url + "/v1/feedback", headers={"authorization": f"Bearer {key}"},
                                  json={"trace_id": tid, "name": "thumbs", "value": "up"})
                if other == tenant:
                    assert resp.status_code == 201
                else:
                    cross += resp.status_code != 404
    assert cross == 0
    for tenant in tenants:
        keys.revoke(f"iso-{tenant}")


def test_budget_is_exhausted_exactly_at_the_limit(live, keys, server_llm):
    server_llm.add(r"^budget", "Yes.")  # 2 output tokens at $0.125 = $0.25 a call
    key, _ = keys.create("spender", budget_usd=0.75)
    codes = [_chat(live, key, "budget call").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = _chat(live, key, "budget call")
    assert refused.json()["error"]["code"] == "budget_exceeded" and int(refused.headers["retry-after"]) > 0
    row = next(r for r in keys.list() if r["name"] == "spender")
    assert row["spent_usd"] == 0.75 and row["reserved_usd"] == 0.0
    keys.revoke("spender")


def test_rate_limit_429_with_retry_after_then_next_minute(live, keys, server_clock):
    server_clock.now = 1_800_000_000.0 + 15  # 45 s before the next minute starts
    key, _ = keys.create("limited", rpm=2)
    assert [_chat(live, key).status_code for _ in range(2)] == [200, 200]
    refused = _chat(live, key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"] == "45"
    server_clock.advance(45)
    assert _chat(live, key).status_code == 200
    keys.revoke("limited")


def test_admin_key_manages_keys_over_http(live, monkeypatch):
    live.state.admin_key = "admin-secret-1234"
    try:
        admin = {"authorization": "Bearer admin-secret-1234"}
        made = httpx.post(live.url + "/v1/keys", headers=admin, json={"name": "via-http", "tenant": "acme", "rpm": 5})
        assert made.status_code == 201 and made.json()["key"].startswith("fw-")
        user = {"authorization": f"Bearer {made.json()['key']}"}
        assert httpx.get(live.url + "/v1/keys", headers=user).status_code == 403
        assert "via-http" in {k["name"] for k in httpx.get(live.url + "/v1/keys", headers=admin).json()["data"]}
        assert httpx.delete(live.url + "/v1/keys/via-http", headers=admin).status_code == 200
        assert httpx.get(live.url + "/v1/models", headers=user).status_code == 401
    finally:
        live.state.admin_key = None


def test_keys_cli(tmp_path):
    (tmp_path / "flywheel.yaml").write_text("models:\n  gpt: {provider: extractive}\n", encoding="utf-8")
    runner = CliRunner()
    made = runner.invoke(main, ["--project", str(tmp_path), "keys", "create", "--name", "ci", "--tenant", "acme",
                                "--models", "gpt", "--budget-usd", "10/month", "--rpm", "60", "--json"])
    assert made.exit_code == 0, made.output
    row = json.loads(made.stdout)
    assert row["key"].startswith("fw-") and row["budget_usd"] == 10 and row["tenant"] == "acme"
    listed = runner.invoke(main, ["--project", str(tmp_path), "keys", "list"])
    assert "ci" in listed.stdout and row["key"] not in listed.stdout
    assert "$0.0000 spent of $10 per month" in listed.stdout
    bad = runner.invoke(main, ["--project", str(tmp_path), "keys", "create", "--name", "x", "--models", "gpt-9"])
    assert bad.exit_code == 2 and "unknown model alias" in bad.output
    dup = runner.invoke(main, ["--project", str(tmp_path), "keys", "create", "--name", "ci"])
    assert dup.exit_code == 2
    assert runner.invoke(main, ["--project", str(tmp_path), "keys", "revoke", "ci"]).exit_code == 0
    assert runner.invoke(main, ["--project", str(tmp_path), "keys", "revoke", "ci"]).exit_code == 2


def test_app_retrieval_sees_only_the_keys_tenant(live, keys, tmp_path):
    from flywheel.retrieval.ingest import ingest

    for tenant, code in (("acme", "ALPHA-7"), ("globex", "BRAVO-9")):
        doc = tmp_path / tenant / "codes.md"
        doc.parent.mkdir()
        doc.write_text(f"# Launch codes\n\nThe launch code for the rocket is {code}.\n", encoding="utf-8")
        ingest([doc], live.state.store, live.state.project.config, tenant=tenant)
    acme, globex = keys.create("rag-acme", tenant="acme")[0], keys.create("rag-globex", tenant="globex")[0]
    for key, mine, theirs in ((acme, "ALPHA-7", "BRAVO-9"), (globex, "BRAVO-9", "ALPHA-7")):
        resp = httpx.post(live.url + "/v1/apps/docs_qa", headers={"authorization": f"Bearer {key}"},
                          json={"input": "What is the launch code for the rocket?"}, timeout=60)
        answer = resp.json()
        assert resp.status_code == 200 and answer["sources"], answer
        assert mine in answer["text"] and theirs not in resp.text
        forced = httpx.post(live.url + "/v1/apps/docs_qa", headers={"authorization": f"Bearer {key}"},
                            json={"input": "What is the launch code?", "tenant": "acme" if mine != "ALPHA-7" else "globex"})
        assert forced.status_code == 403
    keys.revoke("rag-acme")
    keys.revoke("rag-globex")


def test_cut_stream_usage_prices_the_prompt_and_the_text_produced(live):
    from flywheel.types import Message

    tin, tout, cost = live.state.cut_stream_usage("gpt", [Message(role="user", content="x" * 8)], "word0 word1")
    assert (tin, tout) == (2, 3) and cost == 3 * 0.125  # gpt: $0.125 per output token, input free
    assert live.state.cut_stream_usage("no-such-alias", [], "abc")[2] == 0.0


def test_a_stream_the_client_drops_is_charged_to_the_key(live, keys, server_llm):
    import time

    server_llm.add(r"charged story", " ".join(f"word{i}" for i in range(60)))
    server_llm.chunk_latency = 0.05
    key, _ = keys.create("streamer", budget_usd=100.0)
    try:
        with httpx.stream("POST", live.url + "/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {key}"},
                          json={"model": "gpt", "stream": True,
                                "messages": [{"role": "user", "content": "a charged story"}]}) as resp:
            for line in resp.iter_lines():
                if "word2" in line:
                    break  # hang up mid-stream
    finally:
        server_llm.chunk_latency = 0.0
    spent = 0.0
    for _ in range(200):  # the server notices the hang-up, ends the trace and settles
        spent = next(r for r in keys.list() if r["name"] == "streamer")["spent_usd"]
        if spent:
            break
        time.sleep(0.05)
    assert 0 < spent < 60 * 2 * 0.125  # what was produced before the hang-up, not the whole story
    keys.revoke("streamer")
