"""Shadow outputs against what was served: pairs for the pairwise judge (`flywheel route compare-shadow`).

Each `shadow <route>` span (written by gateway/routes.py on its own trace) names the served trace in
`flywheel.shadow_of`. A pair is (question, served answer = A, shadow answer = B): the question is the last user
message the served call sent, the answers are the outputs of the `route <route>` and `shadow <route>` spans.
Shadow calls that failed have no answer and are left out (counted under `failed`).
"""

from __future__ import annotations

from typing import Any

from flywheel.errors import UserError
from flywheel.evals.pairwise import Pair, compare_pairs


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return ""


def _question(inputs: Any) -> str:
    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def shadow_pairs(store: Any, route: str, last: int = 50) -> tuple[list[Pair], dict[str, Any]]:
    """Pairs from the latest `last` shadow copies of `route`, and counts (shadow calls seen, failed, paired)."""
    from sqlalchemy import select

    spans = store.table("spans")
    with store.connect() as conn:
        shadows = [dict(r) for r in conn.execute(
            select(spans.c.trace_id, spans.c.attributes, spans.c.outputs, spans.c.error, spans.c.tenant)
            .where(spans.c.name == f"shadow {route}").order_by(spans.c.start_ns.desc()).limit(last)).mappings()]
        served_ids = [str((s["attributes"] or {}).get("flywheel.shadow_of")) for s in shadows]
        served: dict[str, dict[str, Any]] = {}
        for i in range(0, len(served_ids), 500):
            chunk = served_ids[i:i + 500]
            q = select(spans.c.trace_id, spans.c.name, spans.c.inputs, spans.c.outputs).where(
                spans.c.trace_id.in_(chunk), spans.c.name.in_([f"route {route}", "gateway.chat"]))
            for r in conn.execute(q).mappings():
                entry = served.setdefault(r["trace_id"], {})
                if r["name"] == "gateway.chat" and "question" not in entry:
                    entry["question"] = _question(r["inputs"])
                elif r["name"] == f"route {route}":
                    entry["answer"] = _text(r["outputs"])
    if not shadows:
        raise UserError(f"no shadow outputs stored for route '{route}'",
                        hint=f"set `routes.{route}.shadow: ALIAS` in flywheel.yaml and serve traffic through it")
    pairs, failed = [], 0
    for shadow, served_id in zip(shadows, served_ids, strict=True):
        answer_b = _text(shadow["outputs"])
        entry = served.get(served_id, {})
        if shadow["error"] or not answer_b or not entry.get("answer"):
            failed += 1
            continue
        pairs.append(Pair(case_id=served_id[:12], question=entry.get("question", ""), a=entry["answer"],
                          b=answer_b, tenant=shadow["tenant"], trace_id=served_id,
                          replay_trace_id=shadow["trace_id"]))
    counts = {"shadow_calls": len(shadows), "failed_or_unpaired": failed, "paired": len(pairs)}
    if not pairs:
        raise UserError(f"none of the {len(shadows)} shadow calls of route '{route}' has an answer to compare",
                        hint="look at the `shadow` traces: the candidate alias may be failing")
    return pairs, counts


async def compare_shadow(store: Any, gateway: Any, route: str, judge: str, *, last: int = 50,
                         concurrency: int = 8, max_length_diff: float | None = None,
                         length_action: str = "flag") -> dict[str, Any]:
    """Judge served (A) against shadow (B) answers of `route`; the pairwise report plus `route` and counts."""
    pairs, counts = shadow_pairs(store, route, last)
    report = await compare_pairs(pairs, gateway, judge, a="served", b="shadow", max_length_diff=max_length_diff,
                                 length_action=length_action, concurrency=concurrency)
    report["route"] = route
    report["shadow"] = counts
    return report
