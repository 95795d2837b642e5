"""The daily report (`flywheel report daily`): one day's monitors, the alerts that fired, the online evaluators'
backlog, the review queues' state, drift (the day against the 7 days before it) and the day's notable traces
(errors, negative feedback, the slowest), as a dict (JSON), terminal text or a self-contained HTML page."""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, select

from flywheel.config import AlertRule
from flywheel.errors import UserError
from flywheel.monitor.alerts import evaluate
from flywheel.monitor.online import pending_counts
from flywheel.monitor.windows import compute
from flywheel.store import Store
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema_feedback import feedback as feedback_t
from flywheel.store.schema_feedback import user_vote
from flywheel.tracing.query import product_traffic

log = logging.getLogger(__name__)
NOTABLE = 10  # traces listed per kind
DRIFT_REFERENCE = "window:7d"  # the 7 days before the reported day
DAY = 86400.0
_KEYS = ("trace_id", "started_at", "app", "model", "tenant", "latency_ms", "status", "error", "input_preview",
         "output_preview")


def day_bounds(day: dt.date | None = None, *, now: float | None = None) -> tuple[float, float]:
    """[start, end) of a UTC day; default: yesterday."""
    if day is None:
        today = dt.datetime.fromtimestamp(now if now is not None else dt.datetime.now(dt.UTC).timestamp(), dt.UTC)
        day = today.date() - dt.timedelta(days=1)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    return start, start + DAY


def daily(store: Store, rules: Sequence[AlertRule] = (), *, day: dt.date | None = None,
          now: float | None = None, embedder: Any = None, drift: bool = True) -> dict[str, Any]:
    """The report of `day` (default yesterday); `embedder` for the drift section (None: words only)."""
    start, end = day_bounds(day, now=now)
    windows = compute(store, window=DAY, since=start, until=end, group_by=("app",))
    alerts, _ = evaluate(store, rules, since=start, until=end, now=now) if rules else ([], {})
    total = compute(store, window=DAY, since=start, until=end, group_by=())
    return {
        "day": dt.datetime.fromtimestamp(start, dt.UTC).date().isoformat(), "since": start, "until": end,
        "totals": total[0].metrics if total else None,
        "apps": [w.to_json() for w in windows],
        "alerts": [a.to_json() for a in alerts],
        "online_evaluators": pending_counts(store),
        "review_queues": _queues(store),
        "drift": drift_section(store, embedder, start, end) if drift else None,
        "notable": _notable(store, start, end),
    }


def _queues(store: Store) -> list[dict[str, Any]]:
    from flywheel.feedback import queues

    return [queues.progress(store, q) for q in queues.list_queues(store)]


def drift_section(store: Store, embedder: Any, start: float, end: float) -> dict[str, Any]:
    """The day against the 7 days before it: {"ran", "note", "embedder", "reference_n", "n", "input_drifted",
    "output_drifted", "new_topics": [{label, keywords, n}], "alerts"}. Never raises: when drift cannot run
    (an empty reference, an embedder that fails) `ran` is False and `note` says why."""
    from flywheel.monitor.drift import drift_report

    out: dict[str, Any] = {"ran": False, "note": None, "embedder": None if embedder is None else "set",
                           "reference_n": 0, "n": 0, "input_drifted": None, "output_drifted": None,
                           "new_topics": [], "alerts": []}
    try:
        doc = drift_report(store, embedder, reference=DRIFT_REFERENCE, since=start, until=end, window="1d")
    except UserError as exc:
        out["note"] = f"drift could not run: {exc.message}"
        return out
    except Exception as exc:  # an embedder that is down must not cost the rest of the report
        log.warning("daily report: drift failed", exc_info=True)
        out["note"] = f"drift could not run: {type(exc).__name__}: {exc}"
        return out
    ref = doc["reference"]
    windows = [w for w in doc["windows"] if w["n"]]
    out.update(embedder=ref.get("embedder"), reference_n=ref.get("n", 0), n=sum(w["n"] for w in doc["windows"]))
    tested = [w for w in windows if w.get("input_drift") is not None]
    if ref.get("warning") or not tested:
        # drift's own warning ends in "choose another --reference", an option `report daily` does not have
        empty_ref = "no traces in the 7 days before to compare against" if not ref.get("n") else None
        out["note"] = empty_ref or ref.get("warning") or ("no traces this day" if not windows else
                                                          "too few traces this day to test drift")
        return out
    out["ran"] = True
    for side in ("input", "output"):
        results = [w[f"{side}_drift"] for w in tested if w.get(f"{side}_drift") is not None]
        out[f"{side}_drifted"] = any(r["drifted"] for r in results) if results else None
    out["new_topics"] = [{"label": c["label"], "keywords": c["keywords"][:8], "n": c["n"]}
                         for w in tested for c in w.get("new_clusters", [])]
    out["alerts"] = [a["message"] for a in doc["alerts"]]
    if ref.get("embedder") in (None, "none"):
        out["note"] = "no embedder configured: compared on words only (set retrieval.embedder)"
    return out


