"""/ui/monitors (and .json): the configured alert rules with their current state (the latest window of each rule,
per app), the alerts the monitor worker sent (the `monitor_alerts` log), and drift — loaded after the page from
/ui/monitors/drift (and .json): per window the input/output drift tests and the new and vanished topic clusters
with links to their example traces.

A tenant key sees its tenant's windows and alerts only; drift is computed over every tenant's traces, so only
a viewer who sees every tenant (admin, open mode) gets it."""

from __future__ import annotations

import json
import logging
import math
import time
import weakref
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from flywheel.config import AlertRule
from flywheel.errors import UserError
from flywheel.monitor.alerts import evaluate, rule_name
from flywheel.store.schema_monitor import monitor_alerts
from flywheel.web.auth import Viewer
from flywheel.web.message_i18n import localize_error
from flywheel.web.metrics_i18n import Text
from flywheel.web.pages import gate
from flywheel.web.render import as_json, fragment, language, render, split_format

router = APIRouter()
log = logging.getLogger("flywheel.web")
ALERT_LOG_ROWS = 200
STATE_TTL_S = 30.0  # rule states are reused this long: evaluating a 1d rule reads a day of traces
_states: dict[tuple[int, str | None], tuple[float, list[dict[str, Any]], str | None]] = {}
_embedders: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # server state → its embedder


def scoped_rules(rules: list[AlertRule], viewer: Viewer) -> list[tuple[str, AlertRule]]:
    """(name, rule) of the rules this viewer may see, narrowed to the viewer's tenant when it has one."""
    out = []
    for i, rule in enumerate(rules):
        name = rule_name(rule, i)
        if viewer.scoped:
            if rule.where.get("tenant") not in (None, viewer.tenant):
                continue
            rule = rule.model_copy(update={"where": {**rule.where, "tenant": viewer.tenant}})
        out.append((name, rule.model_copy(update={"name": name})))
    return out


def rule_states(store: Any, named: list[tuple[str, AlertRule]], now: float) -> tuple[list[dict[str, Any]], str | None]:
    """Each rule with its latest windows (value per group) and whether it fires now; or the config problem."""
    rules = [r for _, r in named]
    try:
        alerts, seen = evaluate(store, rules, until=now) if rules else ([], {})
    except UserError as exc:
        return [_rule_row(name, r, [], []) for name, r in named], exc.message
    return [_rule_row(name, r, seen.get(name, []), [a.to_json() for a in alerts if a.rule == name])
            for name, r in named], None


def _rule_row(name: str, rule: AlertRule, windows: list[Any], firing: list[dict[str, Any]]) -> dict[str, Any]:
    bound = " / ".join(f"{k} {v:g}{'x' if rule.relative_to else ''}" for k, v in
                       (("above", rule.above), ("below", rule.below)) if v is not None)
    latest = [{"group": w.group, "value": w.metrics.get(rule.metric), "start": w.start, "end": w.end,
               "volume": w.metrics.get("volume")} for w in windows]
    return {"name": name, "metric": rule.metric, "window": rule.window, "bound": bound,
            "relative_to": rule.relative_to, "where": dict(rule.where),
            "state": "firing" if firing else ("ok" if latest else "no_window"), "alerts": firing, "latest": latest}


def alert_log(store: Any, viewer: Viewer, limit: int = ALERT_LOG_ROWS) -> list[dict[str, Any]]:
    """Alerts sent, newest first; a tenant key sees those whose group names its tenant."""
    c = monitor_alerts.c
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(monitor_alerts).order_by(c.sent_at.desc())
                                              .limit(limit * (10 if viewer.scoped else 1))).mappings()]
    out = []
    for r in rows:
        try:
            group = json.loads(r["group_key"])
        except ValueError:
            group = {}
        if viewer.scoped and (not isinstance(group, dict) or group.get("tenant") != viewer.tenant):
            continue
        r["group"] = group
        out.append(r)
    return out[:limit]


@router.get("/ui/monitors", include_in_schema=False)
@router.get("/ui/monitors.json", include_in_schema=False)
def monitors_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    state = request.app.state.flywheel
    now = state.clock()
    named = scoped_rules(list(state.project.config.monitor.alerts), viewer)
    key = (id(state), viewer.tenant)
    cached = _states.get(key)
    if cached is not None and cached[0] > time.monotonic() and [r["name"] for r in cached[1]] == [n for n, _ in named] \
            and request.query_params.get("fresh") is None:
        rules, problem = cached[1], cached[2]
    else:
        rules, problem = rule_states(state.store, named, now)
        _states[key] = (time.monotonic() + STATE_TTL_S, rules, problem)
    log = alert_log(state.store, viewer)
    if fmt != "html":
        return as_json(rules, alert_log=[{k: v for k, v in r.items() if k != "group_key"} for r in log],
                       problem=problem, now=now)
    drift_qs = urlencode({k: v for k, v in request.query_params.items() if k in DRIFT_PARAMS})
    drift_errors = shown(drift_params(request, now)[1], language(request)) if not viewer.scoped else {}
    return render(request, "metrics_monitors.html", tx=Text(language(request)), rules=rules, problem=problem,
                  alert_log=log, drift_qs=drift_qs, drift_allowed=not viewer.scoped, errors=drift_errors,
                  drift_form={k: request.query_params.get(k, "") for k in DRIFT_PARAMS})


