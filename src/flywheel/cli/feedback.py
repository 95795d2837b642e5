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
    from flywheel.feedback.events import FeedbackEvent, find_trace, scrub_value, text_scrubber, validate
    from flywheel.store import Store

    wanted: list[tuple[str, Any]] = [(n, v) for n, v in (("thumbs", thumbs), ("score", score),
                                                          ("correction", correction), ("category", category))
                                     if v is not None]
    if not wanted and not comment:
        raise UserError("nothing to record", hint="pass --thumbs up|down, --score X, --comment, --correction or "
                                                  "--category")
    if comment and not wanted:
        wanted = [("comment", None)]
    scrub = text_scrubber(state.project)  # what traces go through: secrets, and PII when tracing.redact_pii is on
    comment = scrub(comment) if comment else None
    with Store.open(state.project.store_url) as store:
        full, tenant = find_trace(store, trace_id)
        events = []
        for i, (name, value) in enumerate(wanted):
            text = scrub_value(value, scrub)
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
