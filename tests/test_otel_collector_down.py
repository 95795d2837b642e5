"""A collector that is down never holds the process up at exit (found by the S6 audit: a 17 ms `flywheel chat`
with `otlp_endpoint` pointing at a dead collector took 8.4 s to exit, printing the exporter's retry warnings)."""

from __future__ import annotations

import threading

import pytest

from flywheel.tracing import attach_otlp, otel, tracer


class StuckExporter:
    """Like the OTLP exporter against a dead collector: export() retries until shutdown() interrupts it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.exports = 0

    def export(self, spans):
        self.exports += 1
        self.stop.wait()  # no timeout: only shutdown() ends it

    def shutdown(self) -> None:
        self.stop.set()


@pytest.mark.timeout(20)  # hang guard: before the fix detach() waited 30 s for the stuck export to give up
def test_detach_gives_up_on_a_stuck_exporter_and_shuts_it_down(monkeypatch):
    monkeypatch.setattr(otel, "DETACH_WAIT_S", 0.2)
    exporter = StuckExporter()
    detach = attach_otlp(exporter=exporter, max_delay_s=0.01)
    with tracer.span("docs_qa", kind="app", inputs="q") as sp:
        sp.set(outputs="a")
    tracer.flush()  # bounded too: returns although the export is still stuck
    detach()
    assert exporter.exports == 1 and exporter.stop.is_set()
