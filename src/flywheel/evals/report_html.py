"""Self-contained HTML reports (one file, inline CSS and SVG charts, no scripts, no network).

`write_html(path, runs, diffs=…, matrices=…)`: per run a headline (pass rate with its Wilson interval),
charts of pass rate by check and of the latency and cost distributions, a diff against the previous run of
the same suite, and a per-case table with every check's verdict and reason, the reference and a word-level
diff of the output against it. `write_pairwise_html(path, report)`: a pairwise comparison with, per pair,
the question, both answers, an A-vs-B diff and the judge's verdict and reasoning for both orders.
Every text is passed through the secret scrubber before it is written (rows stored by older versions too).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.matrix import Matrix
from flywheel.evals.records import CaseRun, scrub
from flywheel.evals.report import agreement_text, judge_agreement, usd
from flywheel.evals.runner import RunSummary
from flywheel.evals.textdiff import diff_html
from flywheel.types import CheckResult

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;
color:#1d2430;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;width:100%;margin:.6em 0}th,td{border-bottom:1px solid #e4e8ec;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f6f8fa}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.muted{color:#656d76}
.tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#eef1f4;margin:1px}
.tag.pass{background:#dafbe1}.tag.fail{background:#ffebe9}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:6px;margin:4px 0;max-height:24em;
overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:24px}.chart{flex:1 1 340px}
details summary{cursor:pointer}
del{background:#ffebe9;color:#82071e}ins{background:#dafbe1;color:#116329;text-decoration:none}
.diff{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:6px;margin:4px 0}
"""


def _t(text: str | None) -> str:
    """Scrubbed and escaped."""
    return escape(scrub(text or ""))


