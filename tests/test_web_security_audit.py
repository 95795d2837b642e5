"""Regressions of a hostile-user audit of the dashboard over HTTP: times that are not numbers (`nan`, `inf`, an age
too long to count) are a 400, not a 500; the drift section refuses a range of more windows than it can hold (one
GET with `since=-99999999999999` ran the server out of memory); an admin session ends when FLYWHEEL_ADMIN_KEY
changes; a labelling form cannot give back another queue's (another tenant's) claims; CSV cells that start with a
tab or a carriage return cannot run as spreadsheet formulas; an open (keyless) dashboard answers only requests for a
loopback name, so a page that rebinds its own name to 127.0.0.1 cannot read it.

One app per module (its own store), driven through Starlette's TestClient as test_web_access.py does."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from server_support import write_project
from web_support import ADMIN_KEY, GLOBEX_TRACE, seed, trace_id

from flywheel import web
from flywheel.server import create_app

NOT_A_TIME = ("nan", "inf", "-inf", "9" * 400 + "d")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = create_app(write_project(tmp_path_factory.mktemp("secaudit"), "http://127.0.0.1:9/v1"))
    web.mount(app, app.state.flywheel)
    state = app.state.flywheel
    seed(state.store)
    state.admin_key = ADMIN_KEY
    keys = {"acme": state.keys.create("acme-viewer", tenant="acme")[0], "admin": ADMIN_KEY}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, state, keys


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _login(client: TestClient, key: str) -> None:
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text).group(1)
    assert client.post("/ui/login", data={"key": key, "csrf": token}, follow_redirects=False).status_code == 303


@pytest.mark.parametrize("value", NOT_A_TIME)
def test_a_time_that_is_not_a_number_is_a_400(site, value):
    """`since=nan` answered 500 on the traces and metrics twins (the JSON echoed a NaN it cannot encode), and
    the sessions list answered an empty 200."""
    client, _, keys = site
    client.cookies.clear()
    for path in ("/ui/traces", "/ui/traces.json", "/ui/traces.csv", "/ui/metrics.json", "/ui/sessions.json"):
        r = client.get(path, params={"since": value}, headers=_bearer(keys["acme"]))
        assert r.status_code == 400, (path, value, r.status_code)
    drift = client.get("/ui/monitors/drift.json", params={"since": value}, headers=_bearer(keys["admin"]))
    assert drift.status_code == 400 and "since" in drift.json()["errors"]


def test_a_number_or_a_time_out_of_range_is_a_400(site):
    """`latency_min=inf` and `cost_max=1e999` answered 500 on the traces twin (the JSON echoed the infinity), and
    `until=-99999999999999` a 500 on the metrics page (no date to show for the year -3166904)."""
    client, _, keys = site
    client.cookies.clear()
    for name in ("latency_min", "latency_max", "cost_min", "cost_max"):
        for value in ("inf", "1e999", "9" * 400):
            r = client.get("/ui/traces.json", params={name: value}, headers=_bearer(keys["acme"]))
            assert r.status_code == 400 and name in r.json()["errors"], (name, value, r.status_code)
    for name in ("since", "until"):
        for lang in ("en", "zh"):
            r = client.get("/ui/metrics", params={name: "-99999999999999", "lang": lang}, headers=_bearer(keys["acme"]))
            assert r.status_code == 400 and ("1970" in r.text), (name, r.status_code)
    nines = client.get("/ui/monitors/drift.json", params={"window": "9" * 400}, headers=_bearer(keys["admin"]))
    assert nines.status_code == 400 and "window" in nines.json()["errors"]


def test_drift_refuses_a_range_of_more_windows_than_it_holds(site):
    """Drift builds every window of the range in memory: 4 days of 1-minute windows is 5,760 of them, and
    `since=-99999999999999` asked for a billion (the server was killed for memory)."""
    client, _, keys = site
    client.cookies.clear()
    r = client.get("/ui/monitors/drift.json", params={"since": "4d", "window": "1m"}, headers=_bearer(keys["admin"]))
    assert r.status_code == 400
    assert "more than 400 windows" in r.json()["errors"]["since"]
    page = client.get("/ui/monitors/drift", params={"since": "-99999999999999"}, headers=_bearer(keys["admin"]))
    assert 'data-invalid="since"' in page.text
    fine = client.get("/ui/monitors/drift.json", params={"since": "2d", "window": "1h"}, headers=_bearer(ADMIN_KEY))
    assert "since" not in fine.json().get("errors", {})


def test_changing_the_admin_key_ends_the_old_keys_sessions(site):
    """The admin session cookie said only "admin": after FLYWHEEL_ADMIN_KEY was changed (say, because it leaked),
    a session opened with the old key stayed valid for its 12 hours."""
    client, state, _ = site
    _login(client, ADMIN_KEY)
    assert client.get("/ui/traces", follow_redirects=False).status_code == 200
    try:
        state.admin_key = "fw-admin-rotated-0123456789abcdef"
        assert client.get("/ui/traces", follow_redirects=False).status_code == 303  # to the login page
        _login(client, state.admin_key)
        assert client.get("/ui/traces", follow_redirects=False).status_code == 200
    finally:
        state.admin_key = ADMIN_KEY
        client.cookies.clear()


def test_a_labelling_form_gives_back_only_its_own_queues_items(site):
    """Skip and undo released the claim of whatever item_id the form named, even an item of another tenant's
    queue: an acme key could hand a globex annotator's item to someone else."""
    from flywheel.feedback import queues

    client, state, keys = site
    store = state.store
    queues.create_queue(store, "sec-acme", kind="binary", overlap=1, trace_ids=[trace_id(1)], tenant="acme")
    queues.create_queue(store, "sec-globex", kind="binary", overlap=1, trace_ids=[GLOBEX_TRACE], tenant="globex")
    theirs = queues.next_item(store, "sec-globex", "ana")
    assert theirs is not None
    claims = store.table("review_claims")

    def claimed() -> bool:
        with store.connect() as conn:
            return conn.execute(claims.select().where(claims.c.item_id == theirs.id,
                                                      claims.c.annotator == "ana")).first() is not None

    _login(client, keys["acme"])
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/review/sec-acme?annotator=ana").text).group(1)
    for action, form in (("skip", {"item_id": theirs.id}), ("undo", {"item_id": theirs.id, "last": "nope"})):
        r = client.post(f"/ui/review/sec-acme/{action}", data={"csrf": token, "annotator": "ana", **form},
                        follow_redirects=False)
        assert r.status_code in (200, 303), (action, r.status_code)
        assert claimed(), f"{action} gave back another tenant's claim"
    client.cookies.clear()


