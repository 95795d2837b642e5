"""Spans that end before the store is open are kept (bounded) and written once it attaches."""

from __future__ import annotations

import importlib

from sqlalchemy import func, select

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.store import Store
from flywheel.store.schema import spans as spans_t
from flywheel.store.schema import traces as traces_t
from flywheel.store.schema import writer_drops
from flywheel.tracing import attach_store, tracer

tracer_module = importlib.import_module("flywheel.tracing.tracer")  # the module (the package's `tracer` is the object)


def _count(store: Store, table) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table))


def test_spans_ending_before_runtime_store_opens_are_stored(tmp_path):
    rt = Runtime(Project(tmp_path))
    try:
        with tracer.span("script", kind="app", inputs={"question": "why?"}) as root:
            for i in range(7):  # 7 children + ... end before the store exists
                with tracer.span(f"step{i}"):
                    pass
            with tracer.span("late-child"):
                store = rt.store  # the store opens (and attaches) inside the trace
            with tracer.span("after"):
                pass
        with tracer.span("next-trace"):
            pass
        store.flush()
        assert _count(store, spans_t) == 11  # 7 early + late-child + after + script + next-trace
        with store.engine.connect() as conn:
            names = set(conn.scalars(select(spans_t.c.name)))
            row = conn.execute(select(traces_t).where(traces_t.c.trace_id == root.trace_id)).mappings().one()
        assert {f"step{i}" for i in range(7)} <= names
        assert row["span_count"] == 10 and row["input_preview"] == "why?"
    finally:
        rt.close()


def test_the_early_buffer_is_bounded_and_its_drops_are_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(tracer_module, "EARLY_SPANS", 5)
    tracer.discard_early()
    tracer.expect_store()
    for i in range(12):
        with tracer.span(f"early{i}"):
            pass
    with Store.open(f"sqlite:///{tmp_path / 'early.db'}") as store:
        detach = attach_store(store)
        try:
            store.flush()
            with store.engine.connect() as conn:
                kept = sorted(conn.scalars(select(spans_t.c.name)))
                drops = conn.execute(select(writer_drops)).mappings().all()
        finally:
            detach()
    assert kept == sorted(f"early{i}" for i in range(7, 12))  # the newest are kept
    assert [(d["kind"], d["reason"], d["count"]) for d in drops] == [("tracing.spans", "early_buffer_full", 7)]


def test_nothing_is_held_without_a_store_to_come(tmp_path):
    tracer.discard_early()
    with tracer.span("no-store-expected"):
        pass
    with Store.open(f"sqlite:///{tmp_path / 'none.db'}") as store:
        detach = attach_store(store)
        store.flush()
        detach()
        assert _count(store, spans_t) == 0


def test_a_runtime_closed_without_its_store_discards_what_it_held(tmp_path):
    rt = Runtime(Project(tmp_path))
    with tracer.span("held"):
        pass
    rt.close()
    with Store.open(f"sqlite:///{tmp_path / 'other.db'}") as store:
        detach = attach_store(store)
        store.flush()
        detach()
        assert _count(store, spans_t) == 0
