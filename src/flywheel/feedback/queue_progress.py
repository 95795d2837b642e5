"""How far review queues are: items, labels, items with their K labels, labels per annotator — for any number of
queues in one grouped query (the dashboard's queue list shows every queue's progress at once).

    progress_many(store, queues.list_queues(store))   # {queue.id: {"queue", "items", "overlap", "labels", ...}}

`flywheel.feedback.queues.progress` is the one-queue form of the same query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, case, func, literal, select, union_all

from flywheel.feedback.queue_checks import trace_alive

if TYPE_CHECKING:
    from flywheel.feedback.queues import Queue
    from flywheel.store import Store


def progress_many(store: Store, queues: Sequence[Queue]) -> dict[str, dict[str, Any]]:
    """{queue id: {"queue", "items", "overlap", "labels", "complete" (items with K labels), "annotators":
    {name: n_done}, and "gone" (items whose trace was deleted, never handed out) only when there are any}} for
    every queue of `queues`, in one query whatever their number."""
    out: dict[str, dict[str, Any]] = {
        q.id: {"queue": q.name, "items": 0, "overlap": q.overlap, "labels": 0, "complete": 0, "annotators": {}}
        for q in queues}
    if not out:
        return out
    lt, it, qt = store.table("review_labels"), store.table("review_items"), store.table("review_queues")
    ids = list(out)
    per_item = (select(lt.c.item_id, func.count().label("n")).where(lt.c.queue_id.in_(ids))
                .group_by(lt.c.item_id).subquery())
    complete = func.sum(case((func.coalesce(per_item.c.n, 0) >= qt.c.overlap, 1), else_=0))
    gone = func.sum(case((trace_alive(store, it), 0), else_=1))
    # one row per queue (annotator NULL: item and complete counts), then one per (queue, annotator): its labels
    items = (select(it.c.queue_id, literal(None, String).label("annotator"), func.count().label("n"),
                    complete.label("complete"), gone.label("gone"))
             .select_from(it.join(qt, qt.c.id == it.c.queue_id).outerjoin(per_item, per_item.c.item_id == it.c.id))
             .where(it.c.queue_id.in_(ids)).group_by(it.c.queue_id))
    who = (select(lt.c.queue_id, lt.c.annotator, func.count().label("n"), literal(0).label("complete"),
                  literal(0).label("gone"))
           .where(lt.c.queue_id.in_(ids)).group_by(lt.c.queue_id, lt.c.annotator))
    with store.connect() as conn:
        rows = conn.execute(union_all(items, who)).all()
    for queue_id, annotator, n, n_complete, n_gone in rows:
        p = out[str(queue_id)]
        if annotator is None:
            p["items"], p["complete"] = int(n), int(n_complete or 0)
            if n_gone:
                p["gone"] = int(n_gone)
        else:
            p["annotators"][str(annotator)] = int(n)
            p["labels"] += int(n)
    for p in out.values():
        p["annotators"] = dict(sorted(p["annotators"].items()))
    return out
