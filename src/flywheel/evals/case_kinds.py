"""What the run summary says about multi-turn and multiple-choice cases (`by_case[i].turns`, `multiple_choice`).

A multi-turn run that fails with an error names the turn in its error (`turn 2 of 3: …`): the turns before it
were answered and checked, the later ones were not sent.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flywheel.evals.records import CaseRun, scrub
from flywheel.evals.suite import EvalCase, Suite

TURN_ERROR = re.compile(r"^turn (\d+) of \d+: ")


@dataclass
class TurnProgress:
    """The turn a multi-turn case is at (being sent or checked), to name it when the case fails with an error."""

    turn: int = 0


def turn_error(turn: int, turns: int, error: str) -> str:
    """A multi-turn run's error, naming the turn it happened at (`TURN_ERROR` reads it back)."""
    return f"turn {turn} of {turns}: {error}"


def last_answer(case: EvalCase, run: CaseRun) -> str:
    """What checks over a case's repeats (`diversity`) compare: a multi-turn run's last answer, not its
    transcript, whose inputs are the same in every repeat and would read as repetition."""
    text = run.output or ""
    if not case.turns:
        return text
    head = f"[turn {len(case.turns)}] {scrub(case.turns[-1].input)}\n"  # as the runner wrote it
    at = text.rfind(head)
    return text[at + len(head) :] if at >= 0 else text


def turn_rows(case: EvalCase, runs: list[CaseRun]) -> list[dict[str, Any]]:
    """Per turn: how many runs passed it, failed with an error there, or stopped before it, and the checks
    that failed it. A run that errored at turn k is judged on the turns before k."""
    stopped = {id(r): _error_turn(r) for r in runs}
    rows = []
    for n, turn in enumerate(case.turns, start=1):
        mine = [[c for c in r.checks if c.details.get("turn") == n] for r in runs if stopped[id(r)] > n]
        failed = sorted({c.name for checks in mine for c in checks if not c.passed})
        rows.append(
            {
                "turn": n,
                "input": turn.input,
                "runs": len(runs),
                "passes": sum(all(c.passed for c in checks) for checks in mine),
                "failed_checks": failed,
                "errors": sum(stopped[id(r)] == n for r in runs),
                "not_run": sum(stopped[id(r)] < n for r in runs),
            }
        )
    return rows


def _error_turn(run: CaseRun) -> float:
    """The turn a multi-turn run failed at with an error (every turn when it has none; the first when the
    error names no turn, as results stored before turns were named)."""
    if run.error is None:
        return math.inf
    named = TURN_ERROR.match(run.error)
    return int(named.group(1)) if named else 1


def choice_summary(suite: Suite, results: list[CaseRun]) -> dict[str, Any] | None:
    ids = {c.id for c in suite.cases if c.choices}
    if not ids:
        return None
    runs = [r for r in results if r.case_id in ids]
    correct = sum(r.passed for r in runs)
    methods: dict[str, int] = defaultdict(int)
    for r in runs:
        for c in r.checks:
            if c.name == "choice":
                methods[str(c.details.get("method"))] += 1
    return {
        "cases": len(ids),
        "executions": len(runs),
        "correct": correct,
        "accuracy": round(correct / len(runs), 4) if runs else None,
        "methods": dict(sorted(methods.items())),
    }
