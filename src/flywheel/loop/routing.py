"""Eval-driven routing: pick each route's cheapest alias that passes a suite, and measure the arms of live routes.

    selection = select_routes(matrix, route="support", min_pass=0.9)   # from `evals.matrix.arun_matrix`
    selection.chosen                                                    # "small", or None when nothing passes
    route_report(store, "support", since=time.time() - 7 * 86400)       # per-arm volume, feedback, cost, latency

`route_report` reads the `route <name>` spans the gateway writes (`flywheel.route.arm`, `flywheel.route.cost_usd`,
the span's latency), the feedback rows on their traces (user: thumbs down or score < 0.5 is negative, the same rule
as the monitors; check/judge rows with `{"passed": bool}` are online-check results) and the `shadow <name>` spans
(volume and cost, counted apart from the served traffic). Each arm is compared with the arm that served the most
requests by a two-sided Fisher exact test on its negative-feedback rate and on its online-check pass rate.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.matrix import Matrix
from flywheel.evals.stats import MIN_N, wilson


@dataclass
class Candidate:
    alias: str
    pass_rate: float
    interval: tuple[float, float] | None
    executions: int
    cost_usd: float
    cost_per_case: float | None
    latency_p50_ms: float | None
    errors: int
    meets: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "pass_rate": self.pass_rate,
            "pass_rate_ci95": list(self.interval) if self.interval else None,
            "executions": self.executions,
            "cost_usd": self.cost_usd,
            "cost_per_case": self.cost_per_case,
            "latency_p50_ms": self.latency_p50_ms,
            "errors": self.errors,
            "meets_bar": self.meets,
        }


@dataclass
class Selection:
    route: str
    suite: str
    min_pass: float
    by: str  # "rate": the observed pass rate meets the bar; "lower": the Wilson lower bound does
    candidates: list[Candidate]
    chosen: str | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "suite": self.suite,
            "min_pass": self.min_pass,
            "by": self.by,
            "chosen": self.chosen,
            "candidates": [c.to_dict() for c in self.candidates],
            "warnings": self.warnings,
        }


def select_routes(matrix: Matrix, *, route: str, min_pass: float, by: str = "rate") -> Selection:
    """The cheapest alias of `matrix` whose pass rate meets `min_pass` (total cost, then median latency)."""
    candidates = []
    for run in matrix.runs:
        n = run.executions
        interval = wilson(run.pass_rate, n) if n else None
        value = interval[0] if by == "lower" and interval else run.pass_rate
        candidates.append(
            Candidate(
                alias=str(run.model),
                pass_rate=run.pass_rate,
                interval=interval,
                executions=n,
                cost_usd=run.cost_usd,
                cost_per_case=round(run.cost_usd / n, 8) if n else None,
                latency_p50_ms=run.latency_ms.get("p50"),
                errors=run.errors,
                meets=n > 0 and value >= min_pass,
            )
        )
    passing = [c for c in candidates if c.meets]
    chosen = min(passing, key=lambda c: (c.cost_usd, c.latency_p50_ms or 0.0)).alias if passing else None
    warnings = []
    small = [c.alias for c in candidates if c.executions < MIN_N]
    if small:
        warnings.append(
            f"fewer than {MIN_N} cases per model ({', '.join(small)}): the intervals are wide; "
            "add cases before trusting a close call"
        )
    if chosen is not None and by == "rate":
        pick = next(c for c in candidates if c.alias == chosen)
        if pick.interval and pick.interval[0] < min_pass:
            warnings.append(
                f"'{chosen}' meets the bar on the observed rate, but its 95 % interval starts at "
                f"{pick.interval[0]:.2f}; use --strict to require the lower bound"
            )
    for c in candidates if chosen is None and by == "lower" else []:  # why a model at the bar was refused
        if c.executions and c.pass_rate >= min_pass and c.interval:
            reach = wilson(1.0, c.executions)[0]
            why = (
                f"with {c.executions} cases even a perfect score has a 95 % lower bound of {reach:.2f}"
                if reach < min_pass
                else f"its 95 % lower bound is {c.interval[0]:.2f}"
            )
            warnings.append(
                f"'{c.alias}' meets the bar on the observed rate, but {why}; add cases or lower --min-pass"
            )
    return Selection(route, matrix.suite, min_pass, by, candidates, chosen, warnings)


# ---------------------------------------------------------------------------- live arms


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact test of the 2×2 table [[a, b], [c, d]] (p of tables at most as likely)."""
    row1, col1, n = a + b, a + c, a + b + c + d
    if n == 0 or row1 in (0, n) or col1 in (0, n):
        return 1.0

    def log_p(k: int) -> float:
        return _log_comb(col1, k) + _log_comb(n - col1, row1 - k) - _log_comb(n, row1)

    observed = log_p(a)
    lo, hi = max(0, row1 + col1 - n), min(row1, col1)
    total = sum(math.exp(lp) for lp in (log_p(k) for k in range(lo, hi + 1)) if lp <= observed + 1e-7)
    return round(min(1.0, total), 6)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[idx], 3)


