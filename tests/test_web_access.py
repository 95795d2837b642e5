"""Dashboard access and twins without a browser: open on loopback without keys, login with a key otherwise
(signed HttpOnly SameSite=Lax cookie, CSRF on every POST), tenant scoping of pages and twins, .json/.csv twins,
404 pages, invalid filters, language choice, and the web tables' schema."""

from __future__ import annotations

import csv
import io
import re

import pytest
from fastapi.testclient import TestClient
from server_support import write_project
from web_support import ADMIN_KEY, GLOBEX_TRACE, seed, trace_id

from flywheel import web
from flywheel.server import create_app
from flywheel.web import i18n


def _app(root, host="127.0.0.1"):
    app = create_app(write_project(root, "http://127.0.0.1:9/v1"), host=host)
    web.mount(app, app.state.flywheel)
    seed(app.state.flywheel.store)
    return app


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    app = _app(tmp_path_factory.mktemp("keyed"))
    state = app.state.flywheel
    state.admin_key = ADMIN_KEY
    keys = {"acme": state.keys.create("acme-viewer", tenant="acme")[0],
            "globex": state.keys.create("globex-viewer", tenant="globex")[0]}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, keys


def _csrf(client, path="/ui/login"):
    html = client.get(path).text
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _login(client, key):
    client.cookies.clear()
    token = _csrf(client)
    return client.post("/ui/login", data={"key": key, "csrf": token, "next": "/ui/traces"}, follow_redirects=False)


def test_open_on_loopback_without_keys(tmp_path):
    with TestClient(_app(tmp_path), base_url="http://127.0.0.1") as client:
        page = client.get("/ui/traces")
        assert page.status_code == 200 and "open (local, no keys)" in page.text
        assert len(client.get("/ui/traces.json?limit=500").json()["rows"]) == 126  # every tenant
        assert client.get("/ui/login", follow_redirects=False).status_code == 303


def test_not_open_on_another_address(tmp_path):
    with TestClient(_app(tmp_path, host="0.0.0.0")) as client:
        page = client.get("/ui/traces?model=gpt", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/ui/login?next=%2Fui%2Ftraces")
        assert client.get("/ui/traces.json").status_code == 401
        assert "flywheel keys create --name NAME" in client.get("/ui/login").text  # the command as it runs


def test_login_sets_a_signed_httponly_lax_cookie_and_scopes_the_tenant(keyed):
    client, keys = keyed
    response = _login(client, keys["acme"])
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "fw_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert keys["acme"].split("-", 2)[2] not in cookie  # the key's secret never goes into the cookie
    rows = client.get("/ui/traces.json?limit=500&tenant=globex").json()["rows"]
    assert rows and {r["tenant"] for r in rows} == {"acme"}  # a tenant filter cannot widen the scope
    assert client.get(f"/ui/traces/{GLOBEX_TRACE}").status_code == 404
    assert client.get(f"/ui/traces/{GLOBEX_TRACE}.json").status_code == 404
    assert client.get(f"/ui/traces/{GLOBEX_TRACE}/spans?offset=0").status_code == 404
    assert "globex" not in client.get("/ui/sessions").text
    forged = client.cookies.get("fw_session")[:-3] + "AAA"
    client.cookies.clear()
    client.cookies.set("fw_session", forged)
    assert client.get("/ui/traces", follow_redirects=False).status_code == 303


def test_bearer_key_for_twins_and_revocation(keyed):
    client, keys = keyed
    client.cookies.clear()
    rows = client.get("/ui/traces.json", headers={"Authorization": f"Bearer {keys['globex']}"}).json()["rows"]
    assert {r["tenant"] for r in rows} == {"globex"}
    assert client.get("/ui/traces.json", headers={"Authorization": "Bearer fw-nope"}).status_code == 401
    admin = client.get("/ui/traces.json?limit=500", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert len(admin["rows"]) == 126


def test_revoking_a_key_ends_its_sessions(tmp_path):
    app = _app(tmp_path)
    state = app.state.flywheel
    key = state.keys.create("temp", tenant="acme")[0]
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert _login(client, key).status_code == 303
        assert client.get("/ui/traces", follow_redirects=False).status_code == 200
        state.keys.revoke("temp")
        assert client.get("/ui/traces", follow_redirects=False).status_code == 303


def test_every_post_needs_the_csrf_token(keyed):
    client, keys = keyed
    client.cookies.clear()
    client.get("/ui/login")
    assert client.post("/ui/login", data={"key": keys["acme"]}, follow_redirects=False).status_code == 403
    assert _login(client, keys["acme"]).status_code == 303
    assert client.post("/ui/views", data={"name": "x", "query": "model=gpt"}).status_code == 403
    assert client.post("/ui/views", data={"name": "x", "query": "model=gpt", "csrf": "forged"}).status_code == 403
    token = _csrf(client, "/ui/traces")
    saved = client.post("/ui/views", data={"name": "gpt only", "query": "model=gpt&cursor=abc&evil=1",
                                           "csrf": token}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/ui/traces?model=gpt"
    page = client.get("/ui/traces").text
    assert "gpt only" in page
    view_id = re.search(r'action="/ui/views/(\d+)/delete"', page).group(1)
    assert client.post(f"/ui/views/{view_id}/delete", data={}).status_code == 403
    client.post(f"/ui/views/{view_id}/delete", data={"csrf": token})
    assert "gpt only" not in client.get("/ui/traces").text
    assert client.post("/ui/logout", data={}).status_code == 403


def test_login_redirects_only_to_the_dashboard(keyed):
    client, keys = keyed
    client.cookies.clear()
    token = _csrf(client)
    response = client.post("/ui/login", data={"key": keys["acme"], "csrf": token, "next": "//evil.example/x"},
                           follow_redirects=False)
    assert response.headers["location"] == "/ui/traces"


def test_twins_and_bad_input(keyed):
    client, keys = keyed
    _login(client, keys["acme"])
    page = client.get("/ui/traces.csv?feedback=negative")
    assert page.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(page.content.decode("utf-8-sig"))))
    assert len(table) == 10 and table[0]["tenant"] == "acme"
    bad = client.get("/ui/traces.json?latency_max=-1&status=weird")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"latency_max", "status"}
    html = client.get("/ui/traces?cost_min=abc&cursor=%%")
    assert html.status_code == 400 and 'data-invalid="cost_min"' in html.text and 'data-invalid="page"' in html.text
    missing = client.get("/ui/traces/0123456789abcdef")
    assert missing.status_code == 404 and "no trace with id &#39;0123456789abcdef&#39;" in missing.text
    assert client.get("/ui/sessions/nope").status_code == 404
    assert "no span" in client.get("/ui/spans/ffff/body").text
    assert client.get("/ui/sessions.json").json()["rows"][0]["session_id"] == "sess-2"
    assert client.get("/ui/users.csv").content.decode("utf-8-sig").startswith("user_id,traces,sessions")
    detail = client.get(f"/ui/traces/{trace_id(12)}.json").json()
    assert detail["trace"]["trace_id"] == trace_id(12) and len(detail["rows"]) == 5
    assert detail["feedback"][0]["comment"] == "wrong refund period"


