"""Alert rules over monitor windows (`monitor.alerts:` in flywheel.yaml) and where alerts go (`monitor.notify:`).

    - {name: errors, metric: error_rate, window: 1h, above: 0.05}                 # absolute bound
    - {name: refusals, metric: refusal_rate, window: 1d, above: 2.0, relative_to: window:7d}

A relative rule compares each window with its baseline: the same metric over the windows of the same group in
the `relative_to` span just before it — for rates, percentiles and means their volume-weighted mean (the pooled
rate: steadier than any single window's), for totals (volume, cost_usd, tokens, pii_hits) the mean per window (`window:7d` = the seven 1d windows before; at least
MIN_BASELINE_WINDOWS of them must hold traces, else the window is not judged). Its bounds
are ratios (above: 2.0 = twice the baseline; below: 0.5 = half). A baseline of 0 counts any value above 0
as crossing `above`. Windows without a value for the metric (no answers, no JSON asked for …) raise nothing.
For totals, a group's window without traces is a 0 (an outage crosses `below`), and a window still open is
judged against `above` only (its total can still grow past `below`).

Notify targets: `log` (the `flywheel.monitor` logger, at WARNING), `http(s)://…` (POST `{"alerts": [...]}`
as JSON), `command:CMD` (CMD run with the same JSON on stdin). A target that fails is logged; it never stops
the others or the monitor.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import statistics
import subprocess
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flywheel.config import AlertRule
from flywheel.errors import UserError
from flywheel.monitor.windows import GROUP_FIELDS, METRICS, WindowStats, compute, parse_duration
from flywheel.store import Store

log = logging.getLogger("flywheel.monitor")
HTTP_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0
MIN_BASELINE_WINDOWS = 3  # a baseline of one or two windows is too noisy to judge a ratio against


@dataclass
class Alert:
    rule: str
    metric: str
    value: float
    bound: str  # "above 0.05", "above 2x baseline"
    window_start: float
    window_end: float
    group: dict[str, str | None]
    baseline: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        group = ", ".join(f"{k}={'-' if v is None else v}" for k, v in self.group.items()) or "all traffic"
        if self.details.get("message"):  # a drift alert says what moved in its own words
            return f"{self.rule}: {self.details['message']}, {self.bound} [{group}]"
        base = f" (baseline {self.baseline:.4g})" if self.baseline is not None else ""
        return f"{self.rule}: {self.metric} = {self.value:.4g}{base}, {self.bound} [{group}]"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "metric": self.metric, "value": self.value, "bound": self.bound,
                "baseline": self.baseline, "window_start": self.window_start, "window_end": self.window_end,
                "group": self.group, "message": self.message}


def rule_name(rule: AlertRule, index: int) -> str:
    return rule.name or f"{rule.metric}#{index + 1}"


def check_rules(rules: Sequence[AlertRule], notify: Sequence[str] = (), where: Callable[..., str] | None = None) -> None:
    """Configuration mistakes in `monitor.alerts` / `monitor.notify` as UserError (exit 2), naming the rule."""
    for i, rule in enumerate(rules):
        at = where("monitor", "alerts", i) if where else None
        name = rule_name(rule, i)
        if rule.metric not in METRICS:
            raise UserError(f"alert rule `{name}` watches unknown metric {rule.metric!r}", where=at,
                            hint=f"known metrics: {', '.join(METRICS)}")
        if rule.above is None and rule.below is None:
            raise UserError(f"alert rule `{name}` has neither `above` nor `below`", where=at,
                            hint="give a bound, e.g. above: 0.05 (or above: 1.5 with relative_to: window:7d)")
        try:
            parse_duration(rule.window, f"the window of alert rule `{name}`")
            if rule.relative_to is not None:
                baseline_width(rule, name)
        except UserError as err:  # the rule's flywheel.yaml line, like the other mistakes in it
            if err.where is None:
                err.where = at
            raise
        for key in rule.where:
            if key not in GROUP_FIELDS:
                raise UserError(f"alert rule `{name}` filters on unknown field {key!r}", where=at,
                                hint=f"`where:` takes {', '.join(GROUP_FIELDS)}")
    for i, target in enumerate(notify):
        if not (target == "log" or target.startswith(("http://", "https://"))
                or (target.startswith("command:") and target[8:].strip())):
            raise UserError(f"unknown notify target {target!r}", where=where("monitor", "notify", i) if where else None,
                            hint="use log, an http(s):// webhook URL, or command:CMD")


def notify_targets(notify: Sequence[str], where: Callable[..., str] | None = None) -> list[str]:
    """The `monitor.notify` targets `--notify` sends to, checked; none configured is a UserError (exit 2)
    rather than a flag that silently sends nothing."""
    if not notify:
        raise UserError("--notify: no notify targets in flywheel.yaml",
                        hint="add monitor.notify, e.g. notify: [log, https://hooks.example.com/flywheel]")
    check_rules([], notify, where)
    return list(notify)


def baseline_width(rule: AlertRule, name: str) -> float:
    spec = (rule.relative_to or "").strip()
    if not spec.startswith("window:"):
        raise UserError(f"alert rule `{name}`: cannot read relative_to {spec!r}",
                        hint="write relative_to: window:7d (the span of windows before each window)")
    return parse_duration(spec[len("window:"):], f"relative_to of alert rule `{name}`")


def evaluate(store: Store, rules: Sequence[AlertRule], *, since: float | None = None, until: float | None = None,
             group_by: Sequence[str] = ("app",), now: float | None = None
             ) -> tuple[list[Alert], dict[str, list[WindowStats]]]:
    """Alerts of every rule over every window in [since, until) (default: the latest window of each rule),
    and the windows each rule looked at (by rule name). Windows ending after `now` (default: the clock) are
    still open: a total there is not judged against `below`, and no empty window is assumed there."""
    check_rules(rules)
    now = time.time() if now is None else now
    until = now if until is None else until
    seen_until = min(until, now)
    alerts: list[Alert] = []
    seen: dict[str, list[WindowStats]] = {}
    for i, rule in enumerate(rules):
        name = rule_name(rule, i)
        width = parse_duration(rule.window)
        # the latest windows: the one that closed last, whole, and the current one. Windows are epoch-aligned
        # (monitor.windows), so starting at `until - width` would judge the closed window on its tail alone.
        start = math.floor((until - width) / width) * width if since is None else since
        extra = baseline_width(rule, name) if rule.relative_to else 0.0
        if rule.metric in _TOTALS:  # a group's window without traces is a 0 (an outage), judged like any other
            extra = max(extra, width)
        stats = compute(store, window=width, since=start - extra, until=until, group_by=group_by,
                        where=rule.where or None)
        if rule.metric in _TOTALS:
            stats = _with_empty_windows(stats, width, seen_until)
        seen[name] = [w for w in stats if w.end > start]
        history: dict[tuple, list[WindowStats]] = defaultdict(list)
        for w in stats:  # oldest first
            key = tuple(sorted(w.group.items(), key=lambda kv: kv[0]))
            if w.end > start:
                alert = _check(rule, name, w, history[key], extra, closed=w.end <= seen_until)
                if alert is not None:
                    alerts.append(alert)
            history[key].append(w)
    return alerts, seen


def _with_empty_windows(stats: list[WindowStats], width: float, until: float) -> list[WindowStats]:
    """`stats` plus, for every group, a window of zero totals for each window without traces from the group's
    first window up to the one holding `until` (compute returns only windows that hold traces)."""
    first: dict[tuple, WindowStats] = {}
    have: set[tuple] = set()
    for w in stats:
        key = tuple(sorted(w.group.items(), key=lambda kv: kv[0]))
        first.setdefault(key, w)
        have.add((key, w.start))
    out = list(stats)
    for key, w0 in first.items():
        start = w0.start + width
        while start < until:
            if (key, start) not in have:
                metrics: dict[str, float | None] = {m: (0 if m in _TOTALS else None) for m in METRICS}
                out.append(WindowStats(start, start + width, dict(w0.group), metrics, {"empty": True}))
            start += width
    return sorted(out, key=lambda w: w.start)


def _check(rule: AlertRule, name: str, w: WindowStats, before: list[WindowStats], span: float, *,
           closed: bool = True) -> Alert | None:
    value = w.metrics.get(rule.metric)
    if value is None:
        return None
    baseline: float | None = None
    subject = float(value)
    if rule.relative_to:
        past = [b for b in before if b.start >= w.start - span and b.metrics.get(rule.metric) is not None]
        if sum(1 for b in past if b.metrics.get("volume")) < MIN_BASELINE_WINDOWS:
            return None
        baseline = _baseline(rule.metric, past)
        subject = (float("inf") if value > 0 else 1.0) if baseline == 0 else float(value) / baseline
    unit = "x baseline" if rule.relative_to else ""
    # a total of a window still open only grows: it can already be above its bound, not yet known to be below
    can_be_below = closed or rule.metric not in _TOTALS
    if rule.above is not None and subject > rule.above:
        bound = f"above {rule.above:g}{unit}"
    elif rule.below is not None and subject < rule.below and can_be_below:
        bound = f"below {rule.below:g}{unit}"
    else:
        return None
    group = {**rule.where, **w.group}  # a rule's `where:` is part of what the alert is about
    return Alert(rule=name, metric=rule.metric, value=float(value), bound=bound, window_start=w.start,
                 window_end=w.end, group=group, baseline=baseline)


_TOTALS = frozenset({"volume", "cost_usd", "tokens", "pii_hits", "json_requested"})


def _baseline(metric: str, windows: list[WindowStats]) -> float:
    values = [float(w.metrics[metric]) for w in windows]  # type: ignore[arg-type]
    if metric in _TOTALS:
        return statistics.fmean(values)
    weights = [float(w.metrics["volume"] or 0) for w in windows]
    total = sum(weights)
    return sum(v * wt for v, wt in zip(values, weights, strict=True)) / total if total else statistics.fmean(values)


# ---------------------------------------------------------------------------- notify


def fire(store: Store, rules: Sequence[AlertRule], targets: Sequence[str], *, now: float | None = None,
         group_by: Sequence[str] = ("app",)) -> list[Alert]:
    """Evaluate every rule over its latest window and notify the alerts not notified before. Each alert is
    claimed by inserting its (rule, window, group) into `monitor_alerts`, so of several workers exactly one
    sends it, once. Returns the alerts sent now."""
    from sqlalchemy import exc as sa_exc

    from flywheel.store.schema_monitor import monitor_alerts

    if not rules:
        return []
    now = time.time() if now is None else now
    alerts, _ = evaluate(store, rules, until=now, group_by=group_by, now=now)
    new = []
    for a in alerts:
        try:
            with store.begin() as conn:
                conn.execute(monitor_alerts.insert().values(
                    rule=a.rule[:100], window_start=a.window_start, group_key=json.dumps(a.group, sort_keys=True)[:500],
                    sent_at=now, message=a.message))
        except sa_exc.IntegrityError:
            continue  # sent already (by this or another worker)
        new.append(a)
    notify(new, targets)
    return new



def drift_alerts(report: dict[str, Any]) -> list[Alert]:
    """The alerts of a drift report (`flywheel.monitor.drift.drift_report`) as Alerts, for `notify` — so drift
    reaches the same `monitor.notify` targets, in the same JSON, as the monitor's alerts."""
    threshold = report.get("reference", {}).get("threshold")
    bound = f"p below {threshold:.2g}" if isinstance(threshold, float) else "p below the threshold"
    group = {"app": report["app"]} if report.get("app") else {}
    return [Alert(rule="drift", metric=str(a["kind"]), value=float(a["p_value"]), bound=bound,
                  window_start=float(a["start"] if a.get("start") is not None else report["since"]),
                  window_end=float(a["end"] if a.get("end") is not None else report["until"]), group=dict(group),
                  details={"message": a["message"]}) for a in report.get("alerts", [])]


