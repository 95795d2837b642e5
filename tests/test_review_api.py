"""The review API through a real server: tenant-bound queues, next / label / undo with the overlap enforced
(409), bad input as 400 / 404 in the server's error shape, and agreement."""

from __future__ import annotations

import httpx
import pytest
from review_support import add_traces

from flywheel.server import review_api


@pytest.fixture(scope="module")
def api(live):
    """The module's server with the review routes (mounted here until server/app.py includes them)."""
    if not any(getattr(r, "path", "") == "/v1/review/queues" for r in live.app.routes):
        live.app.include_router(review_api.router)
    keys = live.state.keys
    made = {t: keys.create(f"review-{t}", tenant=t)[0] for t in ("acme", "globex")}
    traces = {t: add_traces(live.state.store, [{"input": f"{t} question {i}", "tenant": t} for i in range(4)])
              for t in ("acme", "globex")}
    yield live, made, traces
    for t in made:
        keys.revoke(f"review-{t}")


def call(live, method: str, path: str, key: str | None, body: dict | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.request(method, live.url + path, json=body, headers=headers, timeout=30)


def test_queues_are_tenant_bound(api):
    live, keys, traces = api
    made = call(live, "POST", "/v1/review/queues", keys["acme"], {"name": "acme-daily", "n": 10, "seed": 1,
                                                                   "overlap": 2})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["tenant"] == "acme" and body["seed"] == 1 and body["progress"]["items"] == 4
    assert {i["trace_id"] for i in body["items"]} == set(traces["acme"])  # only its own tenant's traces
    listed = call(live, "GET", "/v1/review/queues", keys["globex"]).json()["data"]
    assert "acme-daily" not in {q["name"] for q in listed}
    assert "acme-daily" in {q["name"] for q in call(live, "GET", "/v1/review/queues", keys["acme"]).json()["data"]}
    hidden = call(live, "GET", "/v1/review/queues/acme-daily", keys["globex"])
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    item = body["items"][0]["id"]
    stolen = call(live, "POST", f"/v1/review/items/{item}/label", keys["globex"], {"annotator": "eve",
                                                                                   "verdict": "pass"})
    assert stolen.status_code == 404
    assert call(live, "POST", "/v1/review/queues/acme-daily/next", keys["globex"], {}).status_code == 404
    assert call(live, "GET", "/v1/review/queues", None).status_code == 401


def test_next_label_undo_and_agreement(api):
    live, keys, traces = api
    key = keys["globex"]
    made = call(live, "POST", "/v1/review/queues", key, {"name": "g1", "trace_ids": traces["globex"][:2],
                                                         "overlap": 2})
    assert made.status_code == 201, made.text
    first = call(live, "POST", "/v1/review/queues/g1/next", key, {"annotator": "ana"}).json()
    item = first["item"]
    assert item["choices"] == ["pass", "fail"] and item["prompt"] and item["input"].startswith("globex question")
    ok = call(live, "POST", f"/v1/review/items/{item['id']}/label", key,
              {"annotator": "ana", "verdict": "fail", "reason": "wrong"})
    assert ok.status_code == 201 and ok.json()["verdict"] == "fail"
    twice = call(live, "POST", f"/v1/review/items/{item['id']}/label", key, {"annotator": "ana", "verdict": "pass"})
    assert twice.status_code == 409 and "already labelled" in twice.json()["error"]["message"]
    by_key = call(live, "POST", f"/v1/review/items/{item['id']}/label", key, {"verdict": "fail"})
    assert by_key.status_code == 201 and by_key.json()["annotator"] == "review-globex"  # the key's name
    full = call(live, "POST", f"/v1/review/items/{item['id']}/label", key, {"annotator": "cy", "verdict": "pass"})
    assert full.status_code == 409
    outside = call(live, "POST", f"/v1/review/items/{item['id']}/label", key, {"annotator": "dee", "verdict": "b"})
    assert outside.status_code == 400 and "pass, fail" in outside.json()["error"]["message"]
    unknown = call(live, "POST", "/v1/review/items/nope/label", key, {"annotator": "ana", "verdict": "pass"})
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
    extra = call(live, "POST", f"/v1/review/items/{item['id']}/label", key, {"annotator": "x", "verdict": "pass",
                                                                             "color": "red"})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "color"
    undone = call(live, "POST", f"/v1/review/items/{item['id']}/undo", key, {"annotator": "review-globex"})
    assert undone.status_code == 200 and undone.json()["removed"]["verdict"] == "fail"
    again = call(live, "POST", f"/v1/review/items/{item['id']}/undo", key, {"annotator": "review-globex"})
    assert again.status_code == 404
    for who in ("bob", "ana"):
        nxt = call(live, "POST", "/v1/review/queues/g1/next", key, {"annotator": who}).json()["item"]
        assert nxt is not None
        assert call(live, "POST", f"/v1/review/items/{nxt['id']}/label", key,
                    {"annotator": who, "verdict": "pass"}).status_code == 201
    assert call(live, "POST", "/v1/review/queues/g1/next", key, {"annotator": "ana"}).json()["item"] is None
    shown = call(live, "GET", "/v1/review/queues/g1", key).json()
    assert shown["progress"]["annotators"] == {"ana": 2, "bob": 1} and len(shown["items"]) == 2
    report = call(live, "GET", "/v1/review/queues/g1/agreement", key)
    assert report.status_code == 200, report.text
    assert report.json()["queue"] == "g1" and report.json()["n_items"] == 2
    assert [d["item_id"] for d in report.json()["disagreements"]] == [item["id"]]


def test_bad_queue_requests(api):
    live, keys, _ = api
    key = keys["acme"]
    empty = call(live, "POST", "/v1/review/queues", key, {"since": 4_000_000_000})
    assert empty.status_code == 400 and "nothing to review" in empty.json()["error"]["message"]
    typo = call(live, "POST", "/v1/review/queues", key, {"strategy": "low-scor"})
    assert typo.status_code == 400 and "did you mean 'low-score'" in typo.json()["error"]["message"]
    assert call(live, "POST", "/v1/review/queues", key, {"n": 0}).status_code == 400
    assert call(live, "POST", "/v1/review/queues", key, {"kind": "likert"}).status_code == 400
    other = call(live, "POST", "/v1/review/queues", key, {"trace_ids": ["ab" * 16]})
    assert other.status_code == 400 and "unknown trace" in other.json()["error"]["message"]
