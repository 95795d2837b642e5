"""A killed request's trace shows the question, not a guard span's bookkeeping (found by the S6 audit: the list
showed `{"stage":"input","chars":55,"windows":1}`, the input of the first stored span, an input guard)."""

from __future__ import annotations

from flywheel.config import Project
from flywheel.store import Store
from flywheel.tracing import attach_store, tracer
from flywheel.tracing.query import list_traces


def test_incomplete_trace_question_skips_guard_span_inputs(tmp_path):
    question = "What is the refund policy? my email is <EMAIL_ADDRESS_1>"
    with Store.open(Project(tmp_path).store_url) as store:
        detach = attach_store(store)
        root, token = tracer.start("docs_qa", "app", {"question": question})
        try:
            with tracer.span("guard.injection", kind="guard", inputs={"stage": "input", "chars": 55, "windows": 1}):
                pass
            with tracer.span("retrieval.search", kind="retrieval", inputs=question):
                pass
        finally:
            from flywheel.tracing.tracer import _current

            _current.reset(token)
        store.flush()
        detach()
        rows = [r for r in list_traces(store, status="incomplete") if r["trace_id"] == root.trace_id]
    assert len(rows) == 1 and rows[0]["input_preview"] == question


def test_traces_with_filters_that_match_nothing_say_so_not_no_traces_yet(tmp_path):
    from click.testing import CliRunner

    from flywheel.cli import main

    with Store.open(Project(tmp_path).store_url) as store:
        detach = attach_store(store)
        with tracer.span("docs_qa", kind="app", inputs={"question": "q"}) as sp:
            sp.set(outputs="a")
        store.flush()
        detach()
    out = CliRunner().invoke(main, ["--project", str(tmp_path), "traces", "--status", "incomplete"])
    assert out.exit_code == 0 and "no traces match these filters" in out.output and "yet" not in out.output
