"""Where promoted cases come from: a review queue's labels, a list of traces, or negative feedback.

Each gives `Source`s: the trace's input, served answer and retrieved context (flywheel.feedback.content), the
reviewer's reason and correction. Nothing is masked here; flywheel.evals.promote masks before writing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.store.schema_feedback import is_current

NEGATIVE = ("thumbs", "score", "rejected", "correction", "edited", "regenerated")


@dataclass
class Source:
    trace_id: str
    input: str
    output: str
    context: list[str] = field(default_factory=list)
    reason: str | None = None
    correction: str | None = None
    app: str | None = None
    description: str = ""
    # the human verdict on the served answer: the case guards against it (fail) or keeps it (pass);
    # "unreviewed": a trace given by id that no feedback finds fault with (promoted for coverage)
    verdict: str = "fail"
    extra: dict[str, Any] = field(default_factory=dict)  # kept in the case's metadata (queue, labels …)
    # the user's earlier messages of a conversation this answer was a later turn of (oldest first), for traffic
    # to a model alias (the client sends the whole chat each time): the case replays them as turns, since
    # "多久能到账？" alone is not the question that was answered. Not for apps: their prompts may hold few-shot
    # turns, and a docs-QA app takes no session
    history: list[str] = field(default_factory=list)


def _context(sources: list[dict[str, Any]]) -> list[str]:
    return [str(s["text"]) for s in sources if isinstance(s, dict) and s.get("text")]


def _apps(store: Any, trace_ids: list[str]) -> dict[str, str | None]:
    t = store.table("traces")
    with store.connect() as conn:
        rows = conn.execute(select(t.c.trace_id, t.c.app).where(t.c.trace_id.in_(trace_ids))).all()
    return {tid: app for tid, app in rows}


def from_queue(store: Any, queue: str, verdict: str = "fail", *, missing: list[str] | None = None) -> list[Source]:
    """Items of `queue` whose human majority verdict is `verdict` (binary queues). An item whose trace was deleted
    from the store after review has no input to replay: it is left out, and its trace id added to `missing`."""
    from flywheel.feedback import queues
    from flywheel.feedback.agreement import majority

    if verdict not in ("pass", "fail"):
        raise UserError(f"--verdict must be pass or fail, got {verdict!r}")
    q = queues.get_queue(store, queue)  # UserError for an unknown queue
    if q.kind != "binary":
        raise UserError(f"queue {q.name} is {q.kind}; promote takes a binary (pass/fail) queue")
    labels = queues.labels(store, q)
    if not labels:
        raise UserError(f"queue {q.name} has no labels yet",
                        hint="label it first: flywheel review label ITEM --annotator NAME --verdict fail")
    verdicts = majority((lb.item_id, lb.annotator, lb.verdict) for lb in labels)
    items = [i for i in queues.items(store, q) if verdicts.get(i.id) == verdict]
    apps = _apps(store, [i.trace_id for i in items]) if items else {}
    feedback = _feedback(store, [i.trace_id for i in items]) if items else {}
    out = []
    for item in items:
        if item.trace_id not in apps:  # no `traces` row any more (apps has every stored trace, app or not)
            if missing is not None:
                missing.append(item.trace_id)
            continue
        mine = [lb for lb in labels if lb.item_id == item.id and lb.verdict == verdict]
        reasons = list(dict.fromkeys(lb.reason for lb in mine if lb.reason))
        # no annotator wrote one: the trace's own correction (a user's, through feedback), as `--traces` reads it
        correction = (next((lb.correction for lb in reversed(mine) if lb.correction), None)
                      or _last_fix(feedback.get(item.trace_id, [])))
        who = sorted({lb.annotator for lb in mine})
        out.append(Source(
            trace_id=item.trace_id, input=item.input, output=item.output, context=_context(item.sources),
            reason="; ".join(reasons) or None, correction=correction, app=apps.get(item.trace_id),
            description=f"queue {q.name}: {verdict} by {', '.join(who)}", verdict=verdict,
            extra={"queue": q.name, "item_id": item.id, "annotators": who},
            history=[] if apps.get(item.trace_id) else earlier_turns(item.prompt or [], item.input),
        ))
    return out


def from_traces(store: Any, trace_ids: list[str]) -> list[Source]:
    """The given traces; reason and correction from their feedback (comments, `correction` / `edited`)."""
    from flywheel.feedback.events import trace_id_of
    from flywheel.tracing.query import get_trace

    full = []
    for tid in trace_ids:
        trace = get_trace(store, trace_id_of(tid))  # resolves a unique prefix, and a response id (chatcmpl-…)
        if trace is None:
            raise UserError(f"unknown trace {tid}", hint="list traces with `flywheel traces`")
        full.append(trace["trace_id"])
    full = list(dict.fromkeys(full))  # one trace given twice (a prefix and the whole id) is one case
    feedback = _feedback(store, full)
    return _sources(store, full, feedback, "trace")


def from_feedback(store: Any, kind: str = "negative", *, app: str | None = None, limit: int = 200) -> list[Source]:
    """Traces with negative feedback: thumbs down, a score below 0.5, rejected, regenerated, corrected or
    edited answers (newest first, at most `limit` traces). A vote counts as its voter last gave it."""
    if kind != "negative":
        raise UserError(f"--feedback takes `negative`, got {kind!r}")
    t = store.table("feedback")
    with store.connect() as conn:
        rows = conn.execute(select(t).where(t.c.name.in_(NEGATIVE), is_current(t))
                            .order_by(t.c.created_at.desc())).mappings().all()
    picked: list[str] = []
    for r in rows:
        if r["trace_id"] not in picked and _negative(r):
            picked.append(r["trace_id"])
    if app is not None and picked:
        apps = _apps(store, picked)
        picked = [tid for tid in picked if apps.get(tid) == app]
    picked = picked[:limit]
    if not picked:
        raise UserError("no trace has negative feedback" + (f" in app {app}" if app else ""),
                        hint="record some: flywheel feedback TRACE_ID --thumbs down --comment '…'")
    return _sources(store, picked, _feedback(store, picked), "feedback")


def _negative(row: Any) -> bool:
    """Whether a feedback event finds fault with the answer: thumbs down, a score below 0.5, a fail label or a
    failed online check / judge, or a rejected, regenerated, corrected or edited answer."""
    name, value = row["name"], row["value"]
    if name == "thumbs":
        return value in (0, False, "down")
    if name == "score":
        return isinstance(value, int | float) and value < 0.5
    if isinstance(value, dict) and isinstance(value.get("passed"), bool):  # an online check's or judge's result
        return not value["passed"]
    if name == "label":
        return value == "fail"
    return name in NEGATIVE


def _feedback(store: Any, trace_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The feedback that still counts on each trace, oldest first: a vote its voter changed later (thumbs down,
    then up) is gone with its comment — the complaint was taken back."""
    t = store.table("feedback")
    out: dict[str, list[dict[str, Any]]] = {}
    with store.connect() as conn:
        for r in conn.execute(select(t).where(t.c.trace_id.in_(trace_ids), is_current(t))
                              .order_by(t.c.created_at, t.c.id)).mappings():
            out.setdefault(r["trace_id"], []).append(dict(r))
    return out