def test_language_choice(keyed):
    client, keys = keyed
    _login(client, keys["acme"])
    assert "追踪" in client.get("/ui/traces", headers={"accept-language": "zh-CN,zh;q=0.9"}).text
    client.cookies.delete("fw_lang")
    assert "Traces" in client.get("/ui/traces", headers={"accept-language": "en-US"}).text
    assert i18n.choose(None, None, "fr, zh-TW;q=0.5") == "zh"
    assert i18n.choose("en", "zh", "zh") == "en"
    assert set(i18n.EN) == set(i18n.ZH)


def test_static_files_are_served_offline(keyed):
    client, _ = keyed
    js = client.get("/ui/static/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text[:2000]
    assert client.get("/ui/static/dashboard.css").status_code == 200
    assert "cdn" not in client.get("/ui/login").text.lower()


def test_web_schema_matches_its_migration(store):
    from flywheel.store.db import schema_diff

    assert schema_diff(store, ["web_views", "traces"]) == []


def test_a_big_trace_first_response_has_no_bodies_and_200_rows(keyed):
    from web_support import BIG_TRACE

    client, keys = keyed
    _login(client, keys["acme"])
    page = client.get(f"/ui/traces/{BIG_TRACE}")
    assert page.status_code == 200
    assert page.text.count('class="span') == 200 and 'id="more-spans"' in page.text
    assert "xxxxxxxx" not in page.text  # span bodies load on click only
    rest = client.get(f"/ui/traces/{BIG_TRACE}/spans?offset=400")
    assert rest.text.count('class="span') == 200 and 'id="more-spans"' not in rest.text  # 600 spans in all


def test_an_incomplete_trace_opens(tmp_path):
    from web_support import _span

    from flywheel.store.schema import spans
    from flywheel.tracing.store_sink import mark_open

    app = _app(tmp_path)
    store = app.state.flywheel.store
    tid = "d" * 32
    with store.engine.begin() as conn:
        conn.execute(spans.insert(), [_span(tid, "d" * 16, None, "support", "app", 1_790_000_000.0, 10,
                                            tenant="acme", inputs={"question": "killed mid-way"})])
        mark_open(conn, [(tid, 1_790_000_000.0)])  # as the span writer marks a trace stored without its row
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get(f"/ui/traces/{tid}")
        assert page.status_code == 200 and "incomplete" in page.text
        rows = client.get("/ui/traces.json?status=incomplete").json()["rows"]
        assert [r["trace_id"] for r in rows] == [tid]
