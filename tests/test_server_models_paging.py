"""GET /v1/models speaks both SDKs' list: the OpenAI SDK gets `{object: list, data}` with every model; a request
carrying `anthropic-version` (every Anthropic SDK request does) gets Anthropic's cursor page (`limit`, `after_id`,
`before_id`; `has_more`, `first_id`, `last_id`), which the anthropic SDK's auto-pagination walks."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from flywheel.config import Project

NAMES = [f"m{i:02d}" for i in range(7)]
PROJECT = "models:\n" + "".join(
    f"  {n}: {{provider: openai_compat, base_url: \"http://127.0.0.1:9/v1\", model: x}}\n" for n in NAMES) + \
    "cache: {exact: false}\n"
ANTHROPIC = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from server_support import LiveServer

    from flywheel.server import create_app

    root = tmp_path_factory.mktemp("models_paging")
    (root / "flywheel.yaml").write_text(PROJECT, encoding="utf-8")
    server = LiveServer(create_app(Project.load(root))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def every(live):
    return [m.id for m in openai.OpenAI(base_url=f"{live.url}/v1", api_key="x", max_retries=0).models.list()]


def test_openai_sdk_gets_the_whole_openai_list(live, every):
    raw = httpx.get(f"{live.url}/v1/models").json()
    assert set(raw) == {"object", "data"} and raw["object"] == "list"
    assert set(NAMES) <= set(every) and [d["id"] for d in raw["data"]] == every
    assert all(d["object"] == "model" and d["owned_by"] == "flywheel" for d in raw["data"])


def test_anthropic_sdk_pages_and_auto_paginates(live, every):
    client = anthropic.Anthropic(base_url=live.url, api_key="x", max_retries=0)
    page = client.models.list(limit=3)
    assert [m.id for m in page.data] == every[:3] and page.has_more
    assert page.first_id == every[0] and page.last_id == every[2]
    assert [m.id for m in client.models.list(limit=3)] == every  # auto-pagination: every page in turn
    default = client.models.list()
    assert [m.id for m in default.data] == every[:20] and default.has_more == (len(every) > 20)
    assert all(m.type == "model" and m.display_name == m.id for m in default.data)


def test_anthropic_cursors_both_ways(live, every):
    after = httpx.get(f"{live.url}/v1/models", params={"after_id": every[1], "limit": 2}, headers=ANTHROPIC).json()
    assert [d["id"] for d in after["data"]] == every[2:4] and after["has_more"] is True
    assert set(after["data"][0]) == {"type", "id", "display_name", "created_at"}
    before = httpx.get(f"{live.url}/v1/models", params={"before_id": every[4], "limit": 2}, headers=ANTHROPIC).json()
    assert [d["id"] for d in before["data"]] == every[2:4] and before["has_more"] is True
    first = httpx.get(f"{live.url}/v1/models", params={"before_id": every[2], "limit": 5}, headers=ANTHROPIC).json()
    assert [d["id"] for d in first["data"]] == every[:2] and first["has_more"] is False
    last = httpx.get(f"{live.url}/v1/models", params={"after_id": every[-2]}, headers=ANTHROPIC).json()
    assert [d["id"] for d in last["data"]] == every[-1:] and last["has_more"] is False


@pytest.mark.parametrize(("params", "named"), [({"limit": 0}, "limit"), ({"limit": "many"}, "limit"),
                                              ({"after_id": "nope"}, "after_id")])
def test_bad_page_parameters_are_a_400_naming_them(live, params, named):
    r = httpx.get(f"{live.url}/v1/models", params=params, headers=ANTHROPIC)
    assert r.status_code == 400 and named in r.text
