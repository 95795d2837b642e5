"""`GET /openapi.json` on a real `flywheel serve` app: open while the server is, behind a key once keys are
required (it names every route and the version), while the probes stay open and /docs, /redoc do not exist."""

from __future__ import annotations

import httpx
import pytest
from server_support import LiveServer, write_project

from flywheel.server.app import _version


@pytest.fixture()
def upstream():
    from flywheel.testing.fake_llm import FakeLLM

    with FakeLLM() as server:
        yield server


def _serve(tmp_path, upstream, host: str = "127.0.0.1") -> LiveServer:
    from flywheel.server import create_app

    return LiveServer(create_app(write_project(tmp_path, upstream.base_url), host=host)).start()


def _without_key_learns_nothing(url: str) -> None:
    resp = httpx.get(url + "/openapi.json")
    assert resp.status_code == 401, resp.text[:200]
    assert resp.json()["error"]["code"] == "missing_api_key"
    assert _version() not in resp.text and "/v1/chat/completions" not in resp.text
    for probe in ("/healthz", "/readyz"):  # load balancers and orchestrators carry no key
        assert httpx.get(url + probe).status_code == 200
    for page in ("/docs", "/redoc"):  # FastAPI's pages load from a CDN: not served at all
        assert httpx.get(url + page).status_code == 404
    assert "version" not in httpx.get(url + "/", headers={"accept": "application/json"}).json()


def test_openapi_needs_a_key_once_keys_exist(tmp_path, upstream):
    server = _serve(tmp_path, upstream)
    try:
        spec = httpx.get(server.url + "/openapi.json").json()  # an open loopback server: open like /v1
        assert spec["info"]["version"] == _version() and "/v1/chat/completions" in spec["paths"]
        key, _ = server.state.keys.create("reader")
        _without_key_learns_nothing(server.url)
        bad = httpx.get(server.url + "/openapi.json", headers={"authorization": "Bearer fw-000000000000-" + "x" * 43})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
        for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}):
            resp = httpx.get(server.url + "/openapi.json", headers=headers)
            assert resp.status_code == 200 and resp.json() == spec
    finally:
        server.stop()


def test_openapi_needs_a_key_on_a_server_bound_beyond_loopback(tmp_path, upstream):
    server = _serve(tmp_path, upstream, host="0.0.0.0")  # keys required before any exists
    try:
        _without_key_learns_nothing(server.url)
    finally:
        server.stop()
