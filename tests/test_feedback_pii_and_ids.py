"""Feedback and review labels under `tracing.redact_pii` (masked before they are stored, through the real HTTP
API and through queues.label), feedback on a trace that does not exist (UserError from Python, as the API's 404),
review items whose trace was deleted (never handed out, counted as "gone"), and trace-id prefixes / response ids
resolved once in the feedback layer (create_queue, add_items), within the tenant."""

from __future__ import annotations

import httpx
import pytest
from review_support import add_traces
from server_support import serving
from sqlalchemy import delete, select

import flywheel.feedback
from flywheel.errors import UserError
from flywheel.feedback import for_trace, queues, record

PII_YAML = """
models:
  gpt: {provider: openai_compat, base_url: "http://127.0.0.1:9/v1", model: fake-model, max_retries: 0}
tracing: {redact_pii: true}
"""
EMAILS = ("ana.lopez@example.org", "bob.smith@example.com", "carol.wu@example.net", "dan.li@example.io")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("pii-feedback")
    with serving(root, PII_YAML) as server:
        yield server, root


def _post(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/feedback", json=body, timeout=30)


def _page_json(server, trace_id: str) -> str:
    page = httpx.get(f"{server.url}/ui/traces/{trace_id}.json", timeout=30)
    assert page.status_code == 200, page.text
    return page.text


def test_http_feedback_is_pii_masked_in_the_store_and_on_the_trace_page(served):
    server, _ = served
    [tid] = add_traces(server.state.store, [{"input": "how do I reset my password?"}])
    thumbs = _post(server, {"trace_id": tid, "name": "thumbs", "value": "down",
                            "comment": f"wrong, mail me at {EMAILS[0]}"})
    assert thumbs.status_code == 201, thumbs.text
    fixed = _post(server, {"trace_id": f"chatcmpl-{tid}", "name": "correction",
                           "value": f"Ask {EMAILS[1]} to reset it."})
    assert fixed.status_code == 201, fixed.text
    stored = {e.name: e for e in for_trace(server.state.store, tid)}
    assert stored["thumbs"].comment == "wrong, mail me at <EMAIL_ADDRESS>"
    assert stored["correction"].value == "Ask <EMAIL_ADDRESS> to reset it."
    page = _page_json(server, tid)
    assert "<EMAIL_ADDRESS>" in page and not any(e in page for e in EMAILS[:2])


def test_review_label_reason_and_correction_are_pii_masked(served):
    server, _ = served
    store = server.state.store
    [tid] = add_traces(store, [{"input": "who owns billing?"}])
    queue = queues.create_queue(store, "pii-labels", trace_ids=[tid], overlap=1)
    item = queues.next_item(store, queue, "ana")
    assert item is not None
    made = queues.label(store, item.id, "ana", "fail", reason=f"leaks {EMAILS[2]}",
                        correction=f"Billing: {EMAILS[3]}")
    assert made.reason == "leaks <EMAIL_ADDRESS>" and made.correction == "Billing: <EMAIL_ADDRESS>"
    [stored] = queues.labels(store, queue)
    assert (stored.reason, stored.correction) == (made.reason, made.correction)
    [row] = [e for e in for_trace(store, tid) if e.name == "label"]
    assert row.comment == "leaks <EMAIL_ADDRESS>"
    page = _page_json(server, tid)
    assert "<EMAIL_ADDRESS>" in page and not any(e in page for e in EMAILS[2:])


def test_python_feedback_masks_with_the_projects_setting(served):
    server, root = served
    [tid] = add_traces(server.state.store, [{"input": "where is the invoice?"}])
    event = flywheel.feedback(tid, "comment", comment=f"send it to {EMAILS[0]}", project=root)
    assert event.comment == "send it to <EMAIL_ADDRESS>"
    assert event.tenant == "default"  # the trace's tenant


def test_python_feedback_on_a_missing_trace_raises_like_the_api(served):
    server, root = served
    missing = "ab" * 16
    api = _post(server, {"trace_id": missing, "name": "thumbs", "value": "up"})
    assert api.status_code == 404 and api.json()["error"]["message"] == f"no trace {missing}"
    with pytest.raises(UserError) as raised:
        flywheel.feedback(missing, "thumbs", "up", project=root)
    assert raised.value.message == f"no trace {missing}"
    with pytest.raises(UserError, match=f"no trace {missing}"):
        record(server.state.store, f"resp_{missing}", "thumbs", "up")
    [other] = add_traces(server.state.store, [{"tenant": "globex"}])
    with pytest.raises(UserError, match="no trace"):  # another tenant's trace is a missing one
        record(server.state.store, other, "thumbs", "up", tenant="acme")
    assert for_trace(server.state.store, missing) == []


def test_items_whose_trace_is_gone_are_skipped_and_counted(store):
    ids = add_traces(store, [{"input": f"q{i}"} for i in range(3)])
    queue = queues.create_queue(store, "gone", trace_ids=ids, overlap=1)
    pair = add_traces(store, [{"input": "pa"}, {"input": "pb"}])
    pairwise = queues.create_queue(store, "gone-pairs", kind="pairwise", pairs=[(pair[0], pair[1])], overlap=1)
    claimed = queues.next_item(store, queue, "bob")  # bob holds the first item when its trace is deleted
    assert claimed is not None and claimed.trace_id == ids[0]
    t, s = store.table("traces"), store.table("spans")
    with store.begin() as conn:
        for gone in (ids[0], pair[1]):
            conn.execute(delete(s).where(s.c.trace_id == gone))
            conn.execute(delete(t).where(t.c.trace_id == gone))
    first = queues.next_item(store, queue, "ana")
    assert first is not None and first.trace_id == ids[1] and first.input == "q1"
    again = queues.next_item(store, queue, "bob")
    assert again is not None and again.trace_id == ids[2]  # not the claimed item whose trace is gone
    assert queues.next_item(store, pairwise, "ana") is None
    assert queues.progress(store, queue)["gone"] == 1 and queues.progress(store, pairwise)["gone"] == 1
    assert "gone" not in queues.progress(store, queues.create_queue(store, "whole", trace_ids=add_traces(store, [{}])))


def test_queues_take_unique_prefixes_and_response_ids_within_the_tenant(store):
    mine = add_traces(store, [{"input": f"m{i}", "tenant": "acme"} for i in range(3)])
    theirs = add_traces(store, [{"input": "t", "tenant": "globex"}])
    queue = queues.create_queue(store, "by-prefix", trace_ids=[mine[0][:8].upper()], tenant="acme")
    assert [i.trace_id for i in queues.items(store, queue)] == [mine[0]]
    added = queues.add_items(store, queue, [mine[1][:6], f"chatcmpl-{mine[2]}", mine[1]], tenant="acme")
    assert added == {"added": [mine[1], mine[2]], "skipped": []}
    with pytest.raises(UserError, match=f"unknown trace id.*{theirs[0][:8]}"):  # the prefix of another tenant's
        queues.add_items(store, queue, [theirs[0][:8]], tenant="acme")


def test_an_ambiguous_prefix_is_a_clear_error(store):
    twins = add_traces(store, [{"trace_id": "c0ffee" + "0" * 25 + "1"}, {"trace_id": "c0ffee" + "0" * 25 + "2"}])
    with pytest.raises(UserError, match="prefix 'c0ffee' is ambiguous") as raised:
        queues.create_queue(store, "twins", trace_ids=["c0ffee"])
    assert "more characters" in (raised.value.hint or "")
    queue = queues.create_queue(store, "twins", trace_ids=[twins[0][:-1] + "1"])
    with pytest.raises(UserError, match="ambiguous"):
        queues.add_items(store, queue, ["C0FFEE0"])
    with pytest.raises(UserError, match="ambiguous"):
        queues.create_queue(store, "pairs", kind="pairwise", pairs=[("c0ffee", twins[1])])
    it = store.table("review_items")
    with store.connect() as conn:
        assert list(conn.scalars(select(it.c.trace_id).where(it.c.queue_id == queue.id))) == [twins[0]]


def test_the_cli_masks_feedback_and_labels_with_the_projects_setting(served):
    """`flywheel feedback` and `flywheel review label` wrote their own rows with the secret scrubber alone."""
    from click.testing import CliRunner

    from flywheel.cli import main

    server, root = served
    store = server.state.store
    [tid] = add_traces(store, [{"input": "who answers refunds?"}])
    cli = CliRunner()
    given = cli.invoke(main, ["--project", str(root), "feedback", tid[:10], "--thumbs", "down",
                              "--comment", f"ask {EMAILS[0]}", "--correction", f"Write to {EMAILS[1]}."])
    assert given.exit_code == 0, given.output
    stored = {e.name: e for e in for_trace(store, tid)}
    assert stored["thumbs"].comment == "ask <EMAIL_ADDRESS>"
    assert stored["correction"].value == "Write to <EMAIL_ADDRESS>."
    queue = queues.create_queue(store, "pii-cli-labels", trace_ids=[tid], overlap=1)
    item = queues.next_item(store, queue, "ana")
    assert item is not None
    labelled = cli.invoke(main, ["--project", str(root), "review", "label", item.id, "--verdict", "fail", "--annotator", "ana",
                                 "--reason", f"names {EMAILS[2]}", "--json"])
    assert labelled.exit_code == 0, labelled.output
    assert EMAILS[2] not in labelled.output and "<EMAIL_ADDRESS>" in labelled.output
    missing = cli.invoke(main, ["--project", str(root), "feedback", "ab" * 16, "--thumbs", "up"])
    assert missing.exit_code == 2 and f"no trace {'ab' * 16}" in missing.output


def test_review_status_says_how_many_items_lost_their_trace(served):
    from click.testing import CliRunner

    from flywheel.cli import main

    server, root = served
    store = server.state.store
    ids = add_traces(store, [{"input": f"s{i}"} for i in range(2)])
    queues.create_queue(store, "status-gone", trace_ids=ids, overlap=1)
    t, s = store.table("traces"), store.table("spans")
    with store.begin() as conn:
        conn.execute(delete(s).where(s.c.trace_id == ids[0]))
        conn.execute(delete(t).where(t.c.trace_id == ids[0]))
    shown = CliRunner().invoke(main, ["--project", str(root), "review", "status", "--queue", "status-gone"])
    assert shown.exit_code == 0, shown.output
    assert "status-gone: 1 item(s) skipped, their trace was deleted" in shown.output
