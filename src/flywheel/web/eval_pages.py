"""/ui/evals (eval runs: suite, target, model, pass rate with its Wilson interval, cost, date), /ui/evals/{run}
(the run's cases, filtered by ?show=failed|flaky|passed and ?check=NAME) and /ui/evals/compare?base=RUN&cand=RUN
(per-case changes with word-level diffs, ?only=regressions, McNemar's exact test and a paired bootstrap interval
of the pass-rate change, the stored pairwise-judge comparison of the two runs). Every table is paginated on the
server (?offset=&limit=) and has `.json` / `.csv` twins.

Eval runs belong to the project, not to a tenant: every viewer sees them; stored comparison pairs replayed from
another tenant's production traces are left out for a tenant's key."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import and_, case, func, or_, select

from flywheel.errors import UserError
from flywheel.evals.records import RunStore
from flywheel.evals.stats import bootstrap_ci, sign_test_p, wilson
from flywheel.evals.textdiff import diff_html
from flywheel.store.schema_evals import eval_comparisons, eval_results, eval_runs
from flywheel.web.auth import Viewer
from flywheel.web.pages import gate
from flywheel.web.render import as_csv, as_json, language, not_found, render, split_format
from flywheel.web.review_i18n import Text

router = APIRouter()
RUN_COLUMNS = ("id", "suite", "target", "model", "status", "pass_rate", "ci_low", "ci_high", "cases_total",
               "cost_usd", "started_at")
CASE_COLUMNS = ("case_id", "runs", "passes", "pass_rate", "flaky", "errors", "score", "failed_checks", "input",
                "output", "reference", "trace_id")
COMPARE_COLUMNS = ("case_id", "change", "base_passes", "base_runs", "cand_passes", "cand_runs", "score_delta",
                   "base_output", "cand_output", "reference")
SHOW = ("all", "failed", "flaky", "passed")
ONLY = ("all", "regressions", "changed")
STATUSES = ("running", "finished", "failed", "interrupted")
PAIRS_SHOWN = 50


def _store(request: Request) -> Any:
    return request.app.state.flywheel.store


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return render(request, template, status=status, tx=Text(language(request)), **context)


def _paging(request: Request, errors: dict[str, str]) -> tuple[int, int]:
    """(offset, limit) from the URL; a malformed one is marked invalid and the first page shown."""
    out = []
    for name, default, high in (("offset", 0, 10**9), ("limit", 50, 500)):
        raw = request.query_params.get(name) or str(default)
        if raw.isdigit() and (name == "offset" or 1 <= int(raw)) and int(raw) <= high:
            out.append(int(raw))
        else:
            errors[name] = f"a whole number from {0 if name == 'offset' else 1} to {high}"
            out.append(default)
    return out[0], out[1]


def _choice(request: Request, name: str, allowed: tuple[str, ...], errors: dict[str, str]) -> str:
    value = request.query_params.get(name) or allowed[0]
    if value not in allowed:
        errors[name] = "one of " + ", ".join(allowed)
        return allowed[0]
    return value


def _pager(total: int, offset: int, limit: int) -> dict[str, Any]:
    return {"total": total, "offset": offset, "limit": limit, "first": offset + 1 if total else 0,
            "last": min(total, offset + limit), "next": offset + limit if offset + limit < total else None,
            "prev": max(0, offset - limit) if offset else None}


def _status(errors: dict[str, str]) -> int:
    return 400 if errors else 200


# ------------------------------------------------------------------------------------------- runs
def _run_row(r: dict[str, Any]) -> dict[str, Any]:
    summary = r.get("summary") or {}
    ci = summary.get("pass_rate_ci95") or [None, None]
    if ci[0] is None and r.get("pass_rate") is not None and r.get("cases_total"):
        ci = list(wilson(r["pass_rate"], r["cases_total"]))
    return {"id": r["id"], "suite": r["suite"], "target": r["target"], "model": r["model"], "status": r["status"],
            "pass_rate": r["pass_rate"], "ci_low": ci[0], "ci_high": ci[1], "cases_total": r["cases_total"],
            "cost_usd": summary.get("cost_usd"), "started_at": r["started_at"], "error": r.get("error")}


@router.get("/ui/evals", include_in_schema=False)
@router.get("/ui/evals.json", include_in_schema=False)
@router.get("/ui/evals.csv", include_in_schema=False)
def runs_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    errors: dict[str, str] = {}
    offset, limit = _paging(request, errors)
    filters = {k: request.query_params.get(k, "").strip() for k in ("suite", "model", "status")}
    if filters["status"] and filters["status"] not in STATUSES:
        errors["status"] = "one of " + ", ".join(STATUSES)
    conds = [getattr(eval_runs.c, k) == v for k, v in filters.items() if v and k not in errors]
    with _store(request).connect() as conn:
        total = conn.scalar(select(func.count()).select_from(eval_runs).where(*conds)) or 0
        rows = [_run_row(dict(r)) for r in conn.execute(
            select(eval_runs).where(*conds).order_by(eval_runs.c.started_at.desc(), eval_runs.c.id)
            .offset(offset).limit(limit)).mappings()]
    pager = _pager(total, offset, limit)
    if fmt == "json":
        return as_json(rows, **pager, errors=errors)
    if fmt == "csv":
        return as_csv(rows, RUN_COLUMNS, "eval-runs.csv", status=_status(errors))
    return _page(request, "eval_runs.html", status=_status(errors), rows=rows, pager=pager, errors=errors,
                 filters={k: v for k, v in filters.items() if v})


def _run(request: Request, ref: str) -> dict[str, Any] | None:
    try:
        return RunStore(_store(request)).get(ref.strip())
    except UserError:
        return None


# ------------------------------------------------------------------------------------------- one run
def _case_stats(run_id: str) -> Any:
    r = eval_results.c
    passes = func.sum(case((r.passed, 1), else_=0)).label("passes")
    return (select(r.case_id, func.min(r.id).label("ord"), func.count().label("runs"), passes,
                   func.avg(r.score).label("score"), func.sum(case((r.error.is_not(None), 1), else_=0)).label("errors"))
            .where(r.run_id == run_id).group_by(r.case_id))


def _failing_checks(conn: Any, run_id: str) -> tuple[dict[str, set[str]], list[str]]:
    """{case_id: names of the checks it failed}, and every check name of the run."""
    failing: dict[str, set[str]] = {}
    names: set[str] = set()
    for case_id, checks in conn.execute(select(eval_results.c.case_id, eval_results.c.checks)
                                        .where(eval_results.c.run_id == run_id)):
        for c in checks or []:
            names.add(c.get("name", ""))
            if not c.get("passed"):
                failing.setdefault(case_id, set()).add(c.get("name", ""))
    return failing, sorted(names)


@router.get("/ui/evals/compare", include_in_schema=False)
@router.get("/ui/evals/compare.json", include_in_schema=False)
@router.get("/ui/evals/compare.csv", include_in_schema=False)
def compare_route(request: Request) -> Response:
    return compare_page(request)  # defined below; registered first so that "compare" is never a run id


@router.get("/ui/evals/{run_ref}", include_in_schema=False)
def run_page(request: Request, run_ref: str) -> Response:
    ref, fmt = split_format(run_ref)
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    run = _run(request, ref)
    if run is None:
        return not_found(request, f"no eval run '{ref}'", fmt)
    errors: dict[str, str] = {}
    offset, limit = _paging(request, errors)
    show = _choice(request, "show", SHOW, errors)
    check = request.query_params.get("check", "").strip()
    with _store(request).connect() as conn:
        failing, check_names = _failing_checks(conn, run["id"])
        if check and check not in check_names:
            errors["check"] = "not a check of this run: " + (", ".join(check_names[:20]) or "it ran none")
            check = ""
        stats = _case_stats(run["id"]).subquery()
        q = select(stats)
        if show == "failed":
            q = q.where(stats.c.passes < stats.c.runs)
        elif show == "flaky":
            q = q.where(stats.c.passes > 0, stats.c.passes < stats.c.runs)
        elif show == "passed":
            q = q.where(stats.c.passes == stats.c.runs)
        if check:
            q = q.where(stats.c.case_id.in_(sorted(c for c, names in failing.items() if check in names)))
        total = conn.scalar(select(func.count()).select_from(q.subquery())) or 0
        cases = [dict(r) for r in conn.execute(q.order_by(stats.c.ord).offset(offset).limit(limit)).mappings()]
        firsts = {r["id"]: dict(r) for r in conn.execute(select(eval_results).where(
            eval_results.c.id.in_([c["ord"] for c in cases]))).mappings()} if cases else {}
        # "Compare" opens this run against the suite's run before it (or the pick-two form when there is none):
        # a link with only one side answered the form's "a run id is needed" error
        runs_c = eval_runs.c
        previous = conn.scalar(select(runs_c.id).where(runs_c.suite == run["suite"], runs_c.id != run["id"],
                                                      runs_c.started_at < (run["started_at"] or 0))
                               .order_by(runs_c.started_at.desc()).limit(1))
    rows = []
    for c in cases:
        first = firsts.get(c["ord"], {})
        runs, passes = int(c["runs"]), int(c["passes"] or 0)
        rows.append({"case_id": c["case_id"], "runs": runs, "passes": passes, "pass_rate": round(passes / runs, 4),
                     "flaky": 0 < passes < runs, "errors": int(c["errors"] or 0),
                     "score": round(float(c["score"] or 0), 4), "failed_checks": sorted(failing.get(c["case_id"], ())),
                     "input": first.get("input"), "output": first.get("output"), "reference": first.get("reference"),
                     "trace_id": first.get("trace_id"), "checks": first.get("checks") or [],
                     "error": first.get("error")})
    pager = _pager(total, offset, limit)
    if fmt == "json":
        return as_json(rows, run=_run_row(run), **pager, errors=errors)
    if fmt == "csv":
        return as_csv(rows, CASE_COLUMNS, f"eval-{run['id'][:8]}.csv", status=_status(errors))
    return _page(request, "eval_run.html", status=_status(errors), run=_run_row(run), rows=rows, pager=pager,
                 errors=errors, show=show, check=check, check_names=check_names,
                 compare_url=f"/ui/evals/compare?{urlencode({'base': previous, 'cand': run['id']})}" if previous
                 else "/ui/evals/compare",
                 filters={k: v for k, v in (("show", show if show != "all" else ""), ("check", check)) if v})


# ------------------------------------------------------------------------------------------- compare helpers
def case_outcomes(conn: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """{case_id: {ord, runs, passes, score, passed}} of a run; a case passes when every repeat passed."""
    out = {}
    for r in conn.execute(_case_stats(run_id)).mappings():
        runs, passes = int(r["runs"]), int(r["passes"] or 0)
        out[r["case_id"]] = {"ord": r["ord"], "runs": runs, "passes": passes, "score": float(r["score"] or 0),
                             "passed": passes == runs}
    return out


def paired_test(base: dict[str, dict[str, Any]], cand: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """McNemar's exact test (the sign test on the discordant cases) and a paired bootstrap interval of the
    pass-rate change, over the cases both runs have."""
    both = [c for c in base if c in cand]
    regressions = sum(base[c]["passed"] and not cand[c]["passed"] for c in both)
    fixes = sum(cand[c]["passed"] and not base[c]["passed"] for c in both)
    diffs = [int(cand[c]["passed"]) - int(base[c]["passed"]) for c in both]
    base_rate = sum(base[c]["passed"] for c in both) / len(both) if both else None
    cand_rate = sum(cand[c]["passed"] for c in both) / len(both) if both else None
    return {"n": len(both), "regressions": regressions, "fixes": fixes, "p_value": sign_test_p(fixes, regressions),
            "base_rate": base_rate, "cand_rate": cand_rate,
            "base_ci95": list(wilson(base_rate, len(both))) if both and base_rate is not None else None,
            "cand_ci95": list(wilson(cand_rate, len(both))) if both and cand_rate is not None else None,
            "change": (cand_rate - base_rate) if both and cand_rate is not None and base_rate is not None else None,
            "change_ci95": list(ci) if (ci := bootstrap_ci([float(d) for d in diffs])) else None}


def change_of(b: dict[str, Any] | None, c: dict[str, Any] | None) -> str:
    if b is None:
        return "new"
    if c is None:
        return "missing"
    if b["passed"] and not c["passed"]:
        return "regression"
    if c["passed"] and not b["passed"]:
        return "fix"
    return "same"


def texts(conn: Any, run_id: str, case_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The first repeat's input, output and reference of each case."""
    if not case_ids:
        return {}
    r = eval_results.c
    rows = conn.execute(select(r.case_id, r.input, r.output, r.reference, r.trace_id, r.repeat_index)
                        .where(r.run_id == run_id, r.case_id.in_(case_ids)).order_by(r.repeat_index)).mappings()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row["case_id"], dict(row))
    return out


