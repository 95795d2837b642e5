"""Pairwise comparison with an LLM judge: each pair judged twice with the A/B order swapped.

A win counts only when both orders prefer the same answer; any disagreement (or an explicit tie) is a tie,
as in FastChat's llm_judge. The judge writes its reasoning before the verdict. Length is controlled: every
pair reports its length ratio, and with `max_length_diff` (percent) pairs that differ more are flagged or
skipped; the report says how often the longer answer won, which exposes a judge that rewards length.

Win rate = (wins + ½ ties) / judged pairs. Next to it: a 95 % Wilson interval (n = judged pairs), the
two-sided exact sign test of wins against losses (ties left out), and a 95 % percentile bootstrap over pairs
(2,000 resamples, fixed seed) — absent when every pair had the same outcome (e.g. all ties), where it would
have zero width. Fewer than 30 judged pairs gets a warning. Position consistency = share of judged pairs
whose two orders agree. The judge answers as structured output (`{"reasoning", "verdict"}`) where the alias's
endpoint takes `response_format`, else in text whose final verdict line counts. Replies are read by the rules
of flywheel.checks.judge_parse (`Verdict: tie`, `结论：平局`, `{"winner": "B"}` …); a reply without a verdict
(empty, cut off, only a <think> block, a score) is asked once more for the verdict alone, as the single judge
does (`ask_for_verdict_async`: a traced, priced gateway call); each pair records its `judge_calls` (both
orders, re-asks included) and its cost covers them all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from flywheel.checks.judge import ask_for_verdict_async, pinned_model, with_structured_output
from flywheel.checks.judge_parse import read_verdict, reasoning_of
from flywheel.errors import GatewayError, UserError
from flywheel.evals.records import scrub
from flywheel.evals.stats import MIN_N, bootstrap_ci, sign_test_p, wilson
from flywheel.types import ChatRequest, Message

PAIRWISE_SYSTEM = """Please act as an impartial judge and compare two responses by AI assistants
to the user question below.
Choose the response that answers the question better: correct, relevant, helpful, faithful to any reference.
Do not let the order of the responses or their length influence you:
a longer answer is not better for being longer.
If both are equally good or equally bad, say it is a tie.
First explain your reasoning, comparing the two responses.
Only after the reasoning, end with one final line that is exactly
`Verdict: A`, `Verdict: B` or `Verdict: tie`."""

PAIRWISE_USER = """<question>
{question}
</question>
{reference}
<response_a>
{a}
</response_a>

<response_b>
{b}
</response_b>