def _notable(store: Store, start: float, end: float) -> dict[str, list[dict[str, Any]]]:
    cols = [traces_t.c[k] for k in _KEYS]
    in_day = and_(traces_t.c.started_at >= start, traces_t.c.started_at < end, product_traffic(traces_t))
    # negative feedback: a user's current thumbs down or score < 0.5 (a changed vote counts as the later one),
    # `user_vote`: the rule of the monitor's negative_feedback_rate and of `flywheel traces --feedback negative`
    negative = select(feedback_t.c.trace_id).where(feedback_t.c.created_at >= start,
                                                   user_vote(feedback_t, negative=True))
    with store.connect() as conn:

        def rows(q: Any) -> list[dict[str, Any]]:
            return [_masked(dict(r)) for r in conn.execute(q.limit(NOTABLE)).mappings()]

        errors = rows(select(*cols).where(in_day, traces_t.c.status == "error")
                      .order_by(traces_t.c.started_at.desc(), traces_t.c.trace_id))
        slowest = rows(select(*cols).where(in_day, traces_t.c.latency_ms.is_not(None))
                       .order_by(traces_t.c.latency_ms.desc(), traces_t.c.trace_id))
        disliked = rows(select(*cols).where(in_day, traces_t.c.trace_id.in_(negative))
                        .order_by(traces_t.c.started_at.desc(), traces_t.c.trace_id))
    return {"errors": errors, "negative_feedback": disliked, "slowest": slowest}


def _masked(row: dict[str, Any]) -> dict[str, Any]:
    """A notable trace with the PII (e-mails, phone numbers, ids …) and secrets in its texts masked: the report is
    a page people forward and paste, and `flywheel traces show ID` is where the whole trace stays readable."""
    from flywheel.checks.pii import redact_for_storage

    for key in ("input_preview", "output_preview", "error"):
        if row.get(key):
            row[key] = redact_for_storage(row[key])
    return row


# ---------------------------------------------------------------------------- rendering


