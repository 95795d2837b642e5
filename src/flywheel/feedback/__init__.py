"""Feedback attached to traces: explicit (thumbs, score, comment, correction), implicit (copied, regenerated,
edited, accepted …), annotator labels, check and judge results — one row shape for all of them.

    import flywheel.feedback
    flywheel.feedback(answer.trace_id, "thumbs", "down", comment="wrong version number")   # opens the project's store

    from flywheel.feedback import record, for_trace                                       # with a store you hold
    record(store, answer.trace_id, "thumbs", "down", comment="wrong version number", actor="ann")
    for_trace(store, answer.trace_id)

The module itself is callable (`flywheel.feedback(...)` = `send`; a trace id that names no trace raises UserError); review queues are in `flywheel.feedback.queues`,
sampling strategies in `.sampling`, implicit signals (edit distance, regenerations) in `.implicit`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from flywheel.feedback.events import (
    EVENTS,
    SOURCES,
    FeedbackEvent,
    find_trace,
    for_trace,
    record,
    resolve_trace_ids,
    text_scrubber,
    trace_id_of,
    validate,
)


def send(trace_id: str, name: str, value: Any = None, *, comment: str | None = None, source: str = "user",
         span_id: str | None = None, actor: str | None = None, tenant: str | None = None,
         project: str | Path | Any = ".", store: Any = None) -> FeedbackEvent:
    """Record one feedback event on `trace_id` in the store of `project` (a folder or a Project), or in `store`
    when given. `name`/`value` as in `record` ("thumbs", "down"; "score", 0.2; "correction", "…"). `trace_id` may
    be the id of a response the server returned (`chatcmpl-<trace id>`, `resp_…`, `msg_…`)."""
    if store is not None:
        return record(store, trace_id, name, value, source=source, span_id=span_id, comment=comment, actor=actor,
                      tenant=tenant)
    from flywheel.config import Project
    from flywheel.store import Store

    proj = project if isinstance(project, Project) else Project.load(project)
    with Store.open(proj.store_url) as opened:
        return record(opened, trace_id, name, value, source=source, span_id=span_id, comment=comment,
                      actor=actor, tenant=tenant, scrub=text_scrubber(proj))


class _CallableModule(types.ModuleType):
    def __call__(self, trace_id: str, name: str, value: Any = None, **kwargs: Any) -> FeedbackEvent:
        return send(trace_id, name, value, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["EVENTS", "SOURCES", "FeedbackEvent", "find_trace", "for_trace", "record", "resolve_trace_ids", "send",
           "text_scrubber", "trace_id_of", "validate"]
