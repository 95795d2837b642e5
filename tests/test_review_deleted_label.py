"""Labelling a review item whose trace was deleted: `queues.label` by item id (the CLI's `flywheel review label`,
the API, a dashboard form posted before the deletion) refuses with a clear UserError instead of writing a
`feedback` row on a trace that no longer exists; the item stays counted as "gone", never labelled."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from review_support import add_traces
from sqlalchemy import delete, func, select

from flywheel.errors import UserError
from flywheel.feedback import queues


def _delete_traces(store, *trace_ids: str) -> None:
    t, s = store.table("traces"), store.table("spans")
    with store.begin() as conn:
        for tid in trace_ids:
            conn.execute(delete(s).where(s.c.trace_id == tid))
            conn.execute(delete(t).where(t.c.trace_id == tid))


def _rows(store, table: str) -> int:
    with store.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(store.table(table))) or 0)


def test_label_on_an_item_whose_trace_was_deleted_is_refused(store):
    ids = add_traces(store, [{"input": f"q{i}"} for i in range(2)])
    queue = queues.create_queue(store, "deleted", trace_ids=ids, overlap=1)
    item = queues.next_item(store, queue, "ana")  # handed out while its trace still existed
    assert item is not None and item.trace_id == ids[0]
    _delete_traces(store, ids[0])
    with pytest.raises(UserError) as err:
        queues.label(store, item.id, "ana", "fail", reason="wrong version")
    assert isinstance(err.value, queues.ConflictError)  # the API answers 409
    assert f"item {item.id}'s trace was deleted" in err.value.message and "flywheel review" in (err.value.hint or "")
    assert _rows(store, "feedback") == 0 and _rows(store, "review_labels") == 0  # nothing written
    progress = queues.progress(store, queue)
    assert progress["gone"] == 1 and progress["labels"] == 0 and progress["complete"] == 0
    other = queues.next_item(store, queue, "ana")  # the rest of the queue goes on
    assert other is not None and other.trace_id == ids[1]
    queues.label(store, other.id, "ana", "pass")
    assert _rows(store, "feedback") == 1


def test_pairwise_label_is_refused_when_either_trace_was_deleted(store):
    a, b = add_traces(store, [{"input": "same", "model": "m1"}, {"input": "same", "model": "m2"}])
    queue = queues.create_queue(store, "deleted-pairs", kind="pairwise", pairs=[(a, b)], overlap=1)
    item = queues.next_item(store, queue, "ana")
    assert item is not None
    _delete_traces(store, b)  # the B side: the feedback row would land on A, but the comparison is gone
    with pytest.raises(queues.ConflictError, match="trace was deleted"):
        queues.label(store, item.id, "ana", "tie")
    assert _rows(store, "feedback") == 0 and queues.progress(store, queue)["gone"] == 1


def test_cli_label_on_a_deleted_trace_exits_2_without_traceback(tmp_path):
    import flywheel.cli.review  # noqa: F401  (registers `flywheel review`)
    from flywheel.cli import main
    from flywheel.config import Project
    from flywheel.store import Store

    (tmp_path / "flywheel.yaml").write_text("models: {}\n", encoding="utf-8")
    with Store.open(Project.load(tmp_path).store_url) as store:
        [tid] = add_traces(store, [{"input": "q"}])
        queue = queues.create_queue(store, "cli-deleted", trace_ids=[tid], overlap=1)
        [item] = queues.items(store, queue)
        _delete_traces(store, tid)
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "review", "label", item.id, "--annotator", "ana",
                                    "--verdict", "fail"])
    assert out.exit_code == 2, out.output
    assert "trace was deleted" in out.output and "Traceback" not in out.output


def test_the_review_page_says_it_in_chinese(store):
    """The dashboard's review page shows the refusal in the page's language, with a remedy for the page (no CLI
    command on a page)."""
    from flywheel.web.message_i18n import localize_error

    ids = add_traces(store, [{"input": "q"}])
    queue = queues.create_queue(store, "gone-zh", trace_ids=ids, overlap=1)
    item = queues.next_item(store, queue, "ana")
    _delete_traces(store, ids[0])
    with pytest.raises(queues.ConflictError) as err:
        queues.label(store, item.id, "ana", "pass")
    zh = localize_error("zh", err.value)
    assert f"条目 {item.id} 的追踪已被删除" in zh and "刷新页面" in zh
    assert "flywheel" not in zh and "deleted" not in zh
    assert "flywheel review" not in localize_error("en", err.value)
