"""The Batch API's background runner while the store is lost (PostgreSQL restarting): one warning when it goes
and one when it is back, not a traceback every poll; any other failure keeps its traceback."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc

from flywheel.server import batches_runner


def _lost_store(tmp_path) -> sa_exc.OperationalError:
    with pytest.raises(sa_exc.OperationalError) as err:
        create_engine(f"sqlite:///{tmp_path / 'gone' / 'x.db'}").connect()
    return err.value


def _polls(monkeypatch, outcomes: list[BaseException | None]) -> list[int]:
    """Run the runner's loop over `outcomes` (an error raised by that claim, or None: nothing to run)."""
    claims: list[int] = []
    runner = batches_runner.BatchRunner(SimpleNamespace(store=object(), clock=lambda: 0.0), poll_s=0.0)

    def claim(*_args):
        claims.append(1)
        outcome = outcomes[len(claims) - 1]
        if len(claims) == len(outcomes):
            task.cancel()
        if outcome is not None:
            raise outcome
        return []

    monkeypatch.setattr(batches_runner.batches_store, "claim", claim)

    async def main():
        nonlocal task
        task = asyncio.ensure_future(runner._loop())
        with pytest.raises(asyncio.CancelledError):
            await task

    task: asyncio.Future = None  # type: ignore[assignment]
    asyncio.run(main())
    return claims


def test_a_lost_store_is_said_once_and_its_return_once(tmp_path, monkeypatch, caplog):
    lost = _lost_store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="flywheel.server.batches"):
        claims = _polls(monkeypatch, [lost, lost, lost, None, None])
    said = [r for r in caplog.records if r.name == "flywheel.server.batches"]
    assert len(claims) == 5
    assert [("unavailable" in r.getMessage(), r.exc_info is None) for r in said] == [(True, True), (False, True)]
    assert "is back" in said[1].getMessage()


def test_another_failure_keeps_its_traceback(monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="flywheel.server.batches"):
        _polls(monkeypatch, [ValueError("a bug"), ValueError("a bug"), None])
    said = [r for r in caplog.records if r.name == "flywheel.server.batches"]
    assert len(said) == 2 and all(r.exc_info is not None for r in said)
