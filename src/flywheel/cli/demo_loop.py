"""The last section of `flywheel demo`: the data flywheel turning on the demo's own answers.

User feedback on two answers (one thumbs down with a correction), a review queue over the four answers labelled
by two simulated annotators (fixed verdicts, so every run prints the same κ), the agreement between them, a
monitor summary of the run's traces, and the failed answer promoted to an eval case that is then run. Each step
prints the command a user would type to do it themselves.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

# The answer the demo marks wrong (its extractive answer quotes backoff timings, not which failures are retried),
# what a user says about it, and what it should have said (docs/gateway.md, "Retries").
WRONG_QUESTION = "Which failures does the gateway retry?"
COMPLAINT = "It lists backoff timings, not which failures are retried."
CORRECTION = ("HTTP 408, 409, 425, 429, 500, 502, 503 and 504, the 52x proxy errors, timeouts, dropped connections "
              "and garbled responses; 400, 401 and 404 are not retried.")
LIKED_QUESTION = "How do I pin a model version?"
PROMOTED_SUITE = Path("evals") / "promoted-demo.yaml"  # rewritten by every demo run
ANNOTATORS = ("ana", "ben")
# question -> (ana's verdict, ben's verdict, ben's reason); the annotators disagree on the out-of-scope refusal
VERDICTS: dict[str, tuple[str, str, str | None]] = {
    "How do I pin a model version?": ("pass", "pass", None),
    "如何在没有网络的情况下运行 flywheel？": ("pass", "pass", None),
    WRONG_QUESTION: ("fail", "fail", "does not name the retried status codes"),
    "What is the boiling point of mercury?": ("pass", "fail", "should say what the docs do cover"),
}


RATES = (("negative_feedback_rate", "thumbs down"), ("refusal_rate", "refused"),
         ("guard_trigger_rate", "guard triggered"))


def judge_reply(body: dict[str, Any]) -> str:
    """The fake judge model's answer: the promoted case asks whether the answer names the retried codes."""
    last = str(body.get("messages", [{}])[-1].get("content", ""))
    output = last.split("<output>", 1)[-1]
    if "408" in output and "429" in output:
        return '{"reasoning": "The answer names the retried status codes.", "verdict": "PASS"}'
    return '{"reasoning": "The answer quotes backoff timings, not which failures are retried.", "verdict": "FAIL"}'


def _queue_name(store: Any) -> str:
    from flywheel.feedback import queues

    base = f"demo-{time.strftime('%Y-%m-%d', time.gmtime())}"
    taken = {q.name for q in queues.list_queues(store)}
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def flywheel_loop(rt: Any, project: Any, out: dict[str, Any], log: Any, cmd: str, since: float) -> dict[str, Any]:
    """Feedback → review → agreement → monitor → promote, over the answers of section 1."""
    answers = {a["question"]: a for a in out["answers"]}
    result: dict[str, Any] = {}
    result["feedback"] = _feedback(rt.store, answers, log, cmd)
    queue, result["review"] = _review(rt.store, answers, log, cmd)
    result["agreement"] = _agreement(rt.store, queue, answers, log, cmd)
    result["monitor"] = _monitor(rt.store, since, log, cmd)
    result["promote"] = _promote(rt, project, queue, log, cmd)
    return result


def _feedback(store: Any, answers: dict[str, Any], log: Any, cmd: str) -> dict[str, Any]:
    from flywheel.feedback import record

    liked, wrong = answers[LIKED_QUESTION]["trace_id"], answers[WRONG_QUESTION]["trace_id"]
    record(store, liked, "thumbs", "up", actor="demo-user")
    record(store, wrong, "thumbs", "down", comment=COMPLAINT, actor="demo-user")
    record(store, wrong, "correction", CORRECTION, actor="demo-user")
    log.line(f"  feedback: 👍 on {LIKED_QUESTION!r}; 👎 on {WRONG_QUESTION!r} with a correction")
    log.line(f"    $ {cmd} feedback {wrong[:12]} --thumbs down --comment \"…\" --correction \"…\"", dim=True)
    return {"up": liked, "down": wrong, "comment": COMPLAINT, "correction": CORRECTION}


def _review(store: Any, answers: dict[str, Any], log: Any, cmd: str) -> tuple[Any, dict[str, Any]]:
    from flywheel.feedback import queues

    ids = [a["trace_id"] for a in answers.values()]
    queue = queues.create_queue(store, _queue_name(store), trace_ids=ids, overlap=2)
    question_of = {a["trace_id"]: q for q, a in answers.items()}
    for item in queues.items(store, queue):
        question = question_of[item.trace_id]
        first, second, why = VERDICTS[question]
        wrong = question == WRONG_QUESTION
        queues.label(store, item.id, ANNOTATORS[0], first, reason=COMPLAINT if wrong else None,
                     correction=CORRECTION if wrong else None)
        queues.label(store, item.id, ANNOTATORS[1], second, reason=why)
    done = queues.progress(store, queue)
    fails = [sum(1 for v in VERDICTS.values() if v[k] == "fail") for k in (0, 1)]
    log.line(f"  review: queue {queue.name}, {queue.n_items} answers labelled by {ANNOTATORS[0]} ({fails[0]} fail) "
             f"and {ANNOTATORS[1]} ({fails[1]} fail)")
    log.line(f"    $ {cmd} review sample -n 20 --overlap 2  &&  {cmd} review --annotator ana", dim=True)
    return queue, {"queue": queue.name, "items": queue.n_items, "overlap": queue.overlap,
                   "annotators": list(ANNOTATORS), "progress": done}


