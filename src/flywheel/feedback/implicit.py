"""Implicit feedback signals computed from what users did: how much they edited an answer (character edit
distance, CJK safe: it works on code points after NFC, so one Chinese character is one edit), and how often they
regenerated within a session.

    edit_distance("the answer", "the answers")            # 1
    normalized_edit_distance("答案是二", "答案是三")          # 0.25
    regenerations(events)                                  # {"session-1": 2, …}
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two texts, in characters (code points after NFC normalisation)."""
    a, b = unicodedata.normalize("NFC", a or ""), unicodedata.normalize("NFC", b or "")
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    start = 0  # a common prefix and suffix cost nothing: skip them (edited answers mostly share both)
    while start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a, end_b = end_a - 1, end_b - 1
    a, b = a[start:end_a], b[start:end_b]
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalized_edit_distance(a: str, b: str) -> float:
    """`edit_distance` over the longer text's length: 0.0 identical … 1.0 nothing in common (0.0 for two empties)."""
    longest = max(len(unicodedata.normalize("NFC", a or "")), len(unicodedata.normalize("NFC", b or "")))
    return edit_distance(a, b) / longest if longest else 0.0


def edited_event(answer: str, edited: str) -> dict[str, Any]:
    """The `edited` feedback event for an answer the user changed: its value is the edited text, and the
    distances ride along in `comment`-free fields the caller can store or log."""
    return {"name": "edited", "value": edited, "edit_distance": edit_distance(answer, edited),
            "normalized_edit_distance": round(normalized_edit_distance(answer, edited), 6)}


def regenerations(events: Iterable[Mapping[str, Any] | Any], *, session_key: str = "session_id") -> dict[str, int]:
    """How many `regenerated` events each session has. `events` are feedback events or dicts carrying a session id
    (`session_key`) and a `name`; events without a session are counted under "" (unknown session)."""
    counts: dict[str, int] = {}
    for event in events:
        get = event.get if isinstance(event, Mapping) else (lambda k, e=event: getattr(e, k, None))
        if get("name") != "regenerated":
            continue
        session = get(session_key) or ""
        counts[str(session)] = counts.get(str(session), 0) + 1
    return counts


def session_regenerations(store: Any, *, since: float | None = None) -> dict[str, int]:
    """`regenerations` over the store: `regenerated` feedback events joined to their trace's session id."""
    from sqlalchemy import func, select

    f, t = store.table("feedback"), store.table("traces")
    q = (select(func.coalesce(t.c.session_id, ""), func.count()).select_from(f.join(t, t.c.trace_id == f.c.trace_id))
         .where(f.c.name == "regenerated").group_by(t.c.session_id))
    if since is not None:
        q = q.where(f.c.created_at >= since)
    with store.connect() as conn:
        return {str(s): int(n) for s, n in conn.execute(q).all()}