def earlier_turns(prompt: list[dict[str, Any]], question: str) -> list[str]:
    """The user messages sent before the one that asked `question` (the last user message equal to it, or
    ending with it: a docs-QA prompt puts the context first). [] when the question is not found: a re-ask's
    or judge's prompt is never mistaken for a conversation."""
    users = [m.get("content") for m in prompt if m.get("role") == "user"]
    texts = [u if isinstance(u, str) else "" for u in users]  # a multimodal message (a parts list) is no text
    q = (question or "").strip()
    if not q:
        return []
    at = next((i for i in range(len(texts) - 1, -1, -1) if texts[i].strip().endswith(q)), None)
    if at is None:
        return []
    return [t for t in texts[:at] if t.strip()]


def _last_fix(events: list[dict[str, Any]]) -> str | None:
    """The last `correction` or `edited` text among a trace's feedback events (oldest first)."""
    fixes = [e["value"] for e in events if e["name"] in ("correction", "edited") and isinstance(e["value"], str)
             and e["value"].strip()]
    return fixes[-1] if fixes else None


def _sources(store: Any, trace_ids: list[str], feedback: dict[str, list[dict[str, Any]]], via: str) -> list[Source]:
    from flywheel.feedback.content import trace_contents

    contents = trace_contents(store, trace_ids)
    apps = _apps(store, trace_ids)
    out = []
    for tid in trace_ids:
        c = contents.get(tid)
        if c is None:
            raise UserError(f"trace {tid} has no stored content to promote")
        # an annotator's `pass` label (written by review queues) and a passed online check (its comment says
        # what it found fine, e.g. "no PII found") are no complaint about the answer
        events = [e for e in feedback.get(tid, []) if not (e["name"] == "label" and e["value"] != "fail")
                  and not (isinstance(e["value"], dict) and e["value"].get("passed") is True)]
        comments = list(dict.fromkeys(e["comment"] for e in events if e.get("comment")))
        fix = _last_fix(events)
        complaint = any(_negative(e) for e in events)
        out.append(Source(
            trace_id=tid, input=c["input"], output=c["output"], context=_context(c["sources"]),
            reason="; ".join(comments) or None, correction=fix, app=apps.get(tid),
            description=f"promoted from {via}" + ("" if complaint else " (no feedback against it)"),
            verdict="fail" if complaint else "unreviewed",
            extra={"feedback": sorted({e["name"] for e in events}) or None},
            history=[] if apps.get(tid) else earlier_turns(c["prompt"], c["input"]),
        ))
    return out
