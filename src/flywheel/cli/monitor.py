"""`flywheel monitor`: production metrics per window and the alerts that crossed a threshold;
`flywheel monitor run`: the online evaluators as a separate process or cron job (and backfill)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import click

from flywheel.cli import emit_json, main

SHOWN = ("volume", "error_rate", "latency_p50_ms", "latency_p95_ms", "cost_usd", "empty_output_rate",
         "refusal_rate", "output_chars_mean", "json_valid_rate", "language_mismatch_rate", "guard_trigger_rate",
         "pii_hits", "cache_hit_rate", "negative_feedback_rate", "online_pass_rate")


def _groups(value: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in value.split(",") if g.strip())


@main.group("monitor", invoke_without_command=True)
@click.option("--window", default="1d", show_default=True, help="Window length: 1h, 1d, 7d …")
@click.option("--since", default=None,
              help="Start: a duration ago (7d), a date or an ISO time (default: the last whole window).")
@click.option("--until", default=None, help="End (default: now).")
@click.option("--group-by", "group_by", default="app", show_default=True,
              help="Comma-separated: app, model, prompt_version, tenant.")
@click.option("--notify", "send", is_flag=True, help="Also send the alerts to `monitor.notify` targets.")
@click.option("--json", "as_json", is_flag=True, help="Print windows and alerts as JSON.")
@click.pass_context
def monitor(ctx: click.Context, window: str, since: str | None, until: str | None, group_by: str, send: bool,
            as_json: bool) -> None:
    """Production metrics per time window and group, and the alerts that crossed a threshold.
    `flywheel monitor run` scores traces with the online evaluators (`monitor.online`)."""
    if ctx.invoked_subcommand is not None:
        return
    from flywheel.apps.runtime import Runtime
    from flywheel.monitor.alerts import check_rules, evaluate, notify, notify_targets
    from flywheel.monitor.windows import check_period, compute, parse_duration, parse_time

    project = ctx.obj.project
    config = project.config.monitor
    check_rules(config.alerts, config.notify, project.where)
    targets = notify_targets(config.notify, project.where) if send else []
    width = parse_duration(window, "--window")
    now = time.time()
    end = parse_time(until, now=now, what="--until") or now
    start = parse_time(since, now=end, what="--since")
    start = (end // width) * width - width if start is None else start  # the last whole window and the current
    check_period(start, end)
    groups = _groups(group_by)
    with Runtime(project, tracing=False) as rt:
        windows = compute(rt.store, window=width, since=start, until=end, group_by=groups)
        alerts, _ = evaluate(rt.store, config.alerts, since=start, until=end, group_by=groups) if config.alerts \
            else ([], {})
    problems = notify(alerts, targets) if send else []
    if as_json:
        emit_json({"since": start, "until": end, "window": window, "group_by": list(groups),
                   "windows": [w.to_json() for w in windows], "alerts": [a.to_json() for a in alerts],
                   "rules": len(config.alerts), "notify_problems": problems})
        return
    click.echo(f"monitor {_when(start)} → {_when(end)} · window {window} · by {', '.join(groups) or '(all)'}")
    if not windows:
        click.echo("no traces in this period: nothing to report (import history with `flywheel traces import`, "
                   "or widen --since)")
    for w in windows:
        label = ", ".join(f"{k}={v if v is not None else '-'}" for k, v in w.group.items()) or "all traffic"
        click.echo(f"\n{_when(w.start)} · {label}")
        for name in SHOWN:
            value = w.metrics.get(name)
            if value is not None:
                click.echo(f"  {name:<24} {_fmt(name, value)}")
        if w.details.get("guard_triggers"):
            click.echo(f"  {'guard triggers':<24} " + ", ".join(f"{k}: {v}" for k, v in w.details["guard_triggers"].items()))
        if w.details.get("languages"):
            click.echo(f"  {'answer languages':<24} " + ", ".join(f"{k}: {v}" for k, v in w.details["languages"].items()))
    if not config.alerts:
        click.echo("\nno alert rules (add `monitor.alerts:` to flywheel.yaml)")
    elif not alerts:
        click.echo(f"\nalerts: none of {len(config.alerts)} rule(s) crossed a threshold")
    else:
        click.echo(f"\nalerts ({len(alerts)}):")
        for a in alerts:
            click.echo(f"  ! {_when(a.window_start)} {a.message}")
    for p in problems:
        click.echo(p, err=True)


@monitor.command("run")
@click.option("--since", default=None, help="Backfill: score traces from this point (7d, a date) instead of the "
                                            "evaluators' saved cursor.")
@click.option("--once", is_flag=True, help="One pass, then exit (for cron); default: keep polling.")
@click.option("--json", "as_json", is_flag=True, help="Print what the pass did as JSON (with --once).")
@click.pass_context
def run(ctx: click.Context, since: str | None, once: bool, as_json: bool) -> None:
    """Score production traces with the online evaluators (`monitor.online`), once or continuously."""
    from flywheel.apps.runtime import Runtime
    from flywheel.errors import UserError
    from flywheel.monitor.online import ALERT_EVERY_S, OnlineWorker, claim_errors, pending_counts
    from flywheel.monitor.windows import parse_time

    project = ctx.obj.project
    if not project.config.monitor.online and not project.config.monitor.alerts:
        raise UserError("no online evaluators or alert rules configured",
                        hint="add `monitor: {online: [{check: judge, criterion: \"…\", sample: 0.1}]}` to flywheel.yaml")
    from flywheel.monitor.alerts import check_rules

    check_rules(project.config.monitor.alerts, project.config.monitor.notify, project.where)
    start = parse_time(since)
    with Runtime(project) as rt:
        worker = OnlineWorker(rt)
        if once:
            result = worker.run_once(since=start)
            sent = worker.fire_alerts()
            states = pending_counts(rt.store)
            errors = claim_errors(rt.store)
            if as_json:
                emit_json({**result.to_json(), "claims": states, "errors": errors,
                           "alerts_sent": [a.to_json() for a in sent]})
                return
            for a in sent:
                click.echo(f"alert sent: {a.message}")
            click.echo(f"scored {result.scored} trace(s) · pending {result.pending} · failed {result.failed} · "
                       f"judge cost ${result.cost_usd:.4f}")
            for name, counts in sorted(states.items()):
                why = errors.get(name)
                click.echo(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                           + (f" · no verdict: {why['error']} ({why['claims']})" if why else ""))
            return
        click.echo(f"online evaluators: {', '.join(e.name for e in worker.evaluators)} · every "
                   f"{worker.interval_s:g} s (Ctrl-C to stop)")
        first, last_alerts = True, float("-inf")
        try:
            while True:
                result = worker.run_once(since=start if first else None)
                first = False
                if result.scored or result.pending or result.failed:
                    click.echo(f"{_when(time.time())} scored {result.scored} · pending {result.pending} · "
                               f"failed {result.failed} · ${result.cost_usd:.4f}")
                if time.monotonic() - last_alerts >= max(ALERT_EVERY_S, worker.interval_s):
                    last_alerts = time.monotonic()
                    for a in worker.fire_alerts():
                        click.echo(f"{_when(time.time())} alert sent: {a.message}")
                time.sleep(worker.interval_s)
        except KeyboardInterrupt:
            click.echo("stopped")


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt(name: str, value: Any) -> str:
    if name.endswith("_rate"):
        return f"{value * 100:.1f} %"
    if name.endswith("_ms"):
        return f"{value:.0f} ms"
    if name.startswith("cost"):
        return f"${value:.4f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