def _ci(ci: list[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"{_pct(ci[0])}–{_pct(ci[1])}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "–" if x is None else fmt.format(x)


# ---------------------------------------------------------------- inline SVG charts


def bar_chart(items: list[tuple[str, float]], *, width: int = 520, title: str = "") -> str:
    """Horizontal bars for values in 0..1 (shown as percentages)."""
    if not items:
        return "<p class='muted'>no data</p>"
    row, label_w = 22, 170
    height = row * len(items) + 10
    parts = [f"<svg width='{width}' height='{height}' role='img' aria-label='{escape(title)}'>"]
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        w = max(0.0, min(1.0, value)) * (width - label_w - 60)
        color = "#2da44e" if value >= 0.999 else "#d4a72c" if value >= 0.5 else "#cf222e"
        parts.append(
            f"<text x='{label_w - 6}' y='{y + 15}' text-anchor='end' font-size='12'>"
            f"{escape(label[:28])}</text>"
            f"<rect x='{label_w}' y='{y + 3}' width='{w:.1f}' height='{row - 6}' fill='{color}'/>"
            f"<text x='{label_w + w + 4:.1f}' y='{y + 15}' font-size='12'>{100 * value:.1f}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    values: list[float], *, bins: int = 20, width: int = 520, height: int = 160, unit: str = ""
) -> str:
    """A histogram of `values` with min / median / max marked on the axis."""
    if not values:
        return "<p class='muted'>no data</p>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    top = max(counts)
    plot_h, bar_w = height - 30, (width - 20) / bins
    parts = [f"<svg width='{width}' height='{height}' role='img'>"]
    for i, c in enumerate(counts):
        h = c / top * (plot_h - 10)
        parts.append(
            f"<rect x='{10 + i * bar_w:.1f}' y='{plot_h - h:.1f}' width='{bar_w - 2:.1f}' height='{h:.1f}' "
            f"fill='#0969da'><title>{c}</title></rect>"
        )
    med = sorted(values)[len(values) // 2]
    labels = [(10, "start", lo), (width / 2, "middle", med), (width - 10, "end", hi)]
    for x, anchor, v in labels:
        parts.append(
            f"<text x='{x}' y='{height - 8}' text-anchor='{anchor}' font-size='11'>"
            f"{'median ' if anchor == 'middle' else ''}{v:,.4g}{unit}</text>"
        )
    parts.append(f"<line x1='10' y1='{plot_h}' x2='{width - 10}' y2='{plot_h}' stroke='#8c959f'/></svg>")
    return "".join(parts)


# ---------------------------------------------------------------- run sections


def _headline(s: RunSummary) -> str:
    verdict = "<span class='pass'>PASS</span>" if s.meets_threshold else "<span class='fail'>FAIL</span>"
    versions = s.versions
    models = ", ".join(f"{a} → {m}" for a, m in versions.get("models", {}).items()) or "–"
    prompts = ", ".join(f"{n}@{v}" for n, v in versions.get("prompts", {}).items()) or "–"
    return (
        f"<p>{verdict} {s.passed}/{s.executions} passed = <b>{_pct(s.pass_rate)}</b> "
        f"(95% Wilson interval {_ci(s.pass_rate_ci95)} over {s.cases} cases; "
        f"threshold {_pct(s.threshold)}) · cost {usd(s.cost_usd)} · "
        f"latency p50 {_num(s.latency_ms['p50'])} ms, "
        f"p95 {_num(s.latency_ms['p95'])} ms · {s.errors} error(s) · repeat {s.repeat}"
        f"{f' · {len(s.flaky)} flaky' if s.flaky else ''}</p>"
        f"<p class='muted'>run {escape(s.run_id)} · target {escape(s.target)}"
        f"{' · model ' + escape(s.model) if s.model else ''} · models {escape(models)} · prompts "
        f"{escape(prompts)} · config {escape(str(versions.get('config_hash')))}</p>"
    )


def _charts(s: RunSummary) -> str:
    checks = [(name, c["pass_rate"] or 0.0) for name, c in s.by_check.items()]
    latencies = [r.latency_ms for r in s.results if r.latency_ms is not None]
    costs = [r.cost_usd for r in s.results if r.cost_usd is not None]
    return (
        "<div class='charts'>"
        f"<div class='chart'><h3>Pass rate by check</h3>{bar_chart(checks, title='pass rate by check')}</div>"
        f"<div class='chart'><h3>Latency (ms)</h3>{histogram(latencies, unit=' ms')}</div>"
        f"<div class='chart'><h3>Cost per case (USD)</h3>{histogram(costs)}</div></div>"
    )


def _diff(s: RunSummary, previous: dict[str, Any], old: list[CaseRun]) -> str:
    def by_case(results: list[CaseRun]) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for r in results:
            out[r.case_id] = out.get(r.case_id, True) and r.passed
        return out

    now, before = by_case(s.results), by_case(old)
    broke = [c for c in now if before.get(c) is True and not now[c]]
    fixed = [c for c in now if before.get(c) is False and now[c]]
    added = [c for c in now if c not in before]
    removed = [c for c in before if c not in now]
    delta = s.pass_rate - (previous.get("pass_rate") or 0.0)
    rows = "".join(
        f"<tr><td>{label}</td><td>{len(ids)}</td><td>{escape(', '.join(ids[:50]))}"
        f"{' …' if len(ids) > 50 else ''}</td></tr>"
        for label, ids in (
            ("pass → fail", broke),
            ("fail → pass", fixed),
            ("new cases", added),
            ("removed cases", removed),
        )
    )
    return (
        f"<h3>Diff against run {escape(previous['id'][:12])}</h3>"
        f"<p>pass rate {_pct(previous.get('pass_rate'))}"
        f" → {_pct(s.pass_rate)} ({'+' if delta >= 0 else ''}{100 * delta:.1f} points)</p>"
        f"<table><tr><th>change</th><th>cases</th><th>ids</th></tr>{rows}</table>"
    )


def _label(c: CheckResult) -> str:
    """A check's name, with its turn in a multi-turn case (the same check often runs on every turn)."""
    turn = c.details.get("turn")
    return escape(f"turn {turn} · {c.name}" if turn is not None else c.name)


def _cases(s: RunSummary) -> str:
    rows = []
    for r in s.results:
        verdict = "<span class='pass'>pass</span>" if r.passed else "<span class='fail'>fail</span>"
        tags = "".join(
            f"<span class='tag {'pass' if c.passed else 'fail'}' title='{_t(c.reason)}'>"
            f"{_label(c)}</span>"
            for c in r.checks
        )
        detail = "".join(
            f"<li><b>{_label(c)}</b> {'✔' if c.passed else '✘'} {_t(c.error or c.reason)}"
            f" <span class='muted'>spec {escape(c.spec)}</span></li>"
            for c in r.checks
        )
        error = f"<p class='fail'>{_t(r.error)}</p>" if r.error else ""
        reference = (
            f"<p class='muted'>reference</p><pre>{_t(r.reference)}</pre>"
            "<p class='muted'>output vs reference (<del>only in the reference</del> "
            "<ins>only in the output</ins>)</p>"
            f"<div class='diff'>{diff_html(scrub(r.reference), scrub(r.output or ''))}</div>"
            if r.reference
            else ""
        )
        rows.append(
            f"<tr><td>{escape(r.case_id)}{f' #{r.repeat_index}' if s.repeat > 1 else ''}</td>"
            f"<td>{verdict}</td>"
            f"<td>{r.score:.2f}</td><td>{_num(r.latency_ms)}</td><td>{usd(r.cost_usd)}</td>"
            f"<td>{tags}{error}<details><summary>input, output, checks</summary>"
            f"<p class='muted'>input</p><pre>{_t(r.input)}</pre>"
            f"<p class='muted'>output</p><pre>{_t(r.output)}</pre>{reference}<ul>{detail}</ul>"
            "</details></td></tr>"
        )
    return (
        "<h3>Cases</h3><table><tr><th>case</th><th>result</th><th>score</th><th>latency ms</th><th>cost</th>"
        f"<th>checks</th></tr>{''.join(rows)}</table>"
    )


def _matrix(m: Matrix) -> str:
    cheapest = m.cheapest
    star = " <span class='pass'>★ cheapest meeting threshold</span>"
    rows = "".join(
        f"<tr><td>{escape(r['model'])}{star if r['model'] == cheapest else ''}</td>"
        f"<td>{_pct(r['pass_rate'])}</td>"
        f"<td>{usd(r['cost_usd'])}</td><td>{_num(r['latency_ms']['p50'])}</td>"
        f"<td>{_num(r['latency_ms']['p95'])}</td><td>{r['errors']}</td></tr>"
        for r in m.rows()
    )
    return (
        f"<h2>Model matrix: {escape(m.suite)} (threshold {_pct(m.threshold)})</h2><table><tr><th>model</th>"
        f"<th>pass rate</th><th>cost</th><th>p50 ms</th><th>p95 ms</th><th>errors</th></tr>{rows}</table>"
    )


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _write(path: str | Path, html: str) -> Path:
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"cannot write the report to {out}: {exc.strerror}", hint="choose a writable --html path"
        ) from None
    return out


def render_runs(
    runs: list[RunSummary],
    *,
    diffs: dict[str, tuple[dict[str, Any], list[CaseRun]]] | None = None,
    matrices: list[Matrix] | None = None,
    judges: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    body = [_matrix(m) for m in matrices or []]
    for s in runs:
        body.append(f"<h2>{escape(s.suite)}{' · ' + escape(s.model) if s.model else ''}</h2>")
        body.append(_headline(s))
        body.extend(f"<p class='muted'>warning: {escape(w)}</p>" for w in s.warnings)
        body.append(_judges(judge_agreement(s, (judges or {}).get(s.run_id))))
        body.append(_charts(s))
        if diffs and s.run_id in diffs:
            body.append(_diff(s, *diffs[s.run_id]))
        body.append(_cases(s))
    return _page("flywheel eval report", "".join(body))


def _judges(lines: list[dict[str, Any]]) -> str:
    """Each judge's last measured agreement with human labels, and a warning when low or never measured."""
    if not lines:
        return ""
    rows = "".join(
        f"<li>{_t(agreement_text(line))}"
        + (f" <span class='fail'>warning: {_t(line['warning'])}</span>" if line.get("warning") else "")
        + "</li>"
        for line in lines
    )
    return f"<h3>judge agreement with people</h3><ul class='judges'>{rows}</ul>"


def write_html(
    path: str | Path,
    runs: list[RunSummary],
    *,
    diffs: dict[str, tuple[dict[str, Any], list[CaseRun]]] | None = None,
    matrices: list[Matrix] | None = None,
    judges: dict[str, list[dict[str, Any]]] | None = None,
) -> Path:
    """`judges`: run id → its judge agreement lines (else each summary's `judges`, when it has them)."""
    return _write(path, render_runs(runs, diffs=diffs, matrices=matrices, judges=judges))


def render_pairwise(report: dict[str, Any]) -> str:
    n = report["judged"] or 0
    outcome_bars = [(k, (report[k] / n) if n else 0.0) for k in ("wins", "ties", "losses")]
    lc = report["length"]
    stored = (
        f" · stored as comparison {escape(report['comparison_id'][:12])}"
        if report.get("comparison_id")
        else ""
    )
    head = (
        f"<p><b>{escape(report['a'])}</b> vs <b>{escape(report['b'])}</b>, "
        f"judged by {escape(report['judge'])} "
        f"({escape(str(report['judge_model']))}), each pair in both orders{stored}.</p>"
        f"<p>wins {report['wins']} · ties {report['ties']} · losses {report['losses']} · skipped "
        f"{report['skipped']} · errors {report['errors']}</p>"
        f"<p>win rate {_pct(report['win_rate'])} (95% Wilson {_ci(report.get('win_rate_wilson95'))} · "
        f"bootstrap {_ci(report.get('win_rate_bootstrap95'))} · exact sign test p = "
        f"{_num(report.get('sign_test_p'), '{:.4g}')}, n = {n}) · position "
        f"consistency {_pct(report['position_consistency'])} · "
        f"longer answer won {_pct(lc['longer_won_rate'])}"
        f" of {lc['decisive_with_length_gap']} decisive pairs · flagged for length {lc['flagged']}</p>"
        + "".join(f"<p class='fail'>warning: {_t(w)}</p>" for w in report.get("warnings", []))
        + bar_chart(outcome_bars, title="outcomes")
    )
    rows = "".join(_pair_row(p) for p in report["pairs"])
    table = (
        "<table><tr><th>case</th><th>outcome</th><th>verdicts (order 1 / swapped)</th><th>length ratio</th>"
        f"<th>flag</th><th>question, answers, judge reasoning</th></tr>{rows}</table>"
    )
    return _page("flywheel pairwise comparison", head + table)


def _pair_row(p: dict[str, Any]) -> str:
    a, b = p.get("answer_a"), p.get("answer_b")
    reasons = p.get("reasons") or [p.get("reason"), None]
    detail = ""
    if a is not None or b is not None:
        reference = (
            f"<p class='muted'>reference</p><pre>{_t(p.get('reference'))}</pre>" if p.get("reference") else ""
        )
        detail = (
            "<details><summary>question, answers, reasoning</summary>"
            f"<p class='muted'>question</p><pre>{_t(p.get('question'))}</pre>{reference}"
            f"<p class='muted'>A</p><pre>{_t(a)}</pre><p class='muted'>B</p><pre>{_t(b)}</pre>"
            "<p class='muted'>A vs B (<del>only in A</del> <ins>only in B</ins>)</p>"
            f"<div class='diff'>{diff_html(scrub(a or ''), scrub(b or ''))}</div>"
            f"<p class='muted'>judge, A shown first: {escape(str(p['verdicts'][0]))}</p><pre>{_t(reasons[0])}</pre>"
            f"<p class='muted'>judge, B shown first: {escape(str(p['verdicts'][1]))}</p><pre>{_t(reasons[1])}</pre>"
            "</details>"
        )
    return (
        f"<tr><td>{escape(p['case_id'])}</td><td>{escape(p['outcome'])}</td>"
        f"<td>{escape(str(p['verdicts'][0]))} / {escape(str(p['verdicts'][1]))}</td>"
        f"<td>{p['length_ratio']:.2f}</td><td>{'length' if p['flagged'] else ''}</td>"
        f"<td>{_t(p.get('error') or p.get('reason') or '')}{detail}</td></tr>"
    )


def write_pairwise_html(path: str | Path, report: dict[str, Any]) -> Path:
    return _write(path, render_pairwise(report))
