"""Shared fixtures. Optional services skip on a user's machine that lacks them; under
FLYWHEEL_REQUIRE_SERVICES=1 (set by .ci/run) every such skip becomes a failure."""

from __future__ import annotations

import os
import time

import pytest

pytest_plugins = ["services_fixtures", "server_support", "web_support"]

REQUIRE_SERVICES = os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1"
DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def need(condition: bool, reason: str) -> None:
    """Skip (or fail under CI) when an optional service or data set is missing."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing under FLYWHEEL_REQUIRE_SERVICES=1: {reason}")
    pytest.skip(reason)


@pytest.fixture
def spans():
    """Every span the tracer ends during the test."""
    from flywheel.tracing import tracer

    got: list = []
    tracer.add_sink(got.append)
    yield got
    tracer.remove_sink(got.append)


@pytest.fixture
def llm():
    """A fresh fake LLM server (OpenAI and Anthropic wire) for one test."""
    from flywheel.testing.fake_llm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def server():
    """One fake LLM server for a whole test module; reset it in the test (or use `llm`)."""
    from flywheel.testing.fake_llm import FakeLLM

    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def store(tmp_path):
    """An open SQLite store in the test's folder (modules testing PostgreSQL too define their own)."""
    from flywheel.store import Store

    s = Store.open(f"sqlite:///{tmp_path / 'flywheel.db'}")
    yield s
    s.close()


@pytest.fixture
def project(tmp_path):
    """An empty project folder with no flywheel.yaml."""
    from flywheel.config import Project

    return Project(tmp_path)


class FakeClock:
    """A wall clock that moves only when told: `clock()` reads it, `clock.advance(s)` moves it. Starts at the
    real time, so anything that also reads the real clock (a Redis TTL) sees sane values."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """Inject instead of sleeping: TTLs, backoffs and deadlines are then exact and instant."""
    return FakeClock()


@pytest.fixture(autouse=True)
def _own_workflow_tools():
    """Workflow tools a test registers are gone after it: the registry is global, and a tool left behind
    (`city_weather`) changed another module's "did you mean" (test_mcp_tools) when both ran in one session."""
    from flywheel.workflows.tools import TOOLS

    before = set(TOOLS.names())
    yield
    for name in set(TOOLS.names()) - before:
        TOOLS.unregister(name)
