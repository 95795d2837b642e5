"""Feedback events: validation and storage (the `feedback` table, store/schema_feedback.py).

Known event names and the value each takes:

| name | kind | value |
|---|---|---|
| thumbs | explicit | "up" / "down" (also true/false, 1/0), stored as 1 or 0 |
| score | explicit | a number in 0..1 |
| category | explicit | a short label string |
| comment | explicit | none (the text goes in `comment`) |
| correction | explicit | the corrected answer text |
| copied, regenerated, accepted, rejected, abandoned | implicit | none |
| edited | implicit | the edited text (its edit distance to the answer is computed by the caller if wanted) |
| followup | implicit | the follow-up question text |
| label | annotator / check / judge | any JSON value ("pass", "fail", "a", "b", "tie", a score …) |

Other names are accepted from annotators, checks and judges (lowercase `[a-z0-9_.:-]`, ≤ 100 characters);
users (`source="user"`) are held to the list above, so a browser holding a feedback token cannot invent kinds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from flywheel.errors import UserError
from flywheel.text.secrets import scrub_secrets
from flywheel.tracing import tracer

if TYPE_CHECKING:
    from flywheel.store import Store

Source = Literal["user", "annotator", "check", "judge"]
SOURCES: tuple[str, ...] = ("user", "annotator", "check", "judge")
MAX_TEXT = 20_000  # characters of a comment, correction or edited text
_NAME = re.compile(r"^[a-z0-9_.:-]{1,100}$")
_HEX = re.compile(r"^[0-9a-f]{1,32}$")
# the ids `flywheel serve` gives its answers carry the trace id: /v1/chat/completions `chatcmpl-<trace>`,
# /v1/completions `cmpl-<trace>`, /v1/responses `resp_<trace>`, Anthropic /v1/messages `msg_<trace>`
_RESPONSE_ID = re.compile(r"^(?:chatcmpl-|cmpl-|resp_|msg_)([0-9a-f]{32})$")
MIN_PREFIX = 6  # hex characters of a trace id prefix (the traces list shows 8)


def trace_id_of(value: Any) -> Any:
    """The trace id of `value` when it is the id of a response this server returned (what the OpenAI and
    Anthropic SDKs hand a frontend as `response.id`); anything else unchanged."""
    if isinstance(value, str):
        found = _RESPONSE_ID.match(value.strip())
        if found:
            return found.group(1)
    return value


def resolve_trace_ids(store: Store, refs: Iterable[Any], *, tenant: str | None = None) -> list[str]:
    """`refs` as trace ids: a response id (`chatcmpl-…`) becomes its trace id, and a prefix of 6+ hex characters
    the one trace (of `tenant` when given) that it starts; anything else comes back as typed (lowercased), for
    the caller to report as unknown. A prefix that starts several traces, or a hex prefix under 6 characters,
    raises UserError."""
    t = store.table("traces")
    out: list[str] = []
    for raw in refs:
        tid = trace_id_of(str(raw).strip().lower())
        if 0 < len(tid) < MIN_PREFIX and _HEX.match(tid):
            raise UserError(f"trace id prefix {tid!r} is too short: give at least {MIN_PREFIX} characters",
                            hint="copy a trace id (or 6+ characters of one) from `flywheel traces`")
        if MIN_PREFIX <= len(tid) < 32 and _HEX.match(tid):
            query = select(t.c.trace_id).where(t.c.trace_id.like(tid + "%")).order_by(t.c.trace_id).limit(2)
            if tenant is not None:
                query = query.where(t.c.tenant == tenant)
            with store.connect() as conn:
                found = list(conn.scalars(query))
            if len(found) > 1:
                raise UserError(f"trace id prefix {tid!r} is ambiguous: it starts {found[0]}, {found[1]} …",
                                hint="give more characters of the id (`flywheel traces` lists them)")
            tid = found[0] if found else tid
        out.append(tid)
    return out


def find_trace(store: Store, ref: Any, *, tenant: str | None = None) -> tuple[str, str | None]:
    """(trace id, its tenant) of the trace `ref` names (a trace id, a unique prefix, or the id of a response this
    server returned), among `tenant`'s when given; UserError `no trace …` when there is none."""
    full = resolve_trace_ids(store, [ref], tenant=tenant)[0]
    t = store.table("traces")
    query = select(t.c.trace_id, t.c.tenant).where(t.c.trace_id == full)
    if tenant is not None:
        query = query.where(t.c.tenant == tenant)
    for attempt in range(2):
        with store.connect() as conn:
            row = conn.execute(query).first()
        if row is not None:
            return str(row[0]), row[1]
        if attempt == 0:
            tracer.flush()  # a trace of this process may still be in the writer's queue
    raise UserError(f"no trace {full}", hint="copy a trace id (or 6+ characters of one) from `flywheel traces`, or "
                                              "pass the id of a response the server returned")


