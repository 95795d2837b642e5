"""Feedback attached to traces: explicit (thumbs, score, comment, correction), implicit (copied, regenerated,
edited, accepted …), annotator labels, check and judge results — one row shape for all of them.

    from flywheel import feedback
    feedback.record(store, answer.trace_id, "thumbs", "down", comment="wrong version number", actor="ann")
    feedback.for_trace(store, answer.trace_id)
"""

from __future__ import annotations

from flywheel.feedback.events import EVENTS, SOURCES, FeedbackEvent, for_trace, record, validate

__all__ = ["EVENTS", "SOURCES", "FeedbackEvent", "for_trace", "record", "validate"]
