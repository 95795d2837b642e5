"""/ui/prompts and /ui/playground in real Chromium (Playwright) against the shared live server of
tests/web_support.py (its model aliases point at fake_llm): the prompt list and a prompt's versions with labels,
the word diff of two versions, the playground running two variants through the gateway (each traced) and saving
a variant as a new prompt version (CSRF-protected), prefilling from a trace, 404s and invalid params."""

from __future__ import annotations

import re

import httpx
import pytest
from web_support import login, trace_id

from flywheel import web

web.add_page("flywheel.web.prompt_pages", ("prompts", "/ui/prompts"))  # before the session's server mounts /ui
web.add_page("flywheel.web.playground", ("playground", "/ui/playground"))

pytest.importorskip("playwright")
from playwright.sync_api import expect

NAME = "support_answer"


@pytest.fixture(scope="module")
def versions(web_server):
    """Two stored versions of one prompt: v1 labelled production, v2 labelled staging."""
    from flywheel.prompts.prompt import Prompt
    from flywheel.prompts.versions import PromptVersions

    store = PromptVersions(web_server.live.state.store)
    v1 = Prompt(name=NAME, system="You are ACME support. Be brief.", template="Question: {{question}}")
    v2 = Prompt(name=NAME, system="You are ACME support. Be very brief and polite.",
                template="Customer question: {{question}}")
    for p, label in ((v1, "production"), (v2, "staging")):
        store.record(p)
        store.set_label(NAME, p.version, label)
    return v1.version, v2.version


@pytest.fixture(scope="module")
def admin(browser, web_server):
    w = login(browser, web_server, "admin")
    yield w
    w.context.close()


@pytest.fixture(scope="module")
def acme(browser, web_server):
    w = login(browser, web_server, "acme")
    yield w
    w.context.close()


def get(server, path: str, who: str = "admin") -> httpx.Response:
    return httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.keys[who]}"}, timeout=60)


def test_pages_load_without_console_errors(admin, web_server, versions):
    for path, shot in [("/ui/prompts", "prompts"), (f"/ui/prompts/{NAME}", "prompt"),
                       ("/ui/playground", "playground"), (f"/ui/playground?trace={trace_id(3)}", "playground-trace")]:
        admin.errors.clear()
        response = admin.page.goto(web_server.url + path)
        assert response.status == 200, path
        admin.page.wait_for_load_state("networkidle")
        admin.shot(shot)
        assert admin.errors == [], f"{path}: {admin.errors}"


def test_prompt_list_versions_labels_and_twins(admin, web_server, versions):
    v1, v2 = versions
    page = admin.page
    page.goto(web_server.url + "/ui/prompts")
    row = page.locator(f'#prompt-rows tr[data-prompt="{NAME}"]')
    expect(row).to_contain_text("production")
    expect(row).to_contain_text("staging")
    row.locator("a").first.click()
    page.wait_for_url(f"**/ui/prompts/{NAME}")
    expect(page.locator(f'#version-rows tr[data-version="{v1}"]')).to_contain_text("production")
    expect(page.locator(f'#version-rows tr[data-version="{v2}"]')).to_contain_text("staging")
    listing = get(web_server, "/ui/prompts.json").json()["rows"]
    mine = next(r for r in listing if r["name"] == NAME)
    assert mine["versions"] == 2 and mine["labels"] == {"production": v1, "staging": v2}
    assert get(web_server, "/ui/prompts.csv").content.decode("utf-8-sig").startswith("name,versions,latest_version")
    assert "提示词" in get(web_server, "/ui/prompts?lang=zh").text
    assert "另存为新的提示词版本" not in get(web_server, "/ui/playground?lang=zh").text  # shown under results only
    assert "变体 1" in get(web_server, "/ui/playground?lang=zh").text


def test_the_diff_shows_word_changes(admin, web_server, versions):
    v1, v2 = versions
    page = admin.page
    page.goto(f"{web_server.url}/ui/prompts/{NAME}")
    page.fill('#diff-form input[name="a"]', "production")
    page.fill('#diff-form input[name="b"]', v2[:6])  # a unique prefix
    page.click("#compare")
    page.wait_for_url(re.compile(r"a=production&b="))
    system = page.locator('#diff pre[data-field="system"]')
    expect(system.locator("ins")).to_contain_text(["very"])
    expect(system.locator("del")).to_have_count(0)  # only words added
    expect(system).to_contain_text("You are ACME support. Be very brief and polite.")  # the new text, in order
    template = page.locator('#diff pre[data-field="template"]')
    expect(template.locator("del")).to_contain_text(["Question"])
    expect(template.locator("ins").first).to_contain_text("Customer")
    admin.shot("prompt-diff")
    data = get(web_server, f"/ui/prompts/{NAME}.json?a={v1}&b={v2}").json()
    assert set(data["diff"]["fields"]) == {"system", "template"}
    same = get(web_server, f"/ui/prompts/{NAME}.json?a=staging&b={v2}").json()
    assert same["diff"]["same"] is True


