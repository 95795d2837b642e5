"""`flywheel feedback TRACE_ID`: record explicit feedback on a trace from the command line."""

from __future__ import annotations

from typing import Any

import click

from flywheel.cli import emit_json, main
from flywheel.errors import UserError


@main.command("feedback")
@click.argument("trace_id", metavar="TRACE_ID|RESPONSE_ID")
@click.option("--thumbs", type=click.Choice(["up", "down"], case_sensitive=False), help="Thumbs up or down.")
@click.option("--score", type=click.FloatRange(0, 1), help="A score between 0 and 1.")
@click.option("--comment", help="Free text; attached to the thumbs / score event, or stored on its own.")
@click.option("--correction", help="The answer it should have given.")
@click.option("--category", help="A short label, e.g. outdated, wrong-source, tone.")
@click.option("--actor", help="Who gives the feedback (default: unset).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored events as JSON.")
@click.pass_obj
def feedback(state: Any, trace_id: str, thumbs: str | None, score: float | None, comment: str | None,
             correction: str | None, category: str | None, actor: str | None, as_json: bool) -> None:
    """Record feedback on a trace (thumbs, score, comment, correction, category); all events or none are stored."""
    from sqlalchemy import select

    from flywheel.feedback.events import FeedbackEvent, trace_id_of, validate
    from flywheel.store import Store
    from flywheel.text.secrets import scrub_secrets

    wanted: list[tuple[str, Any]] = [(n, v) for n, v in (("thumbs", thumbs), ("score", score),
                                                          ("correction", correction), ("category", category))
                                     if v is not None]
    if not wanted and not comment:
        raise UserError("nothing to record", hint="pass --thumbs up|down, --score X, --comment, --correction or "
                                                  "--category")
    if comment and not wanted:
        wanted = [("comment", None)]
    comment = scrub_secrets(comment) if comment else None
    with Store.open(state.project.store_url) as store:
        traces = store.table("traces")
        prefix = trace_id_of(trace_id.strip().lower())
        with store.connect() as conn:
            found = list(conn.execute(select(traces.c.trace_id, traces.c.tenant)
                                      .where(traces.c.trace_id.like(f"{prefix}%")).limit(2)))
        if found and len(prefix) < 6:
            raise UserError(f"trace id prefix {trace_id!r} is too short: give at least 6 characters",
                            hint="copy a trace id from `flywheel traces`")
        if not found:
            raise UserError(f"no trace {trace_id!r}", hint="copy a trace id from `flywheel traces`")
        if len(found) > 1 and found[0][0] != prefix:
            raise UserError(f"trace id prefix {trace_id!r} is ambiguous", hint="give more characters of the id")
        full, tenant = found[0]
        events = []
        for i, (name, value) in enumerate(wanted):
            text = scrub_secrets(value) if name == "correction" and isinstance(value, str) else value
            with_comment = comment if i == 0 else None
            try:
                name, text = validate(full, name, text, comment=with_comment, actor=actor)
            except UserError as exc:  # the library names its field; on the command line the option is the mistake
                field = getattr(exc, "field", None)
                option = f"--{field}" if field in ("actor", "comment") else f"--{name}"
                raise UserError(f"{option} {value!r}: {exc.message.split(': ', 1)[-1]}",
                                hint=f"see `flywheel feedback --help` for what {option} takes") from None
            events.append(FeedbackEvent(trace_id=full, name=name, value=text, comment=with_comment, actor=actor,
                                        tenant=tenant))
        table = store.table("feedback")
        with store.begin() as conn:
            for event in events:
                event.id = int(conn.execute(table.insert().values(**event.model_dump(exclude={"id"})))
                               .inserted_primary_key[0])
    if as_json:
        emit_json({"trace_id": full, "events": [e.model_dump() for e in events]})
        return
    for e in events:
        shown = {1: "up", 0: "down"}.get(e.value, e.value) if e.name == "thumbs" else e.value
        click.echo(f"{e.name}" + (f" {shown}" if shown is not None else "") + f" on trace {full} (#{e.id})")