def test_csv_cells_starting_with_a_tab_or_carriage_return_are_not_formulas():
    from flywheel.web.render import as_csv

    rows = [{"q": "\t=HYPERLINK(\"http://x\")"}, {"q": "\r=1+1"}, {"q": "=1+1"}, {"q": "plain"}]
    body = as_csv(rows, ["q"], "x.csv").body.decode("utf-8-sig")
    assert "'\t=HYPERLINK" in body and "'\r=1+1" in body and "'=1+1" in body and "\nplain" in body


@pytest.mark.parametrize("host", ["127.0.0.1:8300", "localhost:8300", "app.localhost", "[::1]:8300"])
def test_an_open_dashboard_answers_a_local_name(tmp_path, host):
    app = create_app(write_project(tmp_path, "http://127.0.0.1:9/v1"))
    web.mount(app, app.state.flywheel)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/ui/traces.json", headers={"host": host}).status_code == 200


def test_an_open_dashboard_refuses_another_hosts_name(tmp_path):
    """DNS rebinding: evil.example points its name at 127.0.0.1, and its page reads the open dashboard as its own
    site (Host: evil.example:8300, no cookie needed). Before, every trace of every tenant came back."""
    app = create_app(write_project(tmp_path, "http://127.0.0.1:9/v1"))
    web.mount(app, app.state.flywheel)
    seed(app.state.flywheel.store)
    evil = {"host": "evil.example:8300"}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/ui/traces.json", headers=evil).status_code == 401
        page = client.get("/ui/traces", headers=evil)  # to the login page, which says why
        assert page.status_code == 403 and "127.0.0.1:PORT/ui" in page.text
        assert "只能通过本机地址打开" in client.get("/ui/login?lang=zh", headers=evil).text
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/traces").text).group(1)
        saved = client.post("/ui/views", data={"name": "x", "query": "model=gpt", "csrf": token}, headers=evil,
                            follow_redirects=False)
        assert saved.status_code == 303 and saved.headers["location"].startswith("/ui/login")


def test_an_open_api_answers_local_names_only(tmp_path):
    """The same DNS rebinding on /v1: a page on evil.example could list the models and call them (spending the
    user's provider keys) and read stored responses. A local name still needs no key."""
    app = create_app(write_project(tmp_path, "http://127.0.0.1:9/v1"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for host in ("127.0.0.1:8300", "localhost", "[::1]:8300"):
            assert client.get("/v1/models", headers={"host": host}).status_code == 200, host
        refused = client.get("/v1/models", headers={"host": "evil.example:8300"})
        assert refused.status_code == 401 and "flywheel keys create" in refused.json()["error"]["message"]
        chat = client.post("/v1/chat/completions", headers={"host": "evil.example"},
                           json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 401


def test_a_twins_unknown_filter_is_a_400_with_no_rows(site):
    """`/ui/traces.json?q=refund` (the name other trace APIs use) ignored `q` and returned every trace, as if all
    of them had matched; a script cannot tell. Now: 400, no rows, and the filter it meant."""
    client, _, keys = site
    client.cookies.clear()
    everything = client.get("/ui/traces.json", headers=_bearer(keys["acme"])).json()["rows"]
    assert everything  # the seeded traces are there to be wrongly returned
    r = client.get("/ui/traces.json", params={"q": "no-such-words"}, headers=_bearer(keys["acme"]))
    assert r.status_code == 400 and r.json()["rows"] == [] and "did you mean 'search'" in r.json()["errors"]["q"]
    typo = client.get("/ui/traces.csv", params={"modle": "gpt"}, headers=_bearer(keys["acme"]))
    assert typo.status_code == 400 and typo.text.count("\n") == 1  # the header row only
    page = client.get("/ui/traces.json", params={"search": "x", "lang": "zh", "limit": "5"}, headers=_bearer(keys["acme"]))
    assert page.status_code == 200