def render_text(report: dict[str, Any]) -> str:
    out = [f"flywheel daily report · {report['day']} (UTC)"]
    totals = report["totals"]
    if not totals:
        out.append("no traces this day (the report covers yesterday by default; another day: --date YYYY-MM-DD)")
    else:
        out.append(f"traces {totals['volume']} · errors {_pct(totals['error_rate'])} · p95 "
                   f"{_num(totals['latency_p95_ms'])} ms · cost ${totals['cost_usd'] or 0:.4f} · refusals "
                   f"{_pct(totals['refusal_rate'])} · negative feedback {_pct(totals['negative_feedback_rate'])}")
    for w in report["apps"]:
        m = w["metrics"]
        out.append(f"  {w['group'].get('app') or '(no app)'}: {m['volume']} traces · errors {_pct(m['error_rate'])}"
                   f" · p95 {_num(m['latency_p95_ms'])} ms · online pass {_pct(m['online_pass_rate'])}")
    out.append(f"alerts: {len(report['alerts'])}")
    out += [f"  ! {a['message']}" for a in report["alerts"]]
    if report["online_evaluators"]:
        out.append("online evaluators: " + "; ".join(
            f"{k} " + ", ".join(f"{s} {n}" for s, n in sorted(v.items()))
            for k, v in sorted(report["online_evaluators"].items())))
    for q in report["review_queues"]:
        out.append(f"review queue {q['queue']}: {q['complete']}/{q['items']} items complete, {q['labels']} labels")
    out += _drift_lines(report.get("drift"))
    for kind, rows in report["notable"].items():
        if rows:
            out.append(f"{kind.replace('_', ' ')}:")
            out += [f"  {r['trace_id'][:8]}  {_num(r['latency_ms'])} ms  {' '.join((r['input_preview'] or '').split())[:70]}"
                    for r in rows]
    return "\n".join(out)


def _drift_lines(d: dict[str, Any] | None) -> list[str]:
    if d is None:
        return []
    if not d["ran"]:
        return [f"drift vs the previous 7 days: not tested ({d['note']})"]
    yes = {True: "yes", False: "no", None: "-"}
    head = (f"drift vs the previous 7 days ({d['n']} traces vs {d['reference_n']}): input drifted "
            f"{yes[d['input_drifted']]} · output drifted {yes[d['output_drifted']]}")
    out = [head]
    if d["note"]:
        out.append(f"  note: {d['note']}")
    out += [f"  new topic: {t['label']} ({t['n']} traces; {', '.join(t['keywords'])})" for t in d["new_topics"]]
    return out


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>flywheel daily {e(report['day'])}</title>",
             ("<style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse}"
              "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.alert{color:#b00}</style>"),
             f"<h1>flywheel daily report · {e(report['day'])} (UTC)</h1>"]
    if not report["totals"]:
        parts.append("<p>No traces this day.</p>")
    if report["apps"]:
        names = list(report["apps"][0]["metrics"])
        parts.append("<h2>Apps</h2><table><tr><th>app</th>" + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>")
        for w in report["apps"]:
            parts.append(f"<tr><td>{e(w['group'].get('app') or '(no app)')}</td>"
                         + "".join(f"<td>{e(_cell(w['metrics'][n]))}</td>" for n in names) + "</tr>")
        parts.append("</table>")
    parts.append(f"<h2>Alerts ({len(report['alerts'])})</h2><ul>"
                 + "".join(f"<li class='alert'>{e(a['message'])}</li>" for a in report["alerts"]) + "</ul>")
    if report["review_queues"]:
        parts.append("<h2>Review queues</h2><ul>" + "".join(
            f"<li>{e(q['queue'])}: {q['complete']}/{q['items']} complete, {q['labels']} labels</li>"
            for q in report["review_queues"]) + "</ul>")
    if report.get("drift") is not None:
        lines = _drift_lines(report["drift"])
        parts.append(f"<h2>Drift</h2><p id='drift'>{e(lines[0])}</p><ul>"
                     + "".join(f"<li>{e(x.strip())}</li>" for x in lines[1:]) + "</ul>")
    for kind, rows in report["notable"].items():
        if rows:
            parts.append(f"<h2>{e(kind.replace('_', ' ').capitalize())}</h2><table><tr><th>trace</th><th>app</th>"
                         "<th>latency ms</th><th>question</th><th>answer / error</th></tr>")
            parts += [f"<tr><td><code>{e(r['trace_id'])}</code></td><td>{e(r['app'] or '(no app)')}</td>"
                      f"<td>{e(_num(r['latency_ms']))}</td><td>{e(r['input_preview'] or '')}</td>"
                      f"<td>{e(r['error'] or r['output_preview'] or '')}</td></tr>" for r in rows]
            parts.append("</table>")
    return "\n".join(parts)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)