def test_bad_ids_and_params(admin, web_server, versions):
    page = admin.page
    response = page.goto(web_server.url + "/ui/prompts/no_such_prompt")
    assert response.status == 404
    expect(page.locator("#error-message")).to_contain_text("no_such_prompt")
    response = page.goto(f"{web_server.url}/ui/prompts/{NAME}?a=nope&b=production")
    assert response.status == 400
    expect(page.locator('[data-invalid="a"]')).to_be_visible()
    response = page.goto(f"{web_server.url}/ui/prompts/{NAME}?a=production")
    assert response.status == 400
    expect(page.locator('[data-invalid="b"]')).to_be_visible()
    response = page.goto(web_server.url + "/ui/playground?trace=" + "f" * 32)
    assert response.status == 404
    assert get(web_server, "/ui/prompts/nope.json").status_code == 404
    admin.shot("prompt-invalid")


def test_playground_runs_two_variants_and_saves_a_version(admin, web_server, versions):
    v1, _ = versions
    web_server.llm.add(r"Question: .*refund", "Refunds take 5 days.")
    page = admin.page
    page.goto(web_server.url + "/ui/playground")
    page.fill("#input", "How long do refunds take?")
    page.select_option("#v0_prompt", f"{NAME}@{v1}")
    page.select_option("#v0_model", "gpt")
    page.select_option("#v1_prompt", "")
    page.select_option("#v1_model", "other")
    page.click("#run")
    results = page.locator("#results section.result")
    expect(results).to_have_count(2)
    expect(results.nth(0).locator("pre.answer")).to_have_text("Refunds take 5 days.")
    expect(results.nth(1).locator("pre.answer")).to_contain_text("You said: How long do refunds take?")
    expect(results.nth(0)).to_contain_text("$0.")  # priced alias: a cost is shown
    admin.shot("playground-results")
    trace_link = results.nth(0).locator("a.trace-link").get_attribute("href")
    tid = trace_link.rsplit("/", 1)[1]
    web_server.wait_for_trace(tid, web_server.keys["admin"])
    spans = get(web_server, f"/ui/traces/{tid}.json").json()
    assert spans["trace"]["app"] == "playground" and spans["trace"]["prompt_version"] == v1
    # save variant 1 with an edited system message as a new version of the prompt
    first = results.nth(0)
    first.locator("summary").click()
    first.locator('textarea[name="system"]').fill("You are ACME support. Answer in one sentence.")
    first.locator(".save-button").click()
    page.wait_for_url(re.compile(rf"/ui/prompts/{NAME}\?a="))
    expect(page.locator('#diff pre[data-field="system"] ins')).to_contain_text(["one sentence"])
    expect(page.locator("#version-rows tbody tr")).to_have_count(3)
    admin.shot("playground-saved")


def test_run_and_save_need_csrf_and_an_admin(acme, web_server, versions):
    r = httpx.post(web_server.url + "/ui/playground/save", data={"name": NAME, "template": "{{question}}"},
                   headers={"Authorization": f"Bearer {web_server.keys['admin']}"})
    assert r.status_code == 403  # no CSRF token
    page = acme.page
    page.goto(web_server.url + "/ui/playground")
    expect(page.locator("#run-forbidden")).to_be_visible()  # a tenant key: its limits apply on the API only
    expect(page.locator("#run")).to_have_count(0)
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    run = page.request.post(web_server.url + "/ui/playground",
                            form={"csrf": token, "input": "hello", "v0_model": "gpt"})
    assert run.status == 403
    save = page.request.post(web_server.url + "/ui/playground/save",
                             form={"csrf": token, "name": NAME, "template": "{{question}}"})
    assert save.status == 403
    listing = get(web_server, f"/ui/prompts/{NAME}.json").json()["rows"]
    assert all("{{question}}" != r["template"] for r in listing)  # nothing was stored


def test_playground_marks_invalid_fields(admin, web_server, versions):
    page = admin.page
    page.goto(web_server.url + "/ui/playground")
    page.select_option("#v0_model", "")
    page.select_option("#v1_model", "")
    page.click("#run")
    expect(page.locator('[data-invalid="input"]')).to_be_visible()
    expect(page.locator('[data-invalid="v0_model"]')).to_be_visible()
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    bad = page.request.post(web_server.url + "/ui/playground/save",
                            form={"csrf": token, "name": "../etc", "template": "{{ unclosed"})
    assert bad.status == 400
    assert 'data-invalid="name"' in bad.text() and 'data-invalid="template"' in bad.text()


def test_prefill_from_a_trace(admin, web_server):
    page = admin.page
    page.goto(f"{web_server.url}/ui/playground?trace={trace_id(4)}")
    expect(page.locator("#system")).to_have_value("You are ACME support.")
    expect(page.locator("#input")).to_have_value(re.compile(r"refunds take 5 days.*How long do refunds take\?", re.DOTALL))
    expect(page.locator("#notice")).to_contain_text(trace_id(4))