def notify(alerts: Sequence[Alert], targets: Sequence[str]) -> list[str]:
    """Send `alerts` to every target; returns the problems (also logged), never raises for a failing target."""
    if not alerts:
        return []
    payload = json.dumps({"alerts": [a.to_json() for a in alerts]}, ensure_ascii=False).encode("utf-8")
    problems: list[str] = []
    for target in targets:
        try:
            if target == "log":
                for a in alerts:
                    log.warning("alert %s", a.message)
            elif target.startswith(("http://", "https://")):
                req = urllib.request.Request(target, data=payload, method="POST",
                                             headers={"content-type": "application/json"})
                with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                    resp.read()
            elif target.startswith("command:"):
                done = subprocess.run(shlex.split(target[len("command:"):]), input=payload, capture_output=True,
                                      timeout=COMMAND_TIMEOUT_S, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"exit {done.returncode}: {done.stderr.decode('utf-8', 'replace')[:300]}")
        except Exception as exc:  # noqa: BLE001 - one failing target must not silence the others
            problem = f"notify {_shown(target)} failed: {exc}"
            log.error("%s", problem)
            problems.append(problem)
    return problems


def _shown(target: str) -> str:
    """A notify target as it may be printed and logged. A webhook's path and query are often its credential
    (Slack, Discord, Teams hooks carry the token in the path), so only its scheme and host are shown."""
    import urllib.parse

    from flywheel.text.secrets import scrub_secrets

    if target.startswith(("http://", "https://")):
        try:
            parts = urllib.parse.urlsplit(target)
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return scrub_secrets(target)
        rest = "/…" if parts.path.strip("/") or parts.query else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{rest}"
    return scrub_secrets(target)
