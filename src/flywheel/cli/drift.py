"""`flywheel drift` and `flywheel skew`: embedding, topic and field drift of production traces, and how an eval
suite's inputs differ from production."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from flywheel.cli import emit_json, main


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _quantiles(q: dict[str, int] | None) -> str:
    """Length percentiles as people read them: `p10 36 · p50 41 · p90 48 chars` (`-` with no inputs)."""
    if not q:
        return "-"
    return " · ".join(f"{k} {v}" for k, v in q.items()) + " chars"


def _shares(shares: dict[str, float]) -> str:
    """Category shares, largest first: `en 78%, zh 22%` (`<1%` for a sliver, `-` with none)."""
    if not shares:
        return "-"
    return ", ".join(f"{k} {'<1%' if 0 < v < 0.005 else f'{v:.0%}'}" for k, v in shares.items())


def _services(state: Any) -> tuple[Any, Any]:
    from flywheel.retrieval.embedders import build_embedder
    from flywheel.store import Store

    cfg = state.project.config
    return Store.open(state.project.store_url), build_embedder(cfg.retrieval, cfg.models)


def _times(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    from flywheel.monitor.windows import parse_time

    return parse_time(since, what="--since"), parse_time(until, what="--until")


@main.command("drift")
@click.option("--reference", default="window:30d", show_default=True,
              help="eval:SUITE, window:30d (the 30 days before --since) or window:2026-10-01..2026-10-06.")
@click.option("--since", help="Start of the period to check: 7d, 2026-10-07, 2026-10-07T08:00 or Unix seconds "
                              "[7 windows before --until].")
@click.option("--until", help="End of the period [now].")
@click.option("--window", default="1d", show_default=True, help="Window length (1h, 1d) or traces per window (500).")
@click.option("--app", help="Only traces of this app.")
@click.option("--alpha", default=0.05, show_default=True, type=click.FloatRange(1e-9, 0.5),
              help="False-alarm rate for the whole report (split over every test of every window).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--notify", "send", is_flag=True, help="Send the drift alerts to the monitor.notify targets.")
@click.pass_obj
def drift(state: Any, reference: str, since: str | None, until: str | None, window: str, app: str | None,
          alpha: float, as_json: bool, send: bool) -> None:
    """Drift of production traces against a reference: embeddings (MMD, AUC), topics, languages, lengths, format."""
    from flywheel.monitor.drift import drift_report

    targets = _notify_targets(state) if send else []
    t0, t1 = _times(since, until)
    store, embedder = _services(state)
    with store:
        report = drift_report(store, embedder, project=state.project, reference=reference, since=t0, until=t1,
                              window=window, app=app, alpha=alpha)
    if as_json:
        emit_json(report)
    else:
        _print_drift(report)
    if send:
        from flywheel.monitor.alerts import drift_alerts, notify

        alerts = drift_alerts(report)
        problems = notify(alerts, targets)
        click.echo(f"notified {len(alerts)} drift alert(s) to {len(targets) - len(problems)} of {len(targets)} "
                   "target(s)", err=True)
        for p in problems:
            click.echo(f"  {p}", err=True)


def _notify_targets(state: Any) -> list[str]:
    from flywheel.monitor.alerts import notify_targets

    return notify_targets(state.project.config.monitor.notify, state.project.where)


def _print_drift(report: dict[str, Any]) -> None:
    from flywheel.monitor.drift import MIN_TRACES

    ref = report["reference"]
    where = ref.get("suite") or f"{_when(ref.get('start'))} .. {_when(ref.get('end'))}"
    unit = "cases" if ref.get("kind") == "eval" else "traces"
    click.echo(f"reference {ref['spec']}: {where}, {ref['n']} {unit} (embedder {ref['embedder']})")
    if ref.get("warning"):
        click.echo(f"  warning: {ref['warning']}")
    for w in report["windows"]:
        head = f"{_when(w['start'])} .. {_when(w['end'])}  n={w['n']}"
        if w.get("empty"):
            click.echo(f"{head}  (no traces)")
            continue
        parts = []
        for side in ("input", "output"):
            d = w.get(f"{side}_drift")
            if d:
                flag = " DRIFT" if d["drifted"] else ""
                parts.append(f"{side} dist {d['distance']:.3f} p={d['p_value']:.2g} auc {d['auc']:.2f}{flag}")
        shifted = [k for k, v in w.get("psi", {}).items() if v.get("drifted")]
        if shifted:
            parts.append("shifted: " + ", ".join(shifted))
        if not parts:  # traces, but no test ran: say why instead of a bare count
            parts.append("(not tested: " + ("see the reference warning" if ref.get("warning") or
                                            ref["n"] < MIN_TRACES else f"fewer than {MIN_TRACES} traces") + ")")
        click.echo(f"{head}  " + "; ".join(parts))
        for c in w.get("new_clusters", []):
            click.echo(f"    new topic: {c['label']} ({c['n']} traces, e.g. {', '.join(c['examples'][:3])})")
        for c in w.get("vanished_clusters", []):
            click.echo(f"    vanished topic: {c['label']} (reference share {c['reference_share']:.0%})")
    click.echo(f"{len(report['alerts'])} alert(s)")
    for a in report["alerts"]:
        click.echo(f"  {_when(a['start'])} {a['kind']}: {a['message']}")


@main.command("skew")
@click.option("--suite", required=True, help="The eval suite: a file, a name in evals/, or its `name:`.")
@click.option("--since", help="Production traces since: 30d, 2026-10-01 … [30 days before --until].")
@click.option("--until", help="Production traces until [now].")
@click.option("--app", help="Only traces of this app.")
@click.option("--per-gap", default=5, show_default=True, type=click.IntRange(1, 100),
              help="Production traces suggested per gap.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def skew(state: Any, suite: str, since: str | None, until: str | None, app: str | None, per_gap: int,
         as_json: bool) -> None:
    """How an eval suite's inputs differ from production (length, language, format, topics) and the traces to add."""
    from flywheel.monitor.skew import skew_report

    t0, t1 = _times(since, until)
    store, embedder = _services(state)
    with store:
        report = skew_report(store, embedder, state.project, suite, since=t0, until=t1, app=app, per_gap=per_gap)
    if as_json:
        emit_json(report)
        return
    s, p = report["suite"], report["production"]
    click.echo(f"suite {s['suite']} ({s['n']} cases) vs production {_when(p['since'])} .. {_when(p['until'])} "
               f"({p['n']} traces" + (f"; {p['without_question']} without a question left out" if
                                       p.get("without_question") else "") + ")")
    if report.get("warning"):
        click.echo(f"  {report['warning']}")
        return
    for key, show in (("length", _quantiles), ("language", _shares), ("format", _shares)):
        part = report[key]
        click.echo(f"{key}: suite {show(part['suite'])}  production {show(part['production'])}  PSI {part['psi']:.2f}")
    if not report["gaps"]:
        click.echo("no gaps: every production topic, language, length and format is in the suite")
    for g in report["gaps"]:
        click.echo(f"gap [{g['kind']}] {g['what']}: production {g['production_share']:.0%}, suite "
                   f"{g['suite_share']:.0%}")
        click.echo(f"  {g['command']}")