def stored_comparison(store: Any, run_a: str, run_b: str) -> str | None:
    """The id of the newest stored pairwise comparison of these two runs (either order)."""
    c = eval_comparisons.c
    with store.connect() as conn:
        return conn.scalar(select(c.id).where(c.kind == "pairwise", or_(
            and_(c.run_a == run_a, c.run_b == run_b), and_(c.run_a == run_b, c.run_b == run_a)))
            .order_by(c.created_at.desc()).limit(1))


def diff(old: Any, new: Any) -> Markup:
    return Markup(diff_html(str(old or ""), str(new or "")))  # diff_html escapes every token itself



# ------------------------------------------------------------------------------------------- compare
def compare_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    errors: dict[str, str] = {}
    refs = {k: request.query_params.get(k, "").strip() for k in ("base", "cand")}
    if not refs["base"] or not refs["cand"]:
        for k, v in refs.items():
            if not v and any(refs.values()):
                errors[k] = "a run id is needed"
        with _store(request).connect() as conn:
            recent = [_run_row(dict(r)) for r in conn.execute(
                select(eval_runs).order_by(eval_runs.c.started_at.desc()).limit(50)).mappings()]
        if fmt != "html":
            return as_json([], errors=errors or {"base": "a run id is needed", "cand": "a run id is needed"})
        return _page(request, "eval_compare.html", status=_status(errors), base=None, cand=None, recent=recent,
                     refs=refs, errors=errors, rows=[], filters={})
    runs = {k: _run(request, v) for k, v in refs.items()}
    for k, run in runs.items():
        if run is None:
            return not_found(request, f"no eval run '{refs[k]}' ({k})", fmt)
    base, cand = runs["base"], runs["cand"]
    assert base is not None and cand is not None
    offset, limit = _paging(request, errors)
    only = _choice(request, "only", ONLY, errors)
    store = _store(request)
    with store.connect() as conn:
        b_cases, c_cases = case_outcomes(conn, base["id"]), case_outcomes(conn, cand["id"])
        order = sorted(set(b_cases) | set(c_cases), key=lambda k: (
            b_cases[k]["ord"] if k in b_cases else float("inf"), c_cases[k]["ord"] if k in c_cases else 0))
        changes = {k: change_of(b_cases.get(k), c_cases.get(k)) for k in order}
        if only == "regressions":
            order = [k for k in order if changes[k] == "regression"]
        elif only == "changed":
            order = [k for k in order if changes[k] != "same"]
        page_ids = order[offset:offset + limit]
        b_text, c_text = texts(conn, base["id"], page_ids), texts(conn, cand["id"], page_ids)
    rows = []
    for k in page_ids:
        b, c = b_cases.get(k), c_cases.get(k)
        bt, ct = b_text.get(k, {}), c_text.get(k, {})
        reference = ct.get("reference") or bt.get("reference")
        rows.append({"case_id": k, "change": changes[k], "base_passes": b and b["passes"], "base_runs": b and b["runs"],
                     "cand_passes": c and c["passes"], "cand_runs": c and c["runs"],
                     "score_delta": round(c["score"] - b["score"], 4) if b and c else None,
                     "input": ct.get("input") or bt.get("input"), "base_output": bt.get("output"),
                     "cand_output": ct.get("output"), "reference": reference,
                     "base_trace": bt.get("trace_id"), "cand_trace": ct.get("trace_id")})
    test = paired_test(b_cases, c_cases)
    pager = _pager(len(order), offset, limit)
    if fmt == "json":
        return as_json(rows, base=_run_row(base), cand=_run_row(cand), test=test, **pager, errors=errors)
    if fmt == "csv":
        return as_csv(rows, COMPARE_COLUMNS, "eval-compare.csv", status=_status(errors))
    for r in rows:
        r["diff_outputs"] = diff(r["base_output"], r["cand_output"]) if r["base_output"] is not None else None
        r["diff_reference"] = diff(r["reference"], r["cand_output"]) if r["reference"] else None
    return _page(request, "eval_compare.html", status=_status(errors), base=_run_row(base), cand=_run_row(cand),
                 rows=rows, test=test, pager=pager, errors=errors, only=only, refs=refs,
                 filters={k: v for k, v in (("base", refs["base"]), ("cand", refs["cand"]),
                                            ("only", only if only != "all" else "")) if v},
                 judged=_judged(request, viewer, base["id"], cand["id"]))


def _judged(request: Request, viewer: Viewer, base_id: str, cand_id: str) -> dict[str, Any] | None:
    """The stored pairwise comparison of the two runs, with A = base (answers swapped when it was run the other
    way round); pairs of another tenant's traces left out for a tenant's key."""
    from flywheel.evals.comparisons import load_comparison

    cid = stored_comparison(_store(request), base_id, cand_id)
    if cid is None:
        return None
    report = load_comparison(_store(request), cid)
    flip = report.get("run_a") == cand_id
    swap = {"win": "loss", "loss": "win"}
    pairs = []
    for p in report["pairs"]:
        if viewer.scoped and p.get("tenant") not in (None, viewer.tenant):
            continue
        if flip:
            p = {**p, "answer_a": p["answer_b"], "answer_b": p["answer_a"],
                 "outcome": swap.get(p["outcome"], p["outcome"])}
        pairs.append(p)
    counts = {o: sum(p["outcome"] == o for p in pairs) for o in ("win", "tie", "loss")}
    return {"id": cid, "judge": report.get("judge"), "judge_model": report.get("judge_model"),
            "sign_test_p": report.get("sign_test_p"), "counts": counts, "n": len(pairs),
            "pairs": pairs[:PAIRS_SHOWN]}
