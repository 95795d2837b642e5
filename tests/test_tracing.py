"""Tracing in memory: nesting across threads and asyncio, @trace, errors, output states and failing sinks.
Persistence is in test_tracing_store.py."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from flywheel.tracing import in_context, trace, tracer
from flywheel.types import Span


@pytest.fixture
def recorded():
    """Spans finished while the test runs, as they reach a sink."""
    got: list[Span] = []
    tracer.add_sink(got.append)
    yield got
    tracer.remove_sink(got.append)


def _by_name(spans: list[Span]) -> dict[str, Span]:
    return {s.name: s for s in spans}


# ------------------------------------------------------------------------------------------ in memory


def test_spans_nest_and_share_the_trace_id(recorded):
    with tracer.span("root", kind="app") as root, tracer.span("child", kind="retrieval") as child:
        with tracer.span("grandchild", kind="llm") as grand:
            assert tracer.current() is grand
        assert tracer.current() is child
    assert tracer.current() is None
    spans = _by_name(recorded)
    assert spans["root"].parent_id is None
    assert spans["child"].parent_id == root.span_id
    assert spans["grandchild"].parent_id == child.span_id
    assert {s.trace_id for s in recorded} == {root.trace_id}
    assert [s.name for s in recorded] == ["grandchild", "child", "root"]  # children finish first
    assert len(root.trace_id) == 32 and len(root.span_id) == 16


def test_in_context_threads_nest_under_the_caller_and_plain_threads_do_not(recorded):
    def work(i: int) -> str:
        with tracer.span(f"work{i}") as sp:
            return sp.trace_id

    with tracer.span("root") as root, ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(in_context(work), range(4)))
        plain = threading.Thread(target=work, args=(99,))
        plain.start()
        plain.join()
    spans = _by_name(recorded)
    assert ids == [root.trace_id] * 4
    for i in range(4):
        assert spans[f"work{i}"].parent_id == root.span_id
    # a thread started without in_context has its own (empty) context: a new trace
    assert spans["work99"].parent_id is None
    assert spans["work99"].trace_id != root.trace_id


def test_concurrent_threads_keep_separate_traces(recorded):
    def request(i: int) -> None:
        with tracer.span(f"req{i}") as outer:
            for j in range(20):
                with tracer.span(f"req{i}.step{j}") as inner:
                    assert inner.parent_id == outer.span_id

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = _by_name(recorded)
    for i in range(6):
        for j in range(20):
            assert spans[f"req{i}.step{j}"].trace_id == spans[f"req{i}"].trace_id
    assert len({spans[f"req{i}"].trace_id for i in range(6)}) == 6


def test_asyncio_tasks_nest_under_the_awaiting_span_and_not_under_each_other(recorded):
    async def step(i: int) -> str:
        with tracer.span(f"step{i}") as sp:
            await asyncio.sleep(0.01 * (3 - i))  # interleave: later tasks finish first
            with tracer.span(f"step{i}.inner"):
                await asyncio.sleep(0)
            return sp.span_id

    async def main() -> None:
        with tracer.span("request", kind="app"):
            await asyncio.gather(*(step(i) for i in range(3)))

    asyncio.run(main())
    spans = _by_name(recorded)
    for i in range(3):
        assert spans[f"step{i}"].parent_id == spans["request"].span_id
        assert spans[f"step{i}.inner"].parent_id == spans[f"step{i}"].span_id
        assert spans[f"step{i}"].trace_id == spans["request"].trace_id


def test_trace_decorator_on_sync_and_async_functions(recorded):
    @trace(kind="tool")
    def add(a: int, b: int = 0) -> int:
        return a + b

    @trace("fetch", kind="retrieval")
    async def fetch(q: str) -> list[str]:
        await asyncio.sleep(0)
        return [q.upper()]

    assert add(2, b=3) == 5
    assert asyncio.run(fetch("x")) == ["X"]
    spans = _by_name(recorded)
    add_span = next(s for s in recorded if s.name.endswith("add"))
    assert add_span.kind == "tool"
    assert add_span.inputs == {"args": [2], "kwargs": {"b": 3}}
    assert add_span.outputs == 5 and add_span.output_state == "ok"
    assert spans["fetch"].inputs == ["x"] and spans["fetch"].outputs == ["X"]
    assert spans["fetch"].kind == "retrieval"


def test_errors_are_recorded_and_propagate(recorded):
    @trace("boom")
    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError), tracer.span("outer"):
        boom()
    spans = _by_name(recorded)
    assert spans["boom"].error == "ValueError: bad input"
    assert spans["outer"].error == "ValueError: bad input"
    assert spans["boom"].end_ns is not None and spans["boom"].latency_ms >= 0


def test_empty_and_missing_outputs_are_told_apart(recorded):
    with tracer.span("missing"):
        pass
    with tracer.span("empty-str") as sp:
        sp.set(outputs="")
    with tracer.span("none") as sp:
        sp.set(outputs=None)
    with tracer.span("empty-list") as sp:
        sp.set(outputs=[])
    with tracer.span("zero") as sp:
        sp.set(outputs=0)
    states = {s.name: s.output_state for s in recorded}
    assert states == {"missing": "missing", "empty-str": "empty", "none": "empty", "empty-list": "empty",
                      "zero": "ok"}


def test_a_failing_sink_never_fails_the_traced_call(recorded):
    def bad_sink(_: Span) -> None:
        raise RuntimeError("sink down")

    tracer.add_sink(bad_sink)
    try:
        with tracer.span("still-works") as sp:
            sp.set(outputs="ok")
    finally:
        tracer.remove_sink(bad_sink)
    assert [s.name for s in recorded] == ["still-works"]