Which response is better? Reason first, then the final line `Verdict: A`, `Verdict: B` or `Verdict: tie`."""

PAIR_LABELS = {
    "a": "A",
    "b": "B",
    "tie": "tie",
    "draw": "tie",
    "c": "tie",
    "equal": "tie",
    "both": "tie",
    "neither": "tie",
    "same": "tie",
    # Chinese judges: 平局 (a draw), 相同 (the same), 一样好 (equally good), 不分胜负 (no winner)
    "平局": "tie",
    "相同": "tie",
    "一样好": "tie",
    "不分胜负": "tie",
}
PAIR_CHOICES = ("A", "B", "tie")


@dataclass
class Pair:
    """Two answers to one question. Texts are scrubbed of secrets when the pair is made: what the judge
    sees is what is stored and shown."""

    case_id: str
    question: str
    a: str
    b: str
    reference: str | None = None
    tenant: str | None = None
    trace_id: str | None = None  # regression: the production trace replayed
    replay_trace_id: str | None = None  # regression: the replay's own trace

    def __post_init__(self) -> None:
        self.question, self.a, self.b = scrub(self.question), scrub(self.a), scrub(self.b)
        self.reference = scrub(self.reference)


def length_gap(a: str, b: str) -> tuple[float, float]:
    """(ratio longer/shorter, percent by which the longer exceeds the shorter), in characters."""
    la, lb = len(a.strip()), len(b.strip())
    short, long = max(1, min(la, lb)), max(la, lb)
    return long / short, 100.0 * (long - short) / short


def _request(pair: Pair, first: str, second: str, judge: str, gateway: Any) -> ChatRequest:
    ref = f"\n<reference>\n{pair.reference}\n</reference>\n" if pair.reference else ""
    user = PAIRWISE_USER.format(question=pair.question or "(not given)", reference=ref, a=first, b=second)
    request = ChatRequest(
        messages=[Message(role="system", content=PAIRWISE_SYSTEM), Message(role="user", content=user)],
        model=judge,
        temperature=0.0,
        metadata={"purpose": "pairwise-judge"},
    )
    return with_structured_output(gateway, request, list(PAIR_CHOICES))


async def judge_pair(pair: Pair, gateway: Any, judge: str, *, flagged: bool, skip: bool) -> dict[str, Any]:
    ratio, _ = length_gap(pair.a, pair.b)
    out: dict[str, Any] = {
        "case_id": pair.case_id,
        "question": pair.question,
        "reference": pair.reference,
        "answer_a": pair.a,
        "answer_b": pair.b,
        "tenant": pair.tenant,
        "trace_id": pair.trace_id,
        "replay_trace_id": pair.replay_trace_id,
        "outcome": "skipped",
        "verdicts": [None, None],
        "reasons": [None, None],
        "preferences": [None, None],
        "consistent": None,
        "len_a": len(pair.a.strip()),
        "len_b": len(pair.b.strip()),
        "length_ratio": round(ratio, 3),
        "flagged": flagged,
        "reason": None,
        "error": None,
        "judge_cost_usd": 0.0,
        "judge_calls": 0,
    }
    if flagged and skip:
        return out
    try:
        asked = await asyncio.gather(
            ask_for_verdict_async(gateway, _request(pair, pair.a, pair.b, judge, gateway), PAIR_LABELS, PAIR_CHOICES),
            ask_for_verdict_async(gateway, _request(pair, pair.b, pair.a, judge, gateway), PAIR_LABELS, PAIR_CHOICES),
        )
    except GatewayError as exc:
        return {**out, "outcome": "error", "error": f"judge call failed: {exc.message}"}
    readings = [read_verdict(r[-1].text, PAIR_LABELS, finish_reason=r[-1].finish_reason) for r in asked]
    v1, v2 = readings[0].verdict, readings[1].verdict
    out["verdicts"] = [v1, v2]
    out["judge_cost_usd"] = sum(r.cost_usd for replies in asked for r in replies)
    out["judge_calls"] = sum(len(replies) for replies in asked)
    # the reasoning of the reply whose verdict counts, else the judge's first (a re-ask's is one sentence)
    out["reasons"] = [scrub(reasoning_of(r[-1].text) or reasoning_of(r[0].text)) for r in asked]
    out["reason"] = out["reasons"][0][:500]
    if v1 is None or v2 is None:
        which = 0 if v1 is None else 1
        replies, reading = asked[which], readings[which]
        again = f" (also after {len(replies) - 1} re-ask)" if len(replies) > 1 else ""
        return {
            **out,
            "outcome": "error",
            "error": f"malformed judge output (no verdict: {reading.why()}{again}): "
            f"{scrub(replies[0].text[:200])!r}",
        }
    p1 = {"A": "a", "B": "b", "tie": "tie"}[v1]
    p2 = {"A": "b", "B": "a", "tie": "tie"}[v2]  # order 2 showed b first
    out["preferences"] = [p1, p2]
    out["consistent"] = p1 == p2
    out["outcome"] = "win" if p1 == p2 == "a" else "loss" if p1 == p2 == "b" else "tie"
    return out


def summarize_pairs(
    results: list[dict[str, Any]],
    *,
    a: str,
    b: str,
    judge: str,
    judge_model: str,
    max_length_diff: float | None,
    length_action: str,
) -> dict[str, Any]:
    judged = [p for p in results if p["outcome"] in ("win", "tie", "loss")]
    count = {k: sum(p["outcome"] == k for p in results) for k in ("win", "tie", "loss", "skipped", "error")}
    n = len(judged)
    scores = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[p["outcome"]] for p in judged]
    decisive = [p for p in judged if p["outcome"] != "tie" and p["len_a"] != p["len_b"]]
    longer_won = sum((p["outcome"] == "win") == (p["len_a"] > p["len_b"]) for p in decisive)
    single = [v for p in judged for v in p["verdicts"] if v in ("A", "B")]
    report: dict[str, Any] = {
        "a": a,
        "b": b,
        "judge": judge,
        "judge_model": judge_model,
        "pairs_total": len(results),
        "wins": count["win"],
        "ties": count["tie"],
        "losses": count["loss"],
        "skipped": count["skipped"],
        "errors": count["error"],
        "judged": n,
        "win_rate": round(sum(scores) / n, 4) if n else None,
        "win_rate_wilson95": list(wilson(sum(scores) / n, n)) if n else [None, None],
        "win_rate_bootstrap95": list(boot) if (boot := bootstrap_ci(scores)) else None,
        "sign_test_p": sign_test_p(count["win"], count["loss"]),
        "win_rate_method": "(wins + ties/2) / judged pairs; 95% Wilson score interval over judged pairs; "
        "two-sided exact sign test of wins vs losses (ties left out); 95% percentile bootstrap over pairs "
        "(2000 resamples; null when every pair had the same outcome)",
        "position_consistency": round(sum(bool(p["consistent"]) for p in judged) / n, 4) if n else None,
        "first_position_rate": round(single.count("A") / len(single), 4) if single else None,
        "length": {
            "max_length_diff_pct": max_length_diff,
            "action": length_action,
            "flagged": sum(p["flagged"] for p in results),
            "decisive_with_length_gap": len(decisive),
            "longer_won_rate": round(longer_won / len(decisive), 4) if decisive else None,
        },
        "judge_cost_usd": round(sum(p["judge_cost_usd"] for p in results), 8),
        "judge_calls": sum(p.get("judge_calls", 0) for p in results),
        "pairs": results,
    }
    if max_length_diff is not None and length_action == "flag":
        within = [p for p in judged if not p["flagged"]]
        report["length"]["within_limit"] = {
            k: sum(p["outcome"] == k for p in within) for k in ("win", "tie", "loss")
        }
    # the headline interval: the bootstrap where it can show spread, else Wilson (never zero width)
    report["win_rate_ci95"] = report["win_rate_bootstrap95"] or report["win_rate_wilson95"]
    warnings = []
    if 0 < n < MIN_N:
        warnings.append(
            f"only {n} judged pair(s): the interval is wide and the win rate is indicative only "
            f"(at least {MIN_N} pairs recommended)"
        )
    lr = report["length"]["longer_won_rate"]
    if lr is not None and len(decisive) >= 5 and lr >= 0.8:
        warnings.append(
            f"the longer answer won {100 * lr:.0f}% of decisive pairs: the judge may reward length; "
            "compare with --max-length-diff PCT (flag or skip pairs of unequal length)"
        )
    errors = [p for p in results if p["outcome"] == "error"]
    if errors:
        warnings.append(
            f"{len(errors)} of {len(results)} pair(s) got no verdict and are left out of the rates "
            f"(first: {errors[0]['error']}); check the judge alias `{judge}`"
        )
    pc = report["position_consistency"]
    if pc is not None and n >= 5 and pc < 0.7:
        warnings.append(
            f"the judge agreed with itself across the A/B swap in only {100 * pc:.0f}% of pairs: "
            "its verdicts depend on position, so most pairs count as ties"
        )
    report["warnings"] = warnings
    return report


async def compare_pairs(
    pairs: list[Pair],
    gateway: Any,
    judge: str,
    *,
    a: str = "A",
    b: str = "B",
    max_length_diff: float | None = None,
    length_action: str = "flag",
    concurrency: int = 8,
) -> dict[str, Any]:
    """Judge every pair in both orders; returns the summary with a per-pair table under `pairs`."""
    if length_action not in ("flag", "skip"):
        raise UserError(f"unknown length action `{length_action}`", hint="use flag or skip")
    if max_length_diff is not None and max_length_diff < 0:
        raise UserError("--max-length-diff must be a percentage ≥ 0")
    gateway.resolve(judge)  # unknown alias → UserError listing the known ones
    sem = asyncio.Semaphore(concurrency)

    async def one(pair: Pair) -> dict[str, Any]:
        flagged = max_length_diff is not None and length_gap(pair.a, pair.b)[1] > max_length_diff
        async with sem:
            return await judge_pair(pair, gateway, judge, flagged=flagged, skip=length_action == "skip")

    results = list(await asyncio.gather(*(one(p) for p in pairs)))
    return summarize_pairs(
        results,
        a=a,
        b=b,
        judge=judge,
        judge_model=pinned_model(gateway, judge),
        max_length_diff=max_length_diff,
        length_action=length_action,
    )


def _answered(r: Any) -> bool:
    return r.output is not None and r.error is None


def pairs_from_runs(runs: Any, run_a: str, run_b: str) -> tuple[dict[str, Any], dict[str, Any], list[Pair]]:
    """The two runs (by id / prefix) and one pair per case both answered (first repeat of each)."""
    ra, rb = runs.get(run_a), runs.get(run_b)
    if ra["id"] == rb["id"]:
        raise UserError("RUN_A and RUN_B are the same run", hint="give two different run ids")
    if ra["suite"] != rb["suite"]:  # same case ids in two suites are different questions
        raise UserError(
            f"run {ra['id'][:8]} is of suite `{ra['suite']}` and run {rb['id'][:8]} of suite `{rb['suite']}`: "
            "only runs of the same suite can be compared",
            hint="list runs with `flywheel eval --list` and pick two of one suite",
        )
    # an answer that ended in an error is no answer (a multi-turn one keeps the turns before the error: half a
    # conversation is not a pair for a whole one)
    first = {r.case_id: r for r in runs.load_results(ra["id"]) if r.repeat_index == 0 and _answered(r)}
    pairs = []
    for r in runs.load_results(rb["id"]):
        other = first.get(r.case_id)
        # a case edited between the runs asks another question: its answers are not a pair
        if r.repeat_index == 0 and _answered(r) and other is not None and other.input == r.input:
            pairs.append(
                Pair(
                    r.case_id,
                    other.input or r.input,
                    other.output or "",
                    r.output,
                    other.reference or r.reference,
                )
            )
    if not pairs:
        raise UserError(
            f"runs {ra['id'][:8]} and {rb['id'][:8]} have no case answered by both with the same input",
            hint="compare two runs of the same suite (cases edited between them are left out)",
        )
    return ra, rb, pairs