def _is_negative(row: dict[str, Any]) -> bool:
    value = row["value"]
    return (
        row["name"] == "thumbs"
        and value == 0
        or (
            row["name"] == "score"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and value < 0.5
        )
    )


def _load(store: Any, route: str | None, since: float | None) -> tuple[list[dict[str, Any]], dict[str, list]]:
    from sqlalchemy import or_, select

    from flywheel.store.schema_feedback import is_current

    spans = store.table("spans")
    cols = [
        spans.c.trace_id,
        spans.c.name,
        spans.c.start_ns,
        spans.c.latency_ms,
        spans.c.attributes,
        spans.c.error,
    ]
    names = [f"route {route}", f"shadow {route}"] if route else None
    q = select(*cols).where(
        spans.c.name.in_(names) if names else or_(spans.c.name.like("route %"), spans.c.name.like("shadow %"))
    )
    if since is not None:
        q = q.where(spans.c.start_ns >= int(since * 1e9))
    feedback = store.table("feedback")
    by_trace: dict[str, list] = defaultdict(list)
    with store.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
        served = sorted({r["trace_id"] for r in rows if r["name"].startswith("route ")})
        for i in range(0, len(served), 500):
            fq = select(feedback.c.trace_id, feedback.c.source, feedback.c.name, feedback.c.value).where(
                feedback.c.trace_id.in_(served[i : i + 500]),
                is_current(feedback),  # a vote its user changed later counts as the later one
            )
            for f in conn.execute(fq).mappings():
                by_trace[f["trace_id"]].append(dict(f))
    return rows, by_trace


def route_report(store: Any, route: str | None = None, *, since: float | None = None) -> dict[str, Any]:
    """Per route and arm: requests, negative-feedback rate, online-check pass rate, cost, latency; a Fisher test
    of each arm against the busiest one; warnings where the samples are too small to tell."""
    rows, feedback = _load(store, route, since)
    routes: dict[str, dict[str, Any]] = {}
    for r in rows:
        attrs = r["attributes"] or {}
        kind, _, name = r["name"].partition(" ")
        entry = routes.setdefault(name, {"arms": defaultdict(list), "shadow": defaultdict(list)})
        entry["arms" if kind == "route" else "shadow"][str(attrs.get("flywheel.route.arm"))].append(r)
    return {"routes": {name: _route_summary(entry, feedback) for name, entry in sorted(routes.items())}}


def _route_summary(entry: dict[str, Any], feedback: dict[str, list]) -> dict[str, Any]:
    arms: dict[str, dict[str, Any]] = {}
    for arm, rows in sorted(entry["arms"].items()):
        negative = rated = online_pass = online_n = 0
        for r in rows:
            fb = feedback.get(r["trace_id"], [])
            users = [f for f in fb if f["source"] == "user" and f["name"] in ("thumbs", "score")]
            rated += bool(users)
            negative += any(_is_negative(f) for f in users)
            for f in fb:
                if (
                    f["source"] in ("check", "judge")
                    and isinstance(f["value"], dict)
                    and isinstance(f["value"].get("passed"), bool)
                ):
                    online_n += 1
                    online_pass += f["value"]["passed"]
        arms[arm] = _arm_numbers(rows, negative, rated, online_pass, online_n)
    base = max(arms, key=lambda a: (arms[a]["requests"], a)) if arms else None
    warnings = []
    for arm, m in arms.items():
        if m["requests"] < MIN_N:
            warnings.append(f"arm '{arm}' has {m['requests']} requests (< {MIN_N}): too few to compare")
        if base is None or arm == base:
            continue
        b = arms[base]
        m["vs"] = base
        m["negative_feedback_p"] = fisher_exact(
            m["negative"], m["requests"] - m["negative"], b["negative"], b["requests"] - b["negative"]
        )
        # no online checks on either side is no evidence, not "no difference" (p 1.0 read as a tested tie)
        m["online_pass_p"] = (
            fisher_exact(
                m["online_passed"],
                m["online_checks"] - m["online_passed"],
                b["online_passed"],
                b["online_checks"] - b["online_passed"],
            )
            if m["online_checks"] and b["online_checks"]
            else None
        )
    shadow = {
        arm: {
            "requests": len(rows),
            "errors": sum(1 for r in rows if r["error"]),
            "cost_usd": round(sum(_cost(r) for r in rows), 8),
        }
        for arm, rows in sorted(entry["shadow"].items())
    }
    return {"baseline": base, "arms": arms, "shadow": shadow, "warnings": warnings}


