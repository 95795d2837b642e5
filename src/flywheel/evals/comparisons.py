"""Stored comparisons (tables `eval_comparisons`, `eval_comparison_pairs`): pairwise and regression reports.

    cid = save_comparison(store, report, kind="pairwise", run_a=..., run_b=...)
    report = load_comparison(store, cid[:8])   # the same report, pairs included

Every pair keeps the question, both answers, the reference, the judge's verdict and reasoning for both
orders of the position swap, its `judge_calls` (more than 2: a reply without a verdict was re-asked; kept by
ordinal in the summary, None for comparisons stored before), and (regression) the replayed trace and the
replay's own trace. The texts in a report were scrubbed of secrets when its pairs were made (`Pair`); they are
scrubbed again here, so a report built by other code cannot store one either.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flywheel.errors import UserError
from flywheel.evals.records import scrub

_PAIR_TEXTS = ("question", "reference", "answer_a", "answer_b", "error")


def save_comparison(
    store: Any,
    report: dict[str, Any],
    *,
    kind: str,
    run_a: str | None = None,
    run_b: str | None = None,
    app: str | None = None,
) -> str:
    """Store `report` (from `compare_pairs` / `against_traces`); returns the new comparison id."""
    from sqlalchemy import insert

    head, pairs = store.table("eval_comparisons"), store.table("eval_comparison_pairs")
    cid = uuid.uuid4().hex
    summary = scrub({k: v for k, v in report.items() if k != "pairs"})
    # each pair's judge calls (2, more where a reply had no verdict and was re-asked), by ordinal, in the summary
    summary["pair_judge_calls"] = [p.get("judge_calls") for p in report.get("pairs") or []]
    rows = []
    for i, p in enumerate(report.get("pairs") or []):
        verdicts, reasons = p.get("verdicts") or [None, None], p.get("reasons") or [None, None]
        rows.append(
            {
                "comparison_id": cid,
                "ordinal": i,
                "case_id": str(p.get("case_id"))[:200],
                **{k: scrub(p.get(k)) for k in _PAIR_TEXTS},
                "outcome": p.get("outcome") or "error",
                "verdict_1": verdicts[0],
                "verdict_2": verdicts[1],
                "reason_1": scrub(reasons[0]),
                "reason_2": scrub(reasons[1]),
                "consistent": p.get("consistent"),
                "length_ratio": p.get("length_ratio"),
                "flagged": bool(p.get("flagged")),
                "judge_cost_usd": p.get("judge_cost_usd"),
                "tenant": p.get("tenant"),
                "trace_id": p.get("trace_id"),
                "replay_trace_id": p.get("replay_trace_id"),
            }
        )
    with store.begin() as conn:
        conn.execute(
            insert(head).values(
                id=cid,
                kind=kind,
                a=str(report.get("a")),
                b=str(report.get("b")),
                run_a=run_a,
                run_b=run_b,
                app=app,
                judge=str(report.get("judge")),
                judge_model=report.get("judge_model"),
                created_at=time.time(),
                summary=summary,
            )
        )
        if rows:
            conn.execute(insert(pairs), rows)
    return cid


def load_comparison(store: Any, ref: str) -> dict[str, Any]:
    """A stored comparison by id or unique prefix (≥ 4 characters), or `latest`: its report with `pairs`."""
    from sqlalchemy import select

    head, pairs = store.table("eval_comparisons"), store.table("eval_comparison_pairs")
    ref = ref.strip().lower()
    with store.connect() as conn:
        if ref == "latest":
            q = select(head).order_by(head.c.created_at.desc()).limit(1)
        elif len(ref) < 4:
            raise UserError(
                f"comparison id `{ref}` is too short", hint="give at least 4 characters of the id"
            )
        else:
            q = select(head).where(head.c.id.like(f"{ref}%")).limit(2)
        found = list(conn.execute(q).mappings())
        if not found:
            raise UserError(
                f"no stored comparison `{ref}`",
                hint="`flywheel compare` prints the id of each comparison it stores",
            )
        if len(found) > 1:
            raise UserError(f"comparison id prefix `{ref}` is ambiguous", hint="give more characters")
        row = dict(found[0])
        q = select(pairs).where(pairs.c.comparison_id == row["id"]).order_by(pairs.c.ordinal)
        rows = [dict(r) for r in conn.execute(q).mappings()]
    report = {**(row["summary"] or {}), "comparison_id": row["id"], "kind": row["kind"]}
    calls = report.pop("pair_judge_calls", None) or []  # absent from comparisons stored before it was kept
    report.update(run_a=row["run_a"], run_b=row["run_b"], created_at=row["created_at"])
    if row["app"]:
        report["app"] = row["app"]
    report["pairs"] = [_pair(r, calls[r["ordinal"]] if 0 <= r["ordinal"] < len(calls) else None) for r in rows]
    return report


def _pair(r: dict[str, Any], judge_calls: int | None) -> dict[str, Any]:
    """A stored pair in the shape `judge_pair` returns (`judge_calls` None: stored before it was kept)."""
    return {
        "case_id": r["case_id"],
        **{k: r[k] for k in _PAIR_TEXTS},
        "tenant": r["tenant"],
        "trace_id": r["trace_id"],
        "replay_trace_id": r["replay_trace_id"],
        "outcome": r["outcome"],
        "verdicts": [r["verdict_1"], r["verdict_2"]],
        "reasons": [r["reason_1"], r["reason_2"]],
        "reason": (r["reason_1"] or "")[:500] or None,
        "consistent": r["consistent"],
        "length_ratio": r["length_ratio"],
        "flagged": bool(r["flagged"]),
        "judge_cost_usd": r["judge_cost_usd"],
        "judge_calls": judge_calls,
        "len_a": len((r["answer_a"] or "").strip()),
        "len_b": len((r["answer_b"] or "").strip()),
    }
