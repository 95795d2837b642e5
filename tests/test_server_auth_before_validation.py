"""Authentication before validation, through a real server: a bad (or missing) key with a malformed body is 401,
never the 400 that would tell an unauthenticated client how the body is checked. With a valid key the same
bodies are the 400 naming the field; feedback accepts a feedback token (header or body) instead of a key."""

from __future__ import annotations

import httpx
import openai
import pytest

BAD = "fw-000000000000-" + "x" * 43
# (path, a body each route rejects): a missing required field, a wrong type, and bytes that are not JSON
ROUTES = [
    ("/v1/chat/completions", {"model": "gpt"}),  # reads its body itself (calls.read_body)
    ("/v1/messages", {"model": "gpt", "max_tokens": "many"}),  # Anthropic wire
    ("/v1/responses", {"model": "gpt", "input": {"not": "items"}}),  # OpenAI Responses wire
    ("/v1/apps/support", {"input": 42, "stream": "sometimes"}),  # FastAPI body parameter
    ("/v1/embeddings", {"input": {"not": "text"}}),
    ("/v1/review/queues", {"kind": 7}),
    ("/v1/keys", {"budget_usd": "lots"}),
    ("/v1/feedback", {"name": 3, "trace_id": ["x"]}),
]


@pytest.fixture(scope="module")
def key(live):
    made, _ = live.state.keys.create("auth-order")  # from now on the server requires keys
    return made


def _post(live, path: str, headers: dict[str, str], **kwargs) -> httpx.Response:
    return httpx.post(live.url + path, headers=headers, timeout=30, **kwargs)


@pytest.mark.parametrize("path,body", ROUTES)
@pytest.mark.parametrize("auth", [{}, {"authorization": f"Bearer {BAD}"}, {"x-api-key": BAD}])
def test_a_bad_key_with_a_bad_body_is_401(live, key, path, body, auth):
    as_json = {**auth, "content-type": "application/json"}
    for resp in (_post(live, path, auth, json=body), _post(live, path, as_json, content=b"{not json")):
        assert resp.status_code == 401, (path, resp.text)
        assert "field" not in resp.text and "json" not in resp.json()["error"]["message"].lower()


@pytest.mark.parametrize("path,body", [r for r in ROUTES if r[0] not in ("/v1/keys",)])
def test_a_valid_key_with_a_bad_body_still_learns_what_is_wrong(live, key, path, body):
    resp = _post(live, path, {"authorization": f"Bearer {key}"}, json=body)
    assert resp.status_code == 400, (path, resp.text)
    broken = _post(live, path, {"authorization": f"Bearer {key}", "content-type": "application/json"},
                   content=b"{not json")
    assert broken.status_code == 400, (path, broken.text)


def test_the_openai_sdk_with_a_bad_key_and_a_bad_request_gets_authentication_error(live, key):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=BAD, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt", messages=[{"role": "nobody", "content": 5}])  # type: ignore[misc]
    good = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError):
        good.chat.completions.create(model="gpt", messages=[{"role": "nobody", "content": 5}])  # type: ignore[misc]


def test_feedback_with_a_token_and_a_bad_body(live, key, server_llm):
    server_llm.add(r"auth order", "Answered.")
    answer = _post(live, "/v1/apps/support", {"authorization": f"Bearer {key}"}, json={"input": "auth order?"})
    token = answer.json()["feedback"]["token"]
    in_body = _post(live, "/v1/feedback", {}, json={"token": token, "name": "thumbs", "bogus": 1})
    assert in_body.status_code == 400 and in_body.json()["error"]["param"] == "bogus"
    in_header = _post(live, "/v1/feedback", {"x-flywheel-feedback-token": token}, json={"name": 3})
    assert in_header.status_code == 400
    forged = _post(live, "/v1/feedback", {}, json={"token": token[:-2] + "xx", "name": "thumbs", "bogus": 1})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_feedback_token"
    ok = _post(live, "/v1/feedback", {}, json={"token": token, "name": "thumbs", "value": "up"})
    assert ok.status_code == 201