def _cost(row: dict[str, Any]) -> float:
    value = (row["attributes"] or {}).get("flywheel.route.cost_usd")
    return float(value) if isinstance(value, (int, float)) else 0.0


def _arm_numbers(
    rows: list[dict[str, Any]], negative: int, rated: int, online_pass: int, online_n: int
) -> dict[str, Any]:
    n = len(rows)
    latencies = [float(r["latency_ms"]) for r in rows if r["latency_ms"] is not None]
    cost = sum(_cost(r) for r in rows)
    return {
        "requests": n,
        "errors": sum(1 for r in rows if r["error"]),
        "negative": negative,
        "rated": rated,
        "negative_feedback_rate": round(negative / n, 4) if n else None,
        "negative_feedback_ci95": list(wilson(negative / n, n)) if n else None,
        "online_checks": online_n,
        "online_passed": online_pass,
        "online_pass_rate": round(online_pass / online_n, 4) if online_n else None,
        "online_pass_ci95": list(wilson(online_pass / online_n, online_n)) if online_n else None,
        "cost_usd": round(cost, 8),
        "cost_per_request": round(cost / n, 8) if n else None,
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p95_ms": _percentile(latencies, 0.95),
    }


# ---------------------------------------------------------------------------- writing `routes:` into flywheel.yaml

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _scalar(text: str) -> str:
    return text if _PLAIN.match(text) else json.dumps(text)


def set_route_alias(config_path: Path, route: str, alias: str, comment: str = "") -> str:
    """Point `routes.<route>` of flywheel.yaml at `alias` by a targeted text edit: the route's own lines are
    replaced (its `shadow:` kept unless it is `alias`, a `split:` replaced), every other line and comment stays
    as it was. The new text is validated as a whole before it atomically replaces the file; returns it."""
    from flywheel.config import load_config_file, read_yaml

    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    data, lines = read_yaml(config_path, text) if text.strip() else ({}, {})
    data = data if isinstance(data, dict) else {}
    old = (data.get("routes") or {}).get(route) if isinstance(data.get("routes"), dict) else None
    value: dict[str, Any] = {"alias": alias}
    # a shadow candidate keeps running, unless it is the alias now served (it would copy every request to
    # itself); a split is what the selection replaces
    if isinstance(old, dict) and old.get("shadow") != alias:
        value.update({k: old[k] for k in ("shadow", "shadow_sample") if k in old})
    flow = "{" + ", ".join(f"{k}: {_scalar(str(v))}" for k, v in value.items()) + "}"
    note = f"  # {comment}" if comment else ""
    src = text.splitlines(keepends=True)
    if src and not src[-1].endswith("\n"):
        src[-1] += "\n"
    if "routes" not in data or data.get("routes") is None:
        if ("routes",) in lines:  # `routes:` with nothing under it
            start = lines[("routes",)] - 1
            src[start] = "routes:\n"
            src.insert(start + 1, f"  {_scalar(route)}: {flow}{note}\n")
        else:
            src += [
                "\n" if src and src[-1].strip() else "",
                "routes:\n",
                f"  {_scalar(route)}: {flow}{note}\n",
            ]
    else:
        head = lines[("routes",)] - 1
        if "{" in src[head].split("#", 1)[0].partition(":")[2]:
            raise UserError(
                "`routes:` is written as one flow mapping ({…}), which this edit does not rewrite",
                where=f"{config_path}:{head + 1}",
                hint="write it in block style (one route per line) and run again",
            )
        if (("routes", route)) in lines:
            start = lines[("routes", route)] - 1
            indent = _indent(src[start])
            end = _block_end(src, start, indent)
            src[start:end] = [f"{' ' * indent}{_scalar(route)}: {flow}{note}\n"]
        else:
            children = [lines[k] - 1 for k in lines if len(k) == 2 and k[0] == "routes"]
            indent = _indent(src[children[0]]) if children else _indent(src[head]) + 2
            src.insert(head + 1, f"{' ' * indent}{_scalar(route)}: {flow}{note}\n")
    new_text = "".join(src)
    _atomic_write_validated(config_path, new_text, load_config_file)
    return new_text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(src: list[str], start: int, indent: int) -> int:
    """Index after the last line belonging to the key at `start` (deeper-indented lines; trailing blank and
    comment lines are left to what follows)."""
    end = start + 1
    last = start + 1
    while end < len(src):
        stripped = src[end].strip()
        if stripped and not stripped.startswith("#"):
            if _indent(src[end]) <= indent:
                break
            last = end + 1
        end += 1
    return last


def _atomic_write_validated(path: Path, text: str, load: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            load(tmp)  # the edited config must load (aliases exist, shapes fit) before it replaces the file
        except UserError as exc:
            raise UserError(
                f"the edited {path.name} would not load: {exc.message}",
                where=str(path),
                hint="the file was left unchanged; fix it by hand or run without --write",
            ) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