def _agreement(store: Any, queue: Any, answers: dict[str, Any], log: Any, cmd: str) -> dict[str, Any]:
    from flywheel.feedback import queues
    from flywheel.feedback.agreement import agreement_report

    labels = queues.labels(store, queue)
    report = agreement_report(((lb.item_id, lb.annotator, lb.verdict) for lb in labels), n_boot=0)
    kappa = report["pairs"][0]["cohen_kappa"] if report["pairs"] else None
    by_item = {i.id: i.trace_id for i in queues.items(store, queue)}
    question_of = {a["trace_id"]: q for q, a in answers.items()}
    split = [question_of[by_item[d["item_id"]]] for d in report["disagreements"]]
    shown = "undefined" if kappa is None else f"{kappa:.2f}"
    log.line(f"  agreement: Cohen's κ {ANNOTATORS[0]}–{ANNOTATORS[1]} = {shown} on {report['n_items']} items; "
             f"they disagree on {', '.join(repr(q) for q in split) or 'nothing'}")
    log.line(f"    $ {cmd} review agreement --queue {queue.name}", dim=True)
    return {"cohen_kappa": kappa, "n_items": report["n_items"], "disagreements": split}


def _monitor(store: Any, since: float, log: Any, cmd: str) -> dict[str, Any]:
    from flywheel.monitor.windows import compute

    per_app: dict[str, dict[str, Any]] = {}
    for w in compute(store, window="1d", since=since, until=time.time() + 1):
        app = w.group.get("app") or "(gateway)"
        m = w.metrics
        row = per_app.setdefault(app, {"volume": 0, "negative": 0.0, "refusals": 0.0, "guards": 0.0})
        n = int(m["volume"] or 0)
        row["volume"] += n
        row["negative"] += (m["negative_feedback_rate"] or 0.0) * n
        row["refusals"] += (m["refusal_rate"] or 0.0) * n
        row["guards"] += (m["guard_trigger_rate"] or 0.0) * n
    rows = {app: {"volume": r["volume"], "negative_feedback_rate": round(r["negative"] / r["volume"], 3),
                  "refusal_rate": round(r["refusals"] / r["volume"], 3),
                  "guard_trigger_rate": round(r["guards"] / r["volume"], 3)}
            for app, r in per_app.items() if r["volume"]}
    parts = []
    for app, r in sorted(rows.items()):
        rates = [f"{100 * r[key]:.0f} % {what}" for key, what in RATES if r[key]]
        parts.append(f"{app} {r['volume']}" + (f" ({', '.join(rates)})" if rates else ""))
    log.line("  monitor, traces of this run: " + ("; ".join(parts) if parts else "none"))
    log.line(f"    $ {cmd} monitor --window 1h --since 1h", dim=True)
    return {"apps": rows}


def _promote(rt: Any, project: Any, queue: Any, log: Any, cmd: str) -> dict[str, Any]:
    from flywheel.evals.promote import write_suite
    from flywheel.evals.promote_sources import from_queue
    from flywheel.evals.records import RunStore
    from flywheel.evals.runner import RunOptions, arun_suite
    from flywheel.evals.suite import load_suite

    path = project.root / PROMOTED_SUITE
    path.unlink(missing_ok=True)
    sources = from_queue(rt.store, queue.name, "fail")
    written = write_suite(project, path, sources, target="app:docs_qa", judge="judge", name="promoted from review")
    suite = load_suite(path, project)
    options = RunOptions(concurrency=1, resume=False, progress=False)
    summary = asyncio.run(arun_suite(suite, rt, store=RunStore.open(rt), options=options))
    log.line(f"  promote: {len(written.written)} failed answer → case {', '.join(written.written)} in "
             f"{PROMOTED_SUITE}; run now: {summary.passed}/{summary.cases} passed"
             + (" (it fails until the app answers with the status codes)" if summary.passed < summary.cases else ""))
    log.line(f"    $ {cmd} promote --queue {queue.name} --judge judge --to {PROMOTED_SUITE}  &&  {cmd} eval {PROMOTED_SUITE}",
             dim=True)
    return {"suite": str(path), "cases": written.written, "run_id": summary.run_id, "passed": summary.passed,
            "total": summary.cases}