def text_scrubber(project: Any = None) -> Callable[[str], str]:
    """What feedback text goes through before it is stored: the traces' own scrubber (secrets, secret environment
    values, `tracing.redact` patterns, and PII when `tracing.redact_pii` is on) — `project`'s when given, else
    the one tracing uses in this process — or the secret scrubber alone when there is neither."""
    from flywheel.tracing.redact import Redactor

    if project is not None:
        from flywheel.apps.runtime import pii_masker

        cfg = project.config
        masker = pii_masker(cfg.tracing.redact_pii, project.where("tracing", "redact_pii"))
        return Redactor.from_config(cfg.tracing, cfg.models, masker=masker).scrub_text
    redactor = tracer.redactor
    return redactor.scrub_text if isinstance(redactor, Redactor) else scrub_secrets


def scrub_value(value: Any, scrub: Callable[[str], str]) -> Any:
    """`value` with every string in it (nested in lists and dicts too) passed through `scrub`."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, scrub) for v in value]
    return value


def _thumbs(value: Any) -> int:
    table = {"up": 1, "down": 0, True: 1, False: 0, "+1": 1, "-1": 0}  # True == 1, False == 0: ints too
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, (str, bool, int)) and key in table:
        return table[key]
    raise ValueError('takes "up" or "down"')


def _score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError("takes a number between 0 and 1")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("takes a non-empty text")
    if len(value) > MAX_TEXT:
        raise ValueError(f"text longer than {MAX_TEXT} characters")
    return value


def _short(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise ValueError("takes a label of 1 to 100 characters")
    return value


def _none(value: Any) -> None:
    if value not in (None, True, ""):
        raise ValueError("takes no value")


def _any(value: Any) -> Any:
    return value


EVENTS: dict[str, Any] = {
    "thumbs": _thumbs, "score": _score, "category": _short, "comment": _none, "correction": _text,
    "copied": _none, "regenerated": _none, "accepted": _none, "rejected": _none, "abandoned": _none,
    "edited": _text, "followup": _text, "label": _any,
}


class FeedbackEvent(BaseModel):
    """One stored feedback row."""

    model_config = ConfigDict(extra="forbid")

    id: int | None = None
    trace_id: str
    span_id: str | None = None
    source: Source = "user"
    name: str
    value: Any = None
    comment: str | None = None
    actor: str | None = None
    tenant: str | None = None
    created_at: float = Field(default_factory=time.time)


def validate(trace_id: Any, name: Any, value: Any = None, *, source: str = "user", span_id: Any = None,
             comment: Any = None, actor: Any = None) -> tuple[str, Any]:
    """Check one event and return its normalised (name, value); a problem raises UserError whose `field`
    attribute names the offending field."""
    def bad(field: str, message: str) -> UserError:
        err = UserError(f"feedback `{field}`: {message}", hint="see flywheel.feedback.events for the event kinds")
        err.field = field  # type: ignore[attr-defined]  # the server names it in its 400
        return err

    if not isinstance(trace_id, str) or not _HEX.match(trace_id):
        raise bad("trace_id", "a trace id is 1-32 lowercase hex characters (or a response id such as "
                              "chatcmpl-<trace id>)")
    if span_id is not None and (not isinstance(span_id, str) or not _HEX.match(span_id)):
        raise bad("span_id", "a span id is 1-32 lowercase hex characters")
    if source not in SOURCES:
        raise bad("source", f"one of {', '.join(SOURCES)}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad("name", "lowercase letters, digits and _.:- (at most 100)")
    check = EVENTS.get(name)
    if check is None:
        if source == "user":
            raise bad("name", f"unknown event {name!r}; known: {', '.join(EVENTS)}")
        check = _any
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_TEXT):
        raise bad("comment", f"a text of at most {MAX_TEXT} characters")
    if name == "comment" and not (isinstance(comment, str) and comment.strip()):
        raise bad("comment", "a `comment` event needs the comment text")
    if actor is not None and (not isinstance(actor, str) or len(actor) > 200):
        raise bad("actor", "a name of at most 200 characters")
    try:
        value = check(value)
    except ValueError as exc:
        raise bad("value", f"{name} {exc}") from None
    return name, value


def record(store: Store, trace_id: str, name: str, value: Any = None, *, source: str = "user",
           span_id: str | None = None, comment: str | None = None, actor: str | None = None,
           tenant: str | None = None, created_at: float | None = None,
           scrub: Callable[[str], str] | None = None) -> FeedbackEvent:
    """Validate and store one feedback event against `trace_id` (a trace of `tenant` when given: its id, a unique
    prefix, or the id of a response this server returned); returns the stored event (with its id). UserError
    when there is no such trace. `scrub`: what the text goes through (default: `text_scrubber()`)."""
    trace_id = trace_id_of(trace_id.strip().lower() if isinstance(trace_id, str) else trace_id)
    name, value = validate(trace_id, name, value, source=source, span_id=span_id, comment=comment, actor=actor)
    trace_id, trace_tenant = find_trace(store, trace_id, tenant=tenant)
    tenant = trace_tenant if tenant is None else tenant
    # every path (HTTP with a browser's token, Python, CLI) stores user text: a key pasted into a comment or a
    # correction must not reach the store, the dashboard or an eval suite promoted from it, nor an e-mail address
    # when the project masks PII in its traces
    scrub = scrub or text_scrubber()
    comment = scrub(comment) if comment else comment
    value = scrub_value(value, scrub)
    event = FeedbackEvent(trace_id=trace_id, span_id=span_id, source=source, name=name, value=value,  # type: ignore[arg-type]
                          comment=comment, actor=actor, tenant=tenant,
                          created_at=time.time() if created_at is None else created_at)
    table = store.table("feedback")
    with store.begin() as conn:
        result = conn.execute(table.insert().values(**event.model_dump(exclude={"id"})))
        event.id = int(result.inserted_primary_key[0])
    return event


def for_trace(store: Store, trace_id: str, *, tenant: str | None = None) -> list[FeedbackEvent]:
    """Every feedback event of a trace, oldest first (only the tenant's when `tenant` is given) — the history: a
    vote its voter changed later is listed too; `store.schema_feedback.superseded_ids(events)` names those."""
    table = store.table("feedback")
    query = table.select().where(table.c.trace_id == trace_id)
    if tenant is not None:
        query = query.where(table.c.tenant == tenant)
    with store.connect() as conn:
        rows = conn.execute(query.order_by(table.c.created_at, table.c.id)).mappings().all()
    return [FeedbackEvent(**dict(row)) for row in rows]


def label_corrections(store: Store, events: Iterable[FeedbackEvent]) -> dict[int, str]:
    """{feedback id: correction} for the reviewers' `label` events among `events` that came with one. A review
    label keeps its correction with the label (`review_labels`), not as a feedback row: the trace page and
    `flywheel traces show` list it on the label's line, where the reviewer wrote it."""
    ids = [e.id for e in events if e.name == "label" and e.source == "annotator" and e.id is not None]
    if not ids:
        return {}
    lt = store.table("review_labels")
    with store.connect() as conn:
        rows = conn.execute(select(lt.c.feedback_id, lt.c.correction).where(
            lt.c.feedback_id.in_(ids), lt.c.correction.is_not(None))).all()
    return {int(fid): str(text) for fid, text in rows if fid is not None and str(text).strip()}
