"""Traces received over OTLP go round the loop like flywheel's own: the model span's answer, kept as messages
(`[{"role": "assistant", "content": …}]`), is the answer that monitors count and measure, that review shows and
that `flywheel export` trains on; a labelled trace with no answer stored is counted as left out, not lost
silently."""

from __future__ import annotations

import json
import time

from flywheel.feedback import queues
from flywheel.loop.export import NO_ANSWER, export
from flywheel.monitor.windows import compute
from flywheel.tracing import attach_store, list_traces, tracer
from flywheel.types import Span

OTLP = {"flywheel.source": "otlp", "flywheel.tenant": "default"}
LONG = "现在是十二点整。" * 60  # longer than a trace's preview: review and export read the span, not the preview


def _otlp_trace(n: int, question: str | None, answer: str | None, start_ns: int) -> str:
    trace_id = f"{n:032x}"
    root = Span(span_id=f"{n:08x}aaaaaaaa", trace_id=trace_id, name="handle question", start_ns=start_ns,
                end_ns=start_ns + 300_000_000, attributes=dict(OTLP))
    llm = Span(span_id=f"{n:08x}bbbbbbbb", trace_id=trace_id, parent_id=root.span_id, name="chat gpt-4o-mini",
               kind="llm", start_ns=start_ns + 1000, end_ns=start_ns + 200_000_000,
               inputs={"messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": question}]} if question else None,
               outputs=[{"role": "assistant", "content": answer, "finish_reason": "stop"}] if answer else None,
               output_state="ok" if answer else "missing",
               attributes={**OTLP, "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                           "gen_ai.usage.input_tokens": 9, "gen_ai.usage.output_tokens": 4})
    tracer.ingest(llm)
    tracer.ingest(root)
    return trace_id


def test_otlp_answers_are_monitored_reviewed_and_exported(store, tmp_path):
    detach = attach_store(store)
    try:
        now = time.time_ns()
        answered = _otlp_trace(1, "现在几点？", LONG, now - 60_000_000_000)
        empty = _otlp_trace(2, None, None, now - 30_000_000_000)
        tracer.flush()
    finally:
        detach()
    rows = {t["trace_id"]: t for t in list_traces(store)}
    assert rows[answered]["output_preview"].startswith("现在是十二点整。现在")  # not the JSON of the messages

    (window,) = compute(store, window="1d", since=now / 1e9 - 3600, until=now / 1e9 + 1)
    assert window.metrics["volume"] == 2
    assert window.metrics["empty_output_rate"] == 0.5  # the answered trace has an answer
    assert window.metrics["output_chars_mean"] == len(LONG)
    assert window.details["languages"] == {"zh": 1}

    q = queues.create_queue(store, "otlp", overlap=1, trace_ids=[answered, empty])
    items = {i.trace_id: i for i in queues.items(store, q)}
    assert items[answered].output == LONG and items[answered].input == "现在几点？"
    for item in items.values():
        queues.label(store, item.id, "ana", "pass")
    result = export(store, "sft", tmp_path / "sft.jsonl", train_share=1.0)
    (row,) = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    assert row["messages"][-1] == {"role": "assistant", "content": LONG}
    assert row["messages"][-2] == {"role": "user", "content": "现在几点？"}
    assert result.datasheet["dropped"][NO_ANSWER] == 1


def test_skew_leaves_out_traces_without_a_question(tmp_path):
    """A received trace that recorded no question (its spans carried no content) is no production input:
    `flywheel skew` leaves it out (and says how many) instead of a "length 0" / "language None" gap whose
    `flywheel promote --traces …` would write cases with an empty input."""
    import random

    from click.testing import CliRunner
    from drift_support import DAY, START, traffic, write_project, write_suite

    import flywheel.cli.drift  # noqa: F401 - registers `skew`
    from flywheel.bench.drift import write_traces
    from flywheel.cli import main
    from flywheel.store import Store

    root = write_project(tmp_path)
    records = traffic({"billing": 1.0}, 40, START, DAY, random.Random(3))
    blank = [{**r, "trace_id": f"{i + 1:016x}" * 2, "question": "", "answer": ""} for i, r in enumerate(records[:12])]
    (root / ".flywheel").mkdir()
    with Store.open(f"sqlite:///{root / '.flywheel' / 'flywheel.db'}") as s:
        write_traces(s, records + blank)
    write_suite(root, "billing", [r["question"] for r in records[:10]])
    res = CliRunner().invoke(main, ["--project", str(root), "skew", "--suite", "billing", "--since", "2026-10-01",
                                    "--until", "2026-10-03", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["production"]["n"] == 40 and doc["production"]["without_question"] == 12
    blank_ids = {b["trace_id"] for b in blank}
    assert not any(set(g["traces"]) & blank_ids for g in doc["gaps"])
    assert "None" not in doc["language"]["production"]


def test_a_passed_online_check_is_no_complaint_when_promoting(store):
    """`monitor.online` writes every result as feedback (`{"passed": true, …}` with the check's reason as the
    comment, e.g. "no PII found"). Promoting such a trace makes a coverage case, not a regression case whose
    judge is told a reviewer found the problem "no PII found" and whose `not-equals` bans the served answer;
    a failed online check is a complaint, with its reason."""
    from flywheel.evals.promote_sources import from_traces
    from flywheel.feedback.events import record

    detach = attach_store(store)
    try:
        now = time.time_ns()
        fine = _otlp_trace(11, "现在几点？", "十二点。", now - 2_000_000_000)
        leaky = _otlp_trace(12, "Who wrote to me?", "ana@example.com wrote.", now - 1_000_000_000)
        tracer.flush()
    finally:
        detach()
    for tid, passed, why in ((fine, True, "no PII found"), (leaky, False, "EMAIL_ADDRESS in the answer")):
        record(store, tid, "pii_in_answer", {"passed": passed, "score": float(passed), "check": "pii"},
               source="check", comment=why, actor="online:pii_in_answer")
    record(store, fine, "copied")  # the user copied the answer: no complaint either
    by_id = {s.trace_id: s for s in from_traces(store, [fine, leaky])}
    assert by_id[fine].verdict == "unreviewed" and by_id[fine].reason is None
    assert by_id[fine].description.endswith("(no feedback against it)")
    assert by_id[leaky].verdict == "fail" and by_id[leaky].reason == "EMAIL_ADDRESS in the answer"


def test_the_online_evaluators_own_traces_stay_out_of_the_list(store):
    """`flywheel traces` (and the dashboard's list) shows traffic, not the `monitor.online` trace the online
    evaluators write per scored trace; `traces show` still opens one by id."""
    from flywheel.tracing import get_trace
    from flywheel.tracing.search import TraceQuery, search_traces

    detach = attach_store(store)
    try:
        now = time.time_ns()
        answered = _otlp_trace(21, "现在几点？", "十二点。", now - 2_000_000_000)
        with tracer.span("monitor.online", kind="eval", trace_id=answered, evaluator="pii_in_answer") as ev:
            pass
        tracer.flush()
    finally:
        detach()
    listed = [r["trace_id"] for r in search_traces(store, TraceQuery(), limit=50).rows]
    assert listed == [answered]
    assert get_trace(store, ev.trace_id)["name"] == "monitor.online"
