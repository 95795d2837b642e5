"""`flywheel report daily`: one command to look at yesterday's production data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from flywheel.cli import emit_json, main


@main.group("report")
def report() -> None:
    """Reports over production traces: `flywheel report daily`."""


@report.command("daily")
@click.option("--date", "day", default=None, help="The UTC day to report (YYYY-MM-DD); default: yesterday.")
@click.option("--html", "as_html", is_flag=True, help="Write an HTML page (see --out) instead of text.")
@click.option("--out", default=None,
              help="Where --html writes: a file, or a folder (default: .flywheel/reports/daily-DAY.html).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def daily(state: Any, day: str | None, as_html: bool, out: str | None, as_json: bool) -> None:
    """Yesterday in one page: monitors per app, alerts, online evaluators, review queues, notable traces."""
    from flywheel.apps.runtime import Runtime
    from flywheel.errors import UserError
    from flywheel.monitor.alerts import check_rules
    from flywheel.monitor.report import daily as build
    from flywheel.monitor.report import render_html, render_text

    project = state.project
    config = project.config.monitor
    check_rules(config.alerts, config.notify, project.where)
    try:
        date = dt.date.fromisoformat(day) if day else None
    except ValueError:
        raise UserError(f"cannot read --date {day!r}", hint="write the day as YYYY-MM-DD") from None
    with Runtime(project, tracing=False) as rt:
        data = build(rt.store, config.alerts, day=date, embedder=rt.embedder)
    if as_json:
        emit_json(data)
        return
    if as_html:
        name = f"daily-{data['day']}.html"
        path = Path(out) if out else project.data_dir / "reports" / name
        if path.is_dir():
            path = path / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_html(data), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write the report to {path}: {exc.strerror}",
                            hint=f"--out takes a writable file, or a folder to write {name} into") from None
        click.echo(f"wrote {path}")
        return
    click.echo(render_text(data))
