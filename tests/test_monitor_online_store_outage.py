"""The online evaluators' background loop (inside `flywheel serve`, or `flywheel monitor run`) while the store is
lost: one warning line per pass naming the cause, not a traceback every `interval_s`; other failures keep their
traceback. The loop goes on either way."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc

from flywheel.monitor.online import OnlineWorker


def _worker(failure: BaseException) -> OnlineWorker:
    runtime = SimpleNamespace(config=SimpleNamespace(monitor=SimpleNamespace(interval_s=0.0, alerts=[], online=[])))
    worker = OnlineWorker(runtime, evaluators=[], interval_s=0.0)
    passes = []

    def run_once():
        passes.append(1)
        if len(passes) == 2:
            worker._stop.set()
        raise failure

    worker.run_once = run_once  # type: ignore[method-assign]
    worker.passes = passes  # type: ignore[attr-defined]
    return worker


def _lost_store(tmp_path) -> sa_exc.OperationalError:
    with pytest.raises(sa_exc.OperationalError) as err:
        create_engine(f"sqlite:///{tmp_path / 'gone' / 'x.db'}").connect()
    return err.value


def test_a_lost_store_is_one_warning_line_per_pass(tmp_path, caplog):
    worker = _worker(_lost_store(tmp_path))
    with caplog.at_level(logging.WARNING, logger="flywheel"):
        worker._loop()
    records = [r for r in caplog.records if "online evaluators" in r.getMessage()]
    assert worker.passes == [1, 1] and len(records) == 2  # the loop went on after the first failure
    assert all("store is unavailable" in r.getMessage() and r.exc_info is None for r in records)


def test_another_failure_keeps_its_traceback(caplog):
    worker = _worker(ValueError("a bug"))
    with caplog.at_level(logging.WARNING, logger="flywheel"):
        worker._loop()
    records = [r for r in caplog.records if "online evaluators" in r.getMessage()]
    assert records and all(r.exc_info is not None for r in records)