# ------------------------------------------------------------------------------------------------- drift
def _embedder(state: Any) -> Any:
    if state not in _embedders:
        from flywheel.retrieval.embedders import build_embedder

        cfg = state.project.config
        _embedders[state] = build_embedder(cfg.retrieval, cfg.models, where=state.project.where("retrieval"))
    return _embedders[state]


DRIFT_PARAMS = ("window", "since", "until", "reference", "app")
MAX_DRIFT_WINDOWS = 400  # as the metrics page (metrics_pages.MAX_WINDOWS)


def drift_params(request: Request, now: float) -> tuple[dict[str, Any], dict[str, UserError | str]]:
    """The drift section's params from the URL and {field: problem} for the malformed ones (`shown` words them)."""
    from flywheel.monitor.drift import parse_reference, parse_window
    from flywheel.monitor.windows import check_period
    from flywheel.tracing.search import parse_time

    q = request.query_params
    errors: dict[str, UserError | str] = {}
    p: dict[str, Any] = {"window": q.get("window") or "1d", "reference": q.get("reference") or None,
                         "app": q.get("app") or None, "since": None, "until": None}
    try:
        kind, size = parse_window(p["window"])
        if not math.isfinite(size):  # 400 nines: a count too big for a number
            raise UserError(f"cannot read --window {p['window'][:20]!r}",
                            hint="a duration (30m, 1h, 1d) or a number of traces (500, `500 traces`)")
    except UserError as exc:
        errors["window"] = exc
        p["window"] = "1d"
        kind, size = parse_window("1d")
    for name in ("since", "until"):
        try:
            p[name] = parse_time(q.get(name), now=now)
        except ValueError as exc:
            errors[name] = str(exc)
    if p["since"] is not None and "until" not in errors:
        try:
            check_period(p["since"], now if p["until"] is None else p["until"])
        except UserError as exc:
            errors["since"] = exc
    if p["since"] is not None and not errors and kind == "time" and \
            ((now if p["until"] is None else p["until"]) - p["since"]) / size > MAX_DRIFT_WINDOWS:
        # one window is a list of arrays: `since=-99999999999999` asked for a billion and ran the server out of memory
        errors["since"] = UserError(f"the range holds more than {MAX_DRIFT_WINDOWS} windows of {p['window']}; "
                                    "pick a longer window")
    if p["reference"]:
        try:
            parse_reference(p["reference"], p["since"] or now)
        except UserError as exc:
            errors["reference"] = exc
            p["reference"] = None
    return p, errors


def shown(problems: dict[str, UserError | str], lang: str | None) -> dict[str, str]:
    """{field: why}: on a page (`lang`) a core error in the page's words with its hint (the format to write); in a
    JSON twin (None) the core's English message, as every twin keeps it."""
    return {k: v if isinstance(v, str) else v.message if lang is None else localize_error(lang, v)
            for k, v in problems.items()}


@router.get("/ui/monitors/drift", include_in_schema=False)
@router.get("/ui/monitors/drift.json", include_in_schema=False)
def drift_fragment(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, "fragment" if fmt == "html" else fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    tx = Text(language(request))
    if viewer.scoped:
        if fmt == "json":
            return as_json([], errors={"drift": tx("drift_scoped")})
        return fragment(request, "metrics_drift.html", tx=tx, report=None, errors={}, message=tx("drift_scoped"))
    from flywheel.monitor.drift import drift_report

    state = request.app.state.flywheel
    now = state.clock()
    p, errors = drift_params(request, now)
    report: dict[str, Any] | None = None
    if not errors:
        try:
            report = drift_report(state.store, _embedder(state), project=state.project, reference=p["reference"],
                                  since=p["since"], until=p["until"], window=p["window"], app=p["app"], now=now)
        except UserError as exc:
            errors["drift"] = exc
        except Exception as exc:  # a failing drift computation must not break the monitors page
            log.exception("drift report failed")
            errors["drift"] = f"the drift report failed: {type(exc).__name__}: {exc}"
    if fmt == "json":
        return as_json((report or {}).get("windows", []), alerts=(report or {}).get("alerts", []),
                       reference=(report or {}).get("reference"), errors=shown(errors, None))
    return fragment(request, "metrics_drift.html", tx=tx, report=report, errors=shown(errors, language(request)),
                    message=None, p=p)
